"""The e-certificate library (电子证照库), after GB/T 36901–36906.

* The catalogue (证照目录) comes from ``data/certificate_types.json``.
* Certificates carry the GB/T 36904 identifier (证照标识)
  ``1.2.156.3005.2.<类型代码 21>.<颁发机构代码 18>.<流水号 10>.<版本号 3>.<校验位>``
  with an ISO/IEC 7064 MOD 37,36 check character.
* Each version is its own document; re-issue supersedes the old version,
  revocation changes the status; old versions stay readable for audit.
* The holder number is sealed with a blind index (``holder.index``) and a
  masked form; the typed fields are sealed as one JSON document.
* Each version is signed by the issuing department (SM2 over the SM3 digest
  of the canonical CBOR "signed core", see :func:`signed_core`); the same
  signature travels in the verification QR (``yiwang.verification``).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cbor2
import fastjsonschema
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from yiwang import audit, departments, identity
from yiwang.crypto import sm3, sm3_hex
from yiwang.errors import Conflict, Forbidden, Gone, InvalidInput, NotFound
from yiwang.timeutil import format_local, local_today, utcnow

if TYPE_CHECKING:
    from yiwang.runtime import Services
    from yiwang.store import Document, Store

DATA = Path(__file__).resolve().parent.parent / "data"
ROOT_CODE = "1.2.156.3005.2"
FIELDS_PURPOSE = "certificate_fields"
NUMBER_PURPOSE = "certificate_number"
NAME_PURPOSE = "certificate_holder_name"
SERIAL_DIGITS = 10

STATUS_LABELS = {
    "valid": "有效",
    "revoked": "撤销",
    "cancelled": "注销",
    "expired": "失效",
    "withdrawn": "吊销",
    "superseded": "已被新版本替代",
}
# Statuses an issuer may set through the issuer API.
ISSUER_STATUSES = frozenset({"revoked", "cancelled", "expired", "withdrawn"})
HOLDER_NAME_FIELDS = (
    "name",
    "holder_name",
    "entity_name",
    "operator_name",
    "right_holder",
    "patient_name",
    "newborn_name",
)


# ---- who redeems / reads: kiosks, windows, agents, departments --------------

CHANNEL_BY_KIND = {"kiosk": "kiosk", "window": "window", "agent": "agent", "department": "issuer", "device": "kiosk"}
KIND_LABELS = {"kiosk": "自助终端", "window": "窗口", "agent": "代办人", "department": "部门", "device": "自助终端"}


@dataclass(frozen=True)
class Redeemer:
    """Whoever receives a certificate copy: built by a handler from its credential.

    ``kind`` is kiosk | window | agent | department; ``label`` is a
    non-personal display name ("天河政务中心 3 号机", "广州市公安局 · 1 号窗口").
    """

    kind: str
    id: str
    label: str
    department: str | None = None

    @property
    def actor(self) -> audit.Actor:
        return audit.Actor(self.kind, self.id, self.label)

    @property
    def channel(self) -> str:
        return CHANNEL_BY_KIND.get(self.kind, "system")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


RedeemerAuthenticator = Callable[["Services", str], Awaitable[Redeemer | None]]


@dataclass
class RedeemerAuthenticators:
    """The ways a redeeming party may prove who it is besides a window credential (certs_api):
    a kiosk's device credential, plugged in at boot (a resource of the process)."""

    ways: list[RedeemerAuthenticator] = field(default_factory=list)


# ---- catalogue ---------------------------------------------------------------


@dataclass(frozen=True)
class CertificateType:
    code: str
    name: str
    type_code: str
    definer_name: str
    definer_code: str
    issuer_departments: tuple[str, ...]
    holder_kind: str
    validity_years: int | None
    fields: Mapping[str, Any]
    layout: Mapping[str, Any]
    one_live_per_holder: bool = False  # the law allows one valid certificate of this type per holder

    def field_titles(self) -> dict[str, str]:
        props = self.fields.get("properties", {})
        return {name: str(spec.get("title", name)) for name, spec in props.items()}

    def field_order(self) -> list[str]:
        order = list(self.layout.get("field_order") or [])
        return order + [f for f in self.fields.get("properties", {}) if f not in order]


@functools.cache
def load_types() -> dict[str, CertificateType]:
    raw = json.loads((DATA / "certificate_types.json").read_text(encoding="utf-8"))
    types: dict[str, CertificateType] = {}
    for t in raw:
        types[t["code"]] = CertificateType(
            code=t["code"],
            name=t["name"],
            type_code=t["type_code"],
            definer_name=t["defining_authority"]["name"],
            definer_code=t["defining_authority"]["credit_code"],
            issuer_departments=tuple(t["issuer_departments"]),
            holder_kind=t["holder_kind"],
            validity_years=(t.get("validity") or {}).get("years"),
            fields=t["fields"],
            layout=t.get("layout") or {},
            one_live_per_holder=bool(t.get("one_live_per_holder")),
        )
    return types


def certificate_type(code: str) -> CertificateType:
    found = load_types().get(code)
    if found is None:
        raise InvalidInput("certificate.type_unknown", "证照类型不存在", fields={"type": "未知的证照类型"})
    return found


def type_by_type_code(type_code: str) -> CertificateType | None:
    for t in load_types().values():
        if t.type_code == type_code:
            return t
    return None


@functools.cache
def _validator(code: str) -> Callable[[Any], Any]:
    schema = {k: v for k, v in certificate_type(code).fields.items() if k != "$schema"}
    return fastjsonschema.compile(schema)  # type: ignore[no-any-return]


def validate_fields(ctype: CertificateType, fields: Any) -> dict[str, Any]:
    if not isinstance(fields, dict):
        raise InvalidInput("certificate.fields_invalid", "证照信息必须是对象", fields={"fields": "必须是对象"})
    try:
        _validator(ctype.code)(fields)
    except fastjsonschema.JsonSchemaValueException as exc:
        titles = ctype.field_titles()
        if exc.rule == "required" and isinstance(exc.rule_definition, list):
            missing = [f for f in exc.rule_definition if f not in fields]
            raise InvalidInput(
                "certificate.fields_invalid",
                "缺少证照信息：" + "、".join(titles.get(f, f) for f in missing),
                fields={f: "必填" for f in missing},
            ) from None
        if exc.rule == "additionalProperties":
            extra = sorted(set(fields) - set(titles))
            raise InvalidInput(
                "certificate.fields_invalid",
                "包含该证照类型没有的信息项：" + "、".join(extra),
                fields={f: "不允许" for f in extra},
            ) from None
        where = (exc.name or "data").removeprefix("data.").removeprefix("data") or "fields"
        raise InvalidInput(
            "certificate.fields_invalid",
            f"证照信息不符合「{ctype.name}」的要求：{titles.get(where, where)}",
            fields={where: "不符合要求"},
        ) from None
    return dict(fields)


# ---- GB/T 36904 identifier -----------------------------------------------------

_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ALNUM_VALUE = {c: i for i, c in enumerate(_ALNUM)}


def mod37_36_check(body: str) -> str:
    """ISO/IEC 7064 MOD 37,36 (hybrid) check character over 0-9A-Z."""
    m = 36
    p = m
    for ch in body:
        if ch not in _ALNUM_VALUE:
            raise InvalidInput("certificate.identifier_invalid", "证照标识含有不允许的字符")
        s = (p + _ALNUM_VALUE[ch]) % m or m
        p = (s * 2) % (m + 1)
    return _ALNUM[(m + 1 - p) % m]


@dataclass(frozen=True)
class Identifier:
    type_code: str
    issuer_code: str
    serial: str
    version: int

    @property
    def check(self) -> str:
        return mod37_36_check(self.type_code + self.issuer_code + self.serial + f"{self.version:03d}")

    def __str__(self) -> str:
        return f"{ROOT_CODE}.{self.type_code}.{self.issuer_code}.{self.serial}.{self.version:03d}.{self.check}"

    @property
    def series(self) -> str:
        """What every version of one certificate shares."""
        return f"{self.type_code}.{self.issuer_code}.{self.serial}"


def _bad_identifier(message: str) -> InvalidInput:
    return InvalidInput("certificate.identifier_invalid", message, fields={"identifier": message})


def parse_identifier(raw: Any) -> Identifier:
    """Parse and validate an identifier; every input path calls this."""
    if not isinstance(raw, str) or len(raw) > 120:
        raise _bad_identifier("证照标识格式不正确")
    value = raw.strip()
    if not value.isascii():  # no NFKC: full-width "００１" is refused, as for every identifier
        raise _bad_identifier("证照标识只能包含半角字符")
    value = value.upper()
    if not value.startswith(ROOT_CODE + "."):
        raise _bad_identifier("证照标识的根代码不正确")
    parts = value[len(ROOT_CODE) + 1 :].split(".")
    if len(parts) != 5:
        raise _bad_identifier("证照标识格式不正确")
    type_code, issuer_code, serial, version, check = parts
    if len(type_code) != 21 or not type_code[18:].isdigit():
        raise _bad_identifier("证照类型代码应为 18 位统一社会信用代码加 3 位顺序号")
    if len(issuer_code) != 18:
        raise _bad_identifier("颁发机构代码应为 18 位统一社会信用代码")
    if not serial or not serial.isalnum() or not serial.isascii() or len(serial) > 20:
        raise _bad_identifier("证照流水号格式不正确")
    if len(version) != 3 or not version.isdigit():
        raise _bad_identifier("证照版本号应为 3 位数字")
    if any(c not in _ALNUM_VALUE for c in type_code + issuer_code):
        raise _bad_identifier("证照标识含有不允许的字符")
    ident = Identifier(type_code, issuer_code, serial, int(version))
    if len(check) != 1 or check != ident.check:
        raise InvalidInput(
            "certificate.identifier_checksum", "证照标识校验位不正确，请核对", fields={"identifier": "校验位不正确"}
        )
    return ident


async def _next_serial(store: Store, type_code: str, issuer_code: str) -> str:
    counter = await store["certificate_serials"].find_one_and_update(
        {"_id": f"{type_code}.{issuer_code}"},
        {"$inc": {"seq": 1}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
    )
    assert counter is not None
    return f"{int(counter['seq']):0{SERIAL_DIGITS}d}"


# ---- canonical forms and signature ------------------------------------------------


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def fields_digest(fields: Mapping[str, Any]) -> bytes:
    """SM3 over the canonical JSON of the typed fields (what a copy prints)."""
    return sm3(canonical_json(dict(fields)))


def signed_core(doc: Mapping[str, Any]) -> bytes:
    """The canonical (RFC 8949 deterministic) CBOR map that is signed.

    Keys: 1 identifier without the root, 2 masked holder, 3 holder code type
    (111/001), 4 fields digest, 5 issued on, 6 valid from, 7 valid until or
    null, 8 key id. No personal data beyond the masked holder number.
    """
    core = {
        1: doc["identifier"][len(ROOT_CODE) + 1 :],
        2: doc["holder"]["masked"],
        3: doc["holder"]["code_type"],
        4: bytes.fromhex(doc["fields_digest"]),
        5: doc["issued_on"],
        6: doc["valid_from"],
        7: doc["valid_until"],
        8: bytes.fromhex(doc["signature"]["kid"]),
    }
    return cbor2.dumps(core, canonical=True)


def signing_message(core: bytes) -> bytes:
    """SM2 signs the SM3 digest of the canonical core (SM2 itself hashes again with Z)."""
    return sm3(core)


# ---- issue, re-issue, status ---------------------------------------------------------


def _date(raw: Any, name: str, *, required: bool) -> str | None:
    if raw is None and not required:
        return None
    if not isinstance(raw, str):
        raise InvalidInput("certificate.date_invalid", f"{name}必须是日期 YYYY-MM-DD", fields={name: "日期格式不正确"})
    try:
        return dt.date.fromisoformat(raw).isoformat()
    except ValueError:
        raise InvalidInput(
            "certificate.date_invalid", f"{name}必须是日期 YYYY-MM-DD", fields={name: "日期格式不正确"}
        ) from None


def _add_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


@dataclass(frozen=True)
class IssueRequest:
    """A validated request to issue (or re-issue) one certificate."""

    type: CertificateType
    department: departments.Department
    holder: identity.OneNumber
    holder_name: str
    number: str
    issued_on: str
    valid_from: str
    valid_until: str | None
    fields: dict[str, Any]
    related_item: str | None


def parse_issue_request(department_code: str, body: Mapping[str, Any]) -> IssueRequest:
    """Validate everything before anything is written."""
    raw_type = body.get("type")
    ctype = certificate_type(raw_type if isinstance(raw_type, str) else "")
    dept = departments.department(department_code)
    if dept.code not in ctype.issuer_departments:
        raise Forbidden("certificate.issuer_not_allowed", f"{dept.name}不是「{ctype.name}」的颁发机构")
    holder_raw = body.get("holder")
    holder_number = holder_raw.get("number") if isinstance(holder_raw, dict) else holder_raw
    if not isinstance(holder_number, str):
        raise InvalidInput("certificate.holder_invalid", "请提供持证主体代码", fields={"holder": "必填"})
    holder = identity.parse_one_number(holder_number)
    if holder.kind != ctype.holder_kind:
        raise InvalidInput(
            "certificate.holder_kind", "持证主体类型与证照类型不符", fields={"holder": "持证主体类型不符"}
        )
    fields = validate_fields(ctype, body.get("fields"))
    number = body.get("number")
    if not isinstance(number, str) or not 1 <= len(number.strip()) <= 64:
        raise InvalidInput("certificate.number_invalid", "请提供证照编号", fields={"number": "必填，最多 64 字"})
    issued_on = _date(body.get("issued_on"), "issued_on", required=True)
    assert issued_on is not None
    valid_from = _date(body.get("valid_from", issued_on), "valid_from", required=True)
    assert valid_from is not None
    if "valid_until" in body:
        valid_until = _date(body.get("valid_until"), "valid_until", required=False)
    elif ctype.validity_years:
        valid_until = _add_years(dt.date.fromisoformat(valid_from), ctype.validity_years).isoformat()
    else:
        valid_until = None
    if valid_until is not None and valid_until < valid_from:
        raise InvalidInput(
            "certificate.validity_invalid", "有效期截止日期早于起始日期", fields={"valid_until": "早于起始"}
        )
    holder_name = holder_raw.get("name") if isinstance(holder_raw, dict) else None
    if not isinstance(holder_name, str) or not holder_name.strip():
        holder_name = next((str(fields[f]) for f in HOLDER_NAME_FIELDS if isinstance(fields.get(f), str)), "")
    related = body.get("related_item")
    if related is not None and (not isinstance(related, str) or len(related) > 64):
        raise InvalidInput(
            "certificate.related_item_invalid", "关联事项编码不正确", fields={"related_item": "格式不正确"}
        )
    return IssueRequest(
        type=ctype,
        department=dept,
        holder=holder,
        holder_name=holder_name.strip()[:60],
        number=number.strip(),
        issued_on=issued_on,
        valid_from=valid_from,
        valid_until=valid_until,
        fields=fields,
        related_item=related,
    )


def request_digest(req: IssueRequest) -> str:
    """What makes two issue requests 'the same' (for idempotency)."""
    return sm3_hex(
        canonical_json(
            {
                "type": req.type.code,
                "department": req.department.code,
                "holder": req.holder.value,
                "holder_name": req.holder_name,
                "number": req.number,
                "issued_on": req.issued_on,
                "valid_from": req.valid_from,
                "valid_until": req.valid_until,
                "fields": req.fields,
                "related_item": req.related_item,
            }
        )
    )


async def prepare_certificate(
    services: Services, req: IssueRequest, *, serial: str | None = None, version: int = 1
) -> Document:
    """Build the full signed document (not yet stored)."""
    cipher = services.cipher
    if serial is None:
        serial = await _next_serial(services.store, req.type.type_code, req.department.credit_code)
    ident = Identifier(req.type.type_code, req.department.credit_code, serial, version)
    kid, signer = await departments.signer_for(services, req.department.code)
    holder = identity.protect_number(cipher, req.holder)
    now = utcnow()
    doc: Document = {
        "_id": uuid.uuid4().hex,
        "identifier": str(ident),
        "series": ident.series,
        "version": version,
        "name": req.type.name,
        "type": req.type.code,
        "type_code": req.type.type_code,
        "type_name": req.type.name,
        "number": cipher.blind_index(NUMBER_PURPOSE, req.number),
        "number_sealed": cipher.seal(NUMBER_PURPOSE, req.number),
        "issuer": {
            "code": req.department.code,
            "name": req.department.name,
            "credit_code": req.department.credit_code,
        },
        "definer": {"name": req.type.definer_name, "credit_code": req.type.definer_code},
        "issued_on": req.issued_on,
        "valid_from": req.valid_from,
        "valid_until": req.valid_until,
        "region": req.department.region,
        "holder": {
            **holder,
            "code_type": identity.HOLDER_CODE_TYPE[req.holder.kind],
            "name_sealed": cipher.seal(NAME_PURPOSE, req.holder_name) if req.holder_name else None,
            "name_masked": identity.mask_name(req.holder_name) if req.holder_name else "",
        },
        "related_item": req.related_item,
        "fields_sealed": cipher.seal(FIELDS_PURPOSE, canonical_json(req.fields).decode()),
        "fields_digest": fields_digest(req.fields).hex(),
        "status": "valid",
        "status_history": [{"status": "valid", "at": now, "reason": "签发", "by": req.department.code}],
        "supersedes": None,
        "superseded_by": None,
        **({"live_slot": live_slot(req.type.code, holder["index"])} if req.type.one_live_per_holder else {}),
        "created_at": now,
        "updated_at": now,
        "signature": {"alg": "SM2-SM3", "kid": kid, "department": req.department.code, "value": ""},
    }
    core = signed_core(doc)
    signature = await services.offload.run(signer.sign, signing_message(core))
    doc["signature"]["value"] = signature.hex()
    return doc


@dataclass(frozen=True)
class IssueResult:
    certificate: Document
    replayed: bool


async def issue(
    services: Services,
    department_code: str,
    body: Mapping[str, Any],
    *,
    idempotency_key: str,
    actor: audit.Actor | None = None,
) -> IssueResult:
    """同步签发: issue one certificate; the same key and body twice gives one certificate.

    The prepared document is stored with the request first, so a retry after a
    crash completes the same certificate (same identifier, same id).
    """
    if not isinstance(idempotency_key, str) or not 8 <= len(idempotency_key) <= 128:
        raise InvalidInput(
            "issuer.idempotency_key_invalid", "请提供 8–128 位的幂等键", fields={"Idempotency-Key": "必填"}
        )
    req = parse_issue_request(department_code, body)
    digest = request_digest(req)
    requests = services.store["issuer_requests"]
    request_id = f"{department_code}:{idempotency_key}"
    existing = await requests.find_one({"_id": request_id})
    if existing is None:
        prepared = await prepare_certificate(services, req)
        # The certificate carries its audit entry; a retry after a crash stores the same one.
        prepared[audit.PENDING_FIELD] = [
            audit.intent(
                actor or audit.Actor("department", department_code, req.department.name),
                "certificate.issue",
                prepared["_id"],
                channel="issuer",
                detail={"identifier": prepared["identifier"], "type": req.type.code},
            )
        ]
        try:
            await requests.insert_one(
                {"_id": request_id, "digest": digest, "certificate": prepared, "created_at": utcnow()}
            )
            existing = None
        except DuplicateKeyError:
            existing = await requests.find_one({"_id": request_id})
    if existing is not None:
        if existing["digest"] != digest:
            raise Conflict("issuer.idempotency_conflict", "同一幂等键已用于内容不同的签发请求")
        prepared = existing["certificate"]
    replayed = existing is not None
    stored = await _store_new(services, prepared, department_code)
    if stored is not None:
        return IssueResult(stored, True)
    prepared = dict(prepared)
    for pending in list(prepared.get(audit.PENDING_FIELD) or []):
        await audit.settle(services.store, "certificates", prepared, pending)
    return IssueResult(prepared, replayed)


def live_slot(type_code: str, holder_index: str) -> str:
    """The one live certificate of a one-per-holder type: a unique (sparse) key while valid."""
    return f"{type_code}:{holder_index}"


MAX_SLOT_TRIES = 50


async def _store_new(services: Services, doc: Document, department_code: str) -> Document | None:
    """Insert a prepared certificate; None when inserted now, the stored one when it already was.

    For a one-per-holder type the valid ones of the same holder are superseded first, and the
    unique sparse ``live_slot`` index makes a concurrent issue lose its insert: it supersedes
    the winner and tries again, so any number of concurrent issues leaves exactly one valid."""
    certs = services.store["certificates"]
    slot = doc.get("live_slot")
    for _ in range(MAX_SLOT_TRIES):
        if slot is not None:
            await _supersede_live(services, doc, department_code)
        try:
            await certs.insert_one(doc)
            return None
        except DuplicateKeyError:
            stored = await certs.find_one({"_id": doc["_id"]})
            if stored is not None:
                return stored  # the same certificate (a retried request)
            if slot is None or await certs.find_one({"identifier": doc["identifier"]}, {"_id": 1}) is not None:
                raise Conflict("certificate.duplicate", "证照标识冲突") from None
            # a concurrent issue took the slot: supersede it and try again
    raise Conflict("certificate.issue_contended", "该持证人的证照正在同时签发，请稍后重试")


async def _supersede_live(services: Services, new: Document, department_code: str) -> None:
    """Mark every valid certificate of ``new``'s type and holder superseded by ``new`` (audited)."""
    certs = services.store["certificates"]
    query = {"type": new["type"], "holder.index": new["holder"]["index"], "status": "valid",
             "_id": {"$ne": new["_id"]}}
    async for old in certs.find(query, {"_id": 1, "identifier": 1}):
        now = utcnow()
        pending = audit.intent(
            audit.Actor("department", department_code, new["issuer"]["name"]),
            "certificate.superseded",
            old["_id"],
            channel="issuer",
            detail={"identifier": old["identifier"], "superseded_by": new["identifier"]},
        )
        claimed = await certs.find_one_and_update(
            {"_id": old["_id"], "status": "valid"},
            {
                "$set": {"status": "superseded", "superseded_by": new["_id"], "updated_at": now},
                "$unset": {"live_slot": ""},
                "$push": {
                    "status_history": {"status": "superseded", "at": now, "reason": "签发新证，原证失效",
                                       "by": department_code},
                    **audit.pending_push(pending),
                },
            },
            return_document=ReturnDocument.AFTER,
        )
        if claimed is not None:
            await audit.settle(services.store, "certificates", claimed, pending)


async def get_by_identifier(store: Store, raw_identifier: str) -> Document:
    ident = parse_identifier(raw_identifier)
    doc = await store["certificates"].find_one({"identifier": str(ident)})
    if doc is None:
        raise NotFound("certificate.not_found", "找不到该证照")
    return doc


async def get_certificate(store: Store, certificate_id: str) -> Document:
    if not isinstance(certificate_id, str) or not certificate_id or len(certificate_id) > 64:
        raise NotFound("certificate.not_found", "找不到该证照")
    doc = await store["certificates"].find_one({"_id": certificate_id})
    if doc is None:
        raise NotFound("certificate.not_found", "找不到该证照")
    return doc


def effective_status(doc: Mapping[str, Any], today: dt.date | None = None) -> str:
    """The stored status, or 'expired' once the validity period has passed."""
    status = str(doc["status"])
    if status == "valid":
        today = today or local_today()
        if doc.get("valid_until") and doc["valid_until"] < today.isoformat():
            return "expired"
        if doc.get("valid_from") and doc["valid_from"] > today.isoformat():
            return "not_yet_valid"
    return status


async def issued_by(store: Store, department_code: str, raw_identifier: str) -> Document:
    doc = await get_by_identifier(store, raw_identifier)
    if doc["issuer"]["code"] != department_code:
        raise NotFound("certificate.not_found", "找不到该证照")  # others' certificates do not exist for you
    return doc


async def change_status(
    services: Services, department_code: str, raw_identifier: str, status: Any, reason: Any
) -> Document:
    """Revoke (撤销), cancel (注销), expire (失效) or withdraw (吊销) a valid certificate."""
    if not isinstance(status, str) or status not in ISSUER_STATUSES:
        raise InvalidInput(
            "certificate.status_invalid",
            "状态只能是 revoked、cancelled、expired 或 withdrawn",
            fields={"status": "无效"},
        )
    if not isinstance(reason, str) or not 1 <= len(reason.strip()) <= 200:
        raise InvalidInput("certificate.reason_required", "请说明原因（最多 200 字）", fields={"reason": "必填"})
    doc = await issued_by(services.store, department_code, raw_identifier)
    now = utcnow()
    pending = audit.intent(
        audit.Actor("department", department_code, doc["issuer"]["name"]),
        f"certificate.{status}",
        doc["_id"],
        channel="issuer",
        detail={"identifier": doc["identifier"], "reason": reason.strip()},
    )
    updated = await services.store["certificates"].find_one_and_update(
        {"_id": doc["_id"], "status": "valid"},
        {
            "$set": {"status": status, "updated_at": now},
            "$unset": {"live_slot": ""},  # no longer the live one: a new certificate may be issued
            "$push": {
                "status_history": {"status": status, "at": now, "reason": reason.strip(), "by": department_code},
                **audit.pending_push(pending),
            },
        },
        return_document=ReturnDocument.AFTER,
    )
    if updated is None:
        raise Conflict(
            "certificate.not_valid", f"该证照当前状态为「{STATUS_LABELS.get(doc['status'], doc['status'])}」，不能变更"
        )
    await audit.settle(services.store, "certificates", updated, pending)
    return updated


async def reissue(services: Services, department_code: str, raw_identifier: str, body: Mapping[str, Any]) -> Document:
    """Issue a new version of a valid certificate; the old one becomes 'superseded'."""
    old = await issued_by(services.store, department_code, raw_identifier)
    if old["status"] != "valid":
        raise Conflict("certificate.not_valid", "只有有效的证照可以换发新版本")
    holder = identity.reveal_number(services.cipher, old["holder"])
    merged = {
        "type": old["type"],
        "holder": {"number": holder.value, "name": _holder_name(services, old)},
        "number": services.cipher.open(NUMBER_PURPOSE, old["number_sealed"]),
        "related_item": old.get("related_item"),
        "fields": open_fields(services, old),
        **{k: v for k, v in body.items() if k in ("fields", "number", "issued_on", "valid_from", "valid_until")},
    }
    if "issued_on" not in body:
        merged["issued_on"] = local_today().isoformat()
    ctype = certificate_type(old["type"])
    if not ctype.validity_years and not {"valid_from", "valid_until"} & set(body):
        # No validity rule to restart from: the new version keeps the old period.
        merged["valid_from"], merged["valid_until"] = old["valid_from"], old["valid_until"]
    req = parse_issue_request(department_code, merged)
    ident = parse_identifier(old["identifier"])
    if ident.version >= 999:
        raise Conflict("certificate.version_exhausted", "版本号已用尽")
    new = await prepare_certificate(services, req, serial=ident.serial, version=ident.version + 1)
    new["supersedes"] = old["_id"]
    now = utcnow()
    # Claim the old version first: a concurrent re-issue loses here and writes nothing.
    claimed = await services.store["certificates"].find_one_and_update(
        {"_id": old["_id"], "status": "valid"},
        {
            "$set": {"status": "superseded", "superseded_by": new["_id"], "updated_at": now},
            "$unset": {"live_slot": ""},
            "$push": {
                "status_history": {"status": "superseded", "at": now, "reason": "换发新版本", "by": department_code}
            },
        },
    )
    if claimed is None:
        raise Conflict("certificate.not_valid", "只有有效的证照可以换发新版本")
    pending = audit.intent(
        audit.Actor("department", department_code, old["issuer"]["name"]),
        "certificate.reissue",
        new["_id"],
        channel="issuer",
        detail={"identifier": new["identifier"], "supersedes": old["identifier"]},
    )
    new[audit.PENDING_FIELD] = [pending]
    await _store_new(services, new, department_code)
    await audit.settle(services.store, "certificates", new, pending)
    return new


def _holder_name(services: Services, doc: Mapping[str, Any]) -> str:
    sealed = doc["holder"].get("name_sealed")
    return services.cipher.open(NAME_PURPOSE, sealed) if sealed else ""


# ---- views -------------------------------------------------------------------


def open_fields(services_or_cipher: Any, doc: Mapping[str, Any]) -> dict[str, Any]:
    cipher = getattr(services_or_cipher, "cipher", services_or_cipher)
    return json.loads(cipher.open(FIELDS_PURPOSE, doc["fields_sealed"]))  # type: ignore[no-any-return]


def summary(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Public metadata of one version (GB/T 36903), no personal data beyond masks."""
    status = effective_status(doc)
    return {
        "id": doc["_id"],
        "identifier": doc["identifier"],
        "version": doc["version"],
        "name": doc["name"],
        "type": {"code": doc["type"], "type_code": doc["type_code"], "name": doc["type_name"]},
        "issuer": dict(doc["issuer"]),
        "definer": dict(doc["definer"]),
        "issued_on": doc["issued_on"],
        "valid_from": doc["valid_from"],
        "valid_until": doc["valid_until"],
        "region": doc["region"],
        "holder": {
            "masked": doc["holder"]["masked"],
            "code_type": doc["holder"]["code_type"],
            "name_masked": doc["holder"].get("name_masked", ""),
        },
        "related_item": doc.get("related_item"),
        "status": status,
        "status_label": STATUS_LABELS.get(status, "尚未生效" if status == "not_yet_valid" else status),
        "supersedes": doc.get("supersedes"),
        "superseded_by": doc.get("superseded_by"),
    }


def full_view(cipher: Any, doc: Mapping[str, Any]) -> dict[str, Any]:
    """Everything, decrypted: for the holder and for parties given a copy."""
    ctype = load_types().get(doc["type"])
    fields = open_fields(cipher, doc)
    view = summary(doc)
    view["number"] = cipher.open(NUMBER_PURPOSE, doc["number_sealed"])
    view["fields"] = fields
    view["field_titles"] = ctype.field_titles() if ctype else {}
    view["field_order"] = ctype.field_order() if ctype else list(fields)
    view["status_history"] = [
        {
            "status": h["status"],
            "label": STATUS_LABELS.get(h["status"], h["status"]),
            "at": h["at"],
            "reason": h["reason"],
        }
        for h in doc.get("status_history", [])
    ]
    view["signature"] = {
        "alg": doc["signature"]["alg"],
        "kid": doc["signature"]["kid"],
        "value": doc["signature"]["value"],
    }
    return view


async def list_for_holder(store: Store, holder_index: str, *, include_history: bool = False) -> list[dict[str, Any]]:
    """The holder's certificates across all departments (current versions unless asked)."""
    query: dict[str, Any] = {"holder.index": holder_index}
    if not include_history:
        query["status"] = {"$ne": "superseded"}
    cursor = store["certificates"].find(query, sort=[("issued_on", -1), ("_id", 1)])
    return [summary(doc) async for doc in cursor]


async def expiring(store: Store, first_day: str, last_day: str, *, limit: int = 200) -> list[dict[str, Any]]:
    """Valid current certificates whose validity ends between two ISO dates (inclusive), soonest first:
    id, name, holder index and end date only."""
    cursor = store["certificates"].find(
        {"status": "valid", "valid_until": {"$gte": first_day, "$lte": last_day}},
        {"_id": 1, "name": 1, "holder.index": 1, "valid_until": 1},
        sort=[("valid_until", 1), ("_id", 1)],
        limit=limit,
    )
    return [
        {"id": d["_id"], "name": d["name"], "holder_index": d["holder"]["index"], "valid_until": d["valid_until"]}
        async for d in cursor
    ]


async def holder_certificate(store: Store, holder_index: str, certificate_id: str) -> Document:
    """The stored document if it is the holder's; NotFound for anybody else's ids."""
    doc = await get_certificate(store, certificate_id)
    if doc["holder"]["index"] != holder_index:
        raise NotFound("certificate.not_found", "找不到该证照")
    return doc


# ---- access history and annotated copies (加注件) -------------------------------------

COPY_VALID_DAYS_DEFAULT = 30


def watermark_text(purpose: str, made_at: dt.datetime) -> str:

    return f"仅供办理{purpose}使用 {format_local(made_at, '%Y-%m-%d')}"


def clean_purpose(raw: Any) -> str:
    if not isinstance(raw, str) or not 2 <= len(raw.strip()) <= 40:
        raise InvalidInput("certificate.purpose_required", "请说明用途（2–40 字）", fields={"purpose": "必填，2–40 字"})
    return raw.strip()


def new_copy(
    doc: Mapping[str, Any], redeemer: Redeemer, purpose: str, via: str, *, valid_days: int = COPY_VALID_DAYS_DEFAULT
) -> Document:
    made_at = utcnow()
    return {
        "_id": uuid.uuid4().hex,
        "certificate_id": doc["_id"],
        "identifier": doc["identifier"],
        "holder_index": doc["holder"]["index"],
        "made_at": made_at,
        "made_by": redeemer.as_dict(),
        "purpose": purpose,
        "valid_until": made_at + dt.timedelta(days=valid_days),
        "via": via,  # display_code | consent | holder_present | kiosk_pickup
        "watermark": watermark_text(purpose, made_at),
    }


def copy_view(copy: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": copy["_id"],
        "certificate_id": copy["certificate_id"],
        "identifier": copy["identifier"],
        "made_at": copy["made_at"],  # 制作时间
        "made_by": {"kind": copy["made_by"]["kind"], "label": copy["made_by"]["label"]},  # 制作者
        "purpose": copy["purpose"],  # 制作事由
        "valid_until": copy["valid_until"],  # 有效期截止
        "watermark": copy["watermark"],
    }


async def get_copy(store: Store, copy_id: str, redeemer: Redeemer) -> Document:
    """An annotated copy, only for whoever made it, only while it is valid."""
    copy = await store["certificate_copies"].find_one({"_id": copy_id}) if isinstance(copy_id, str) else None
    if copy is None or copy["made_by"]["kind"] != redeemer.kind or copy["made_by"]["id"] != redeemer.id:
        raise NotFound("certificate.copy_not_found", "找不到该加注件")
    valid_until = copy["valid_until"]
    if valid_until.tzinfo is None:
        valid_until = valid_until.replace(tzinfo=dt.UTC)
    if valid_until < utcnow():

        raise Gone("certificate.copy_expired", "该加注件已过有效期")
    return copy


async def record_access(
    store: Store,
    doc: Mapping[str, Any],
    actor: audit.Actor,
    action: str,
    *,
    channel: str,
    purpose: str = "",
) -> None:
    """An access that is not a copy (e.g. an online verification)."""
    await store["certificate_access"].insert_one(
        {
            "_id": uuid.uuid4().hex,
            "certificate_id": doc["_id"],
            "holder_index": doc["holder"]["index"],
            "at": utcnow(),
            "actor": asdict(actor),
            "action": action,
            "channel": channel,
            "purpose": purpose,
        }
    )


ACTION_LABELS = {"copy": "出示并制作加注件", "verify": "核验证照状态"}
COPY_LABELS = {"kiosk_pickup": "在自助终端制作加注件并存到本人手机"}


async def access_history(
    store: Store, holder_index: str, certificate_id: str, limit: int = 200
) -> list[dict[str, Any]]:
    """Every access to one of the holder's certificates (all its versions), newest first."""
    doc = await holder_certificate(store, holder_index, certificate_id)
    ids = [doc["_id"]]
    previous = doc.get("supersedes")
    while previous and len(ids) < 50:
        ids.append(previous)
        older = await store["certificates"].find_one({"_id": previous}, projection={"supersedes": 1})
        previous = older.get("supersedes") if older else None
    entries: list[dict[str, Any]] = []
    async for copy in store["certificate_copies"].find({"certificate_id": {"$in": ids}}, limit=limit):
        entries.append(
            {
                "at": copy["made_at"],
                "action": "copy",
                "action_label": COPY_LABELS.get(copy.get("via", ""), ACTION_LABELS["copy"]),
                "who": {"kind": copy["made_by"]["kind"], "label": copy["made_by"]["label"]},
                "who_kind_label": KIND_LABELS.get(copy["made_by"]["kind"], copy["made_by"]["kind"]),
                "purpose": copy["purpose"],
                "copy": copy_view(copy),
            }
        )
    async for access in store["certificate_access"].find({"certificate_id": {"$in": ids}}, limit=limit):
        entries.append(
            {
                "at": access["at"],
                "action": access["action"],
                "action_label": ACTION_LABELS.get(access["action"], access["action"]),
                "who": {"kind": access["actor"]["kind"], "label": access["actor"]["label"]},
                "who_kind_label": KIND_LABELS.get(access["actor"]["kind"], access["actor"]["kind"]),
                "purpose": access["purpose"],
                "copy": None,
            }
        )
    entries.sort(key=lambda e: e["at"], reverse=True)
    return entries[:limit]


# ---- demo data ---------------------------------------------------------------------


async def load_demo_certificates(services: Services) -> int:
    """Catalogue into `certificate_types`, a signing key per issuing department and
    the demo certificates of data/demo/certificates.json. Idempotent (keyed by
    a stable idempotency key per demo entry). Returns how many were new."""
    store = services.store
    for ctype in load_types().values():
        raw = {
            "code": ctype.code,
            "name": ctype.name,
            "type_code": ctype.type_code,
            "defining_authority": {"name": ctype.definer_name, "credit_code": ctype.definer_code},
            "issuer_departments": list(ctype.issuer_departments),
            "holder_kind": ctype.holder_kind,
            "validity": {"years": ctype.validity_years},
            "fields": dict(ctype.fields),
            "layout": dict(ctype.layout),
        }
        await store["certificate_types"].replace_one({"_id": ctype.code}, {"_id": ctype.code, **raw}, upsert=True)
    for code in sorted({d for t in load_types().values() for d in t.issuer_departments}):
        if code in departments.load_departments():
            await departments.signer_for(services, code)
    path = DATA / "demo" / "certificates.json"
    if not path.exists():
        return 0
    created = 0
    for entry in json.loads(path.read_text(encoding="utf-8")):
        body = {
            "type": entry["type"],
            "holder": {"number": entry["holder"]},
            "number": entry["number"],
            "issued_on": entry["issued_on"],
            "valid_until": entry.get("valid_until"),
            "fields": entry["fields"],
        }
        key = "demo-" + sm3_hex(canonical_json([entry["type"], entry["issuer"], entry["number"]]))[:32]
        result = await issue(services, entry["issuer"], body, idempotency_key=key, actor=audit.SYSTEM)
        created += 0 if result.replayed else 1
    return created


async def make_copy_for_holder(
    services: Services,
    holder_index: str,
    certificate_id: str,
    redeemer: Redeemer,
    purpose: Any,
    *,
    via: str = "holder_present",
) -> Document:
    """An annotated copy made in the holder's presence (e.g. printed at a kiosk after
    identification, or saved to the holder's phone: ``via="kiosk_pickup"``): recorded
    like any other copy, returned for rendering."""
    purpose_text = clean_purpose(purpose)
    doc = await holder_certificate(services.store, holder_index, certificate_id)
    status = effective_status(doc)
    if status != "valid":

        raise Gone(
            "certificate.revoked", f"该证照当前状态为「{STATUS_LABELS.get(status, status)}」", detail={"status": status}
        )
    copy = new_copy(doc, redeemer, purpose_text, via)
    await services.store["certificate_copies"].insert_one(copy)
    await audit.record(
        services.store,
        redeemer.actor,
        "certificate.copy",
        doc["_id"],
        channel=redeemer.channel,
        purpose=purpose_text,
        on_behalf_of=holder_index[:16],
        detail={"copy": copy["_id"], "via": via},
    )
    return copy
