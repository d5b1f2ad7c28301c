"""Applications (办件): drafts, forms, materials, submission with an
idempotency key, and the lifecycle a department drives.

Lifecycle::

    draft → submitted → accepted (受理) → in_review → approved → delivered
                    ↘ returned (补正, once) → submitted          ↘ refused

* The form is validated against the item's ``form_schema`` (fastjsonschema,
  field by field so every bad field is named) and stored sealed.
* Materials are uploads (``yiwang.uploads``) or certificates from the
  applicant's library by reference; both must belong to the applicant, and a
  certificate must be of the type the material asks for.
* A submission carries an idempotency key: a retried submit gives back the
  same application.
* Every transition appends ``{status, at, by, note}`` to ``history``; the
  promised deadline (working days) is set on acceptance.
* A status change enqueues a WeChat notification; a failure there never
  blocks the transition.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import logging
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import fastjsonschema
from pymongo import ReturnDocument, UpdateOne
from pymongo.errors import DuplicateKeyError

from yiwang import accounts, activity, audit, certificates, notifications, people
from yiwang.accounts import Principal
from yiwang.content_check import SCENE_PROFILE, ContentRefused, check_text
from yiwang.crypto import sm3_hex
from yiwang.errors import Conflict, Forbidden, InvalidInput, NotFound
from yiwang.identity import mask_name, reveal_number
from yiwang.timeutil import add_working_days, format_local, local_today, utcnow, working_days_between
from yiwang.uploads import checks_of, owned_upload

if TYPE_CHECKING:
    from yiwang.runtime import Services
    from yiwang.store import Document, Store

log = logging.getLogger(__name__)

FORM_PURPOSE = "application_form"
MAX_MATERIALS = 30
MAX_NOTE = 500

STATUS_LABELS = {
    "draft": "草稿",
    "submitted": "已提交",
    "returned": "待补正",
    "accepted": "已受理",
    "in_review": "审查中",
    "approved": "审批通过",
    "refused": "不予许可",
    "delivered": "已办结送达",
}
COMPLETED = frozenset({"delivered", "refused"})
DELIVERY_METHODS = {"certificate": "电子证照发放", "pickup": "窗口领取", "post": "邮寄送达"}

# action → (allowed from, to)
STAFF_TRANSITIONS: Mapping[str, tuple[frozenset[str], str]] = {
    "accept": (frozenset({"submitted"}), "accepted"),
    "return": (frozenset({"submitted"}), "returned"),
    "review": (frozenset({"accepted"}), "in_review"),
    "approve": (frozenset({"accepted", "in_review"}), "approved"),
    "refuse": (frozenset({"accepted", "in_review"}), "refused"),
    "deliver": (frozenset({"approved"}), "delivered"),
}


@dataclass(frozen=True)
class Applicant:
    """The person an application is for, and who is acting."""

    index: str  # blind index of the applicant's one number
    number: Mapping[str, str]  # protect_number() form: sealed, index, masked, kind
    masked_name: str
    account_id: str | None  # the applicant's mobile account (for notifications)
    actor: audit.Actor  # who is acting: the resident, or an agent
    agent: str | None = None  # agent code when an agent files for the resident
    authorisation: str | None = None
    name: str = ""  # the applicant's full name (opened in memory from the binding or the register)

    @property
    def channel(self) -> str:
        return "agent" if self.agent else "mobile"


async def applicant_of(services: Services, principal: Principal, level: int = 3) -> Applicant:
    """The resident as an applicant; needs ``level``."""
    index = principal.require_level(level)
    doc = await accounts.account(services, principal.account_id)
    sealed = (doc.get("name") or {}).get("sealed")
    name = services.cipher.open(people.NAME_PURPOSE, sealed) if sealed else await people.registered_name(
        services.store, services.cipher, index)
    return Applicant(
        index=index,
        number=doc["number"],
        masked_name=principal.masked_name,
        account_id=principal.account_id,
        actor=principal.actor,
        name=name,
    )


# ---- forms ------------------------------------------------------------------


@functools.lru_cache(maxsize=512)
def _compiled(schema_json: str) -> Callable[[Any], Any]:
    return fastjsonschema.compile(json.loads(schema_json))


def _validator(schema: Mapping[str, Any]) -> Callable[[Any], Any]:
    return _compiled(json.dumps(schema, sort_keys=True, ensure_ascii=False))


def validate_form(item: Mapping[str, Any], form: Any, *, partial: bool = False) -> dict[str, Any]:
    """The form checked against the item's schema; every bad field is named.

    ``partial`` (drafts): only the fields given are checked."""
    schema = item.get("form_schema")
    if not schema:
        raise InvalidInput("application.not_online", "该事项不支持在线申请，请到窗口办理")
    if form is None:
        form = {}
    if not isinstance(form, dict):
        raise InvalidInput("application.form_invalid", "申请表格式不正确", fields={"form": "必须是对象"})
    properties: Mapping[str, Any] = schema.get("properties", {})
    problems: dict[str, str] = {}
    for key, value in form.items():
        spec = properties.get(key)
        if spec is None:
            if schema.get("additionalProperties") is False:
                problems[key] = "表单中没有这一项"
            continue
        try:
            _validator({k: v for k, v in spec.items() if k != "title"})(value)
        except fastjsonschema.JsonSchemaException:
            problems[key] = _field_message(spec)
    if not partial:
        for key in schema.get("required", []):
            if key not in form or form[key] in ("", None):
                problems.setdefault(key, f"请填写{properties.get(key, {}).get('title', key)}")
    if not problems and not partial:
        try:
            _validator(schema)(form)
        except fastjsonschema.JsonSchemaException:
            problems["form"] = "申请表内容不符合要求"
    if problems:
        raise InvalidInput("application.form_invalid", "申请表有误，请按提示修改", fields=problems)
    return dict(form)


# Fields of every online form that say who the applicant is: the server fills them from the
# bound identity (or the resident's live authorisation, for an agent) and refuses other values.
IDENTITY_FIELDS = ("applicant_name", "id_number")
# Rules that make a string field a value, not free text (a code, a date, a choice): only free text is checked.
_NOT_FREE_TEXT = ("enum", "const", "pattern", "format")


def free_text_fields(item: Mapping[str, Any], form: Mapping[str, Any]) -> dict[str, str]:
    """The form's free-text answers (what staff will read as the resident wrote it), by field."""
    properties: Mapping[str, Any] = (item.get("form_schema") or {}).get("properties", {})
    return {
        key: value.strip()
        for key, value in form.items()
        if isinstance(value, str) and value.strip() and key not in IDENTITY_FIELDS
        and properties.get(key, {}).get("type") == "string"
        and not any(rule in properties.get(key, {}) for rule in _NOT_FREE_TEXT)
    }


async def check_form_text(
    services: Services, applicant: Applicant, item: Mapping[str, Any], form: Mapping[str, Any]
) -> str:
    """msgSecCheck over the form's free text (content_check): risky text is refused naming its fields,
    nothing stored; the verdict (pass / review / unchecked) is kept on the application for staff."""
    texts = free_text_fields(item, form)
    if not texts:
        return "pass"
    joined = "\n".join(texts.values())
    try:
        return await check_text(services, applicant.account_id, joined, SCENE_PROFILE, next(iter(texts)))
    except ContentRefused as refused:
        raise ContentRefused(fields={key: "请删除不当内容后再提交" for key in texts}) from refused


def with_applicant_identity(
    services: Services, item: Mapping[str, Any], form: Any, applicant: Applicant
) -> Any:
    """The form with the applicant's own name and number in the identity fields the item's form has.

    A value given for one of them that is not the applicant's is refused (nothing is written):
    a resident files for themself, an agent for the resident who authorised them."""
    if not isinstance(form, dict):
        return form  # validate_form names the problem
    properties = (item.get("form_schema") or {}).get("properties", {})

    number = reveal_number(services.cipher, dict(applicant.number)).value
    own = {"applicant_name": applicant.name, "id_number": number}
    problems: dict[str, str] = {}
    filled = dict(form)
    for key in IDENTITY_FIELDS:
        if key not in properties:
            continue
        given = form.get(key)
        if given not in (None, ""):
            text = given.strip() if isinstance(given, str) else given
            if key == "id_number" and isinstance(text, str):
                text = text.upper()
            known = own[key]
            if key == "applicant_name" and not known:  # a binding older than sealed names: the mask must agree
                if not isinstance(text, str) or mask_name(text) != applicant.masked_name:
                    problems[key] = "须为申请人本人的姓名"
                filled[key] = text
                continue
            if text != known:
                problems[key] = "须为申请人本人的信息（由系统按实名认证信息填写）"
                continue
        if own[key]:
            filled[key] = own[key]
    if problems:
        raise InvalidInput(
            "application.applicant_mismatch", "申请人姓名和身份证号码须与实名认证信息一致，不能为他人申请",
            fields=problems,
        )
    return filled


def _field_message(spec: Mapping[str, Any]) -> str:
    title = spec.get("title", "此项")
    if "enum" in spec:
        return f"{title}：请从选项中选择"
    if spec.get("format") == "date":
        return f"{title}：请填写日期，如 2026-01-31"
    if "pattern" in spec:
        return f"{title}：格式不正确"
    if "maxLength" in spec or "minLength" in spec:
        return f"{title}：长度应为 {spec.get('minLength', 0)}–{spec.get('maxLength', '')} 个字"
    return f"{title}：内容不正确"


# ---- materials ---------------------------------------------------------------


def _needs_submission(material: Mapping[str, Any]) -> bool:
    """Required, and not something the department fetches itself."""
    return bool(material.get("required", True)) and "无需申请人提交" not in material.get("note", "")


async def validate_materials(
    services: Services, item: Mapping[str, Any], applicant: Applicant, materials: Any, *, complete: bool
) -> list[dict[str, Any]]:
    """Each entry is ``{"material", "upload"}`` or ``{"material", "certificate"}``."""

    if materials is None:
        materials = []
    if not isinstance(materials, list) or len(materials) > MAX_MATERIALS:
        raise InvalidInput("application.materials_invalid", "材料清单格式不正确", fields={"materials": "必须是列表"})
    by_id = {m["id"]: m for m in item.get("materials", [])}
    problems: dict[str, str] = {}
    clean: list[dict[str, Any]] = []

    def key(kind: str, ref: Any) -> tuple[str, str] | None:
        if kind == "upload":
            return (kind, ref) if isinstance(ref, str) else None  # anything else is not an upload id
        return (kind, str(ref))

    async def lookup(ref: tuple[str, str]) -> Document | None:
        try:
            if ref[0] == "upload":
                return await owned_upload(services, applicant.index, ref[1])
            return await certificates.holder_certificate(services.store, applicant.index, ref[1])
        except NotFound:
            return None

    # Every referenced upload and certificate is read at once (concurrently), then checked in order.
    refs = list(
        dict.fromkeys(
            k
            for entry in materials
            if isinstance(entry, dict)
            for kind in ("upload", "certificate")
            if entry.get(kind) is not None and (k := key(kind, entry[kind])) is not None
        )
    )
    found = dict(zip(refs, await asyncio.gather(*(lookup(r) for r in refs)), strict=True))
    for n, entry in enumerate(materials):
        where = f"materials[{n}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("material"), str):
            problems[where] = "请说明是哪一项材料"
            continue
        spec = by_id.get(entry["material"])
        if spec is None:
            problems[where] = "该事项没有这项材料"
            continue
        upload_id, certificate_id = entry.get("upload"), entry.get("certificate")
        if (upload_id is None) == (certificate_id is None):
            problems[where] = "请上传文件或引用一个电子证照（二选一）"
            continue
        if upload_id is not None:
            upload_key = key("upload", upload_id)
            upload = found.get(upload_key) if upload_key else None
            if upload is None:
                problems[where] = "找不到该上传文件"
                continue
            if (upload.get("media_check") or {}).get("status") == "refused":
                problems[where] = "该图片未通过内容安全检测，请更换图片后重新上传"
                continue
            clean.append({"material": spec["id"], "name": spec["name"], "kind": "upload", "upload": upload["_id"]})
            continue
        if not spec.get("certificate_type"):
            problems[where] = "这项材料不能用电子证照代替"
            continue
        cert = found.get(("certificate", str(certificate_id)))
        if cert is None:
            problems[where] = "找不到该电子证照"
            continue
        if cert["type"] != spec["certificate_type"]:
            problems[where] = "该电子证照不是这项材料所需的证照"
            continue
        if certificates.effective_status(cert) != "valid":
            problems[where] = "该电子证照已失效"
            continue
        clean.append(
            {
                "material": spec["id"],
                "name": spec["name"],
                "kind": "certificate",
                "certificate": cert["_id"],
                "certificate_name": cert["name"],
            }
        )
    if complete and not problems:
        given = {m["material"] for m in clean}
        for spec in item.get("materials", []):
            if _needs_submission(spec) and spec["id"] not in given:
                problems[f"material:{spec['id']}"] = f"请提供：{spec['name']}"
    if problems:
        raise InvalidInput("application.materials_invalid", "材料不齐全或有误", fields=problems)
    return clean


# ---- creating and submitting -------------------------------------------------


def _tracking_number() -> str:
    return "YW" + local_today().strftime("%Y%m%d") + secrets.token_hex(4).upper()


def _fingerprint(item_code: str, form: Mapping[str, Any], materials: list[dict[str, Any]]) -> str:
    body = {
        "item": item_code,
        "form": form,
        "materials": [(m["material"], m.get("upload") or m.get("certificate")) for m in materials],
    }
    return sm3_hex(json.dumps(body, sort_keys=True, ensure_ascii=False).encode())


def _check_key(key: Any) -> str:
    if not isinstance(key, str) or not 8 <= len(key) <= 128 or not key.isprintable():
        raise InvalidInput(
            "application.idempotency_key_required",
            "提交申请须带 Idempotency-Key 请求头（8–128 个字符）",
            fields={"Idempotency-Key": "必填"},
        )
    return key


async def _online_item(services: Services, item_code: Any) -> Document:
    if not isinstance(item_code, str) or not item_code:
        raise InvalidInput("application.item_required", "请选择事项", fields={"item": "必填"})
    item = await services.catalog.item(item_code)
    if "mobile" not in item.get("channels", []) or not item.get("form_schema"):
        raise InvalidInput(
            "application.not_online", "该事项不支持在线申请，请到窗口办理", fields={"item": "不支持在线办理"}
        )
    return item


def _by(actor: audit.Actor, on_behalf_of: str | None = None) -> dict[str, Any]:
    return {"kind": actor.kind, "id": actor.id, "label": actor.label, "on_behalf_of": on_behalf_of}


async def create(
    services: Services,
    applicant: Applicant,
    item_code: Any,
    form: Any,
    materials: Any,
    *,
    submit: bool,
    idempotency_key: Any = None,
) -> tuple[Document, bool]:
    """A new draft, or a submitted application. Returns (document, replayed)."""
    item = await _online_item(services, item_code)
    key = _check_key(idempotency_key) if submit else None
    clean_form = validate_form(item, with_applicant_identity(services, item, form, applicant), partial=not submit)
    clean_materials = await validate_materials(services, item, applicant, materials, complete=submit)
    content_verdict = await check_form_text(services, applicant, item, clean_form)
    now = utcnow()
    app_id = uuid.uuid4().hex
    if key is not None:
        fingerprint = _fingerprint(item["code"], clean_form, clean_materials)
        key_id = f"{applicant.actor.kind}:{applicant.actor.id}:{key}"
        try:
            await services.store["idempotency_keys"].insert_one(
                {"_id": key_id, "application": app_id, "fingerprint": fingerprint, "created_at": now}
            )
        except DuplicateKeyError:
            previous = await services.store["idempotency_keys"].find_one({"_id": key_id})
            if previous is None or previous["fingerprint"] != fingerprint:
                raise Conflict(
                    "application.idempotency_conflict", "同一 Idempotency-Key 已用于内容不同的提交"
                ) from None
            existing = await services.store["applications"].find_one({"_id": previous["application"]})
            if existing is None:
                raise Conflict("application.in_progress", "相同的提交正在处理，请稍后查询") from None
            return existing, True
    status = "submitted" if submit else "draft"
    doc: Document = {
        "_id": app_id,
        "tracking_number": _tracking_number(),
        "item": item["code"],
        "item_name": item["name"],
        "department": item["department"],
        "applicant_index": applicant.index,  # top-level copy: the resident's list reads it (list_for_applicant)
        "applicant": {
            "index": applicant.index,
            "number": dict(applicant.number),
            "masked_name": applicant.masked_name,
            "account_id": applicant.account_id,
        },
        "agent": applicant.agent,
        "authorisation": applicant.authorisation,
        "status": status,
        "form": services.cipher.seal(FORM_PURPOSE, json.dumps(clean_form, ensure_ascii=False)),
        "materials": clean_materials,
        "content_check": content_verdict,
        "history": [
            {
                "status": status,
                "at": now,
                "by": _by(applicant.actor, applicant.index if applicant.agent else None),
                "note": "",
            }
        ],
        "correction": None,
        "deadline": None,
        "result": None,
        "created_at": now,
        "updated_at": now,
        "submitted_at": now if submit else None,
        "completed_at": None,
        "evaluation": None,
        "invited_at": None,
    }
    pending = audit.intent(
        applicant.actor,
        f"application.{status}",
        app_id,
        channel=applicant.channel,
        on_behalf_of=applicant.index if applicant.agent else None,
        detail={"item": item["code"]},
    )
    doc[audit.PENDING_FIELD] = [pending]  # the application and its audit entry are one write
    await services.store["applications"].insert_one(doc)
    recorded = audit.settle(services.store, "applications", doc, pending)
    if submit:  # the audit entry, the notice and the day's counts are independent: one round trip of waiting
        await asyncio.gather(recorded, _notify(services, doc), _count_submission(services, item["code"], now))
    else:
        await recorded
    return doc, False


async def for_applicant(services: Services, applicant_index: str, application_id: Any) -> Document:
    """The application if it is this person's; NotFound for anybody else's ids."""
    if not isinstance(application_id, str) or len(application_id) > 64:
        raise NotFound("application.not_found", "找不到该申请")
    doc = await services.store["applications"].find_one({"_id": application_id, "applicant.index": applicant_index})
    if doc is None:
        raise NotFound("application.not_found", "找不到该申请")
    return doc


async def open_for_applicant(
    services: Services, applicant_index: str, actor: audit.Actor, application_id: Any
) -> Document:
    """The applicant's own application with its form (personal data): the read is audited."""
    doc = await for_applicant(services, applicant_index, application_id)
    await audit.record(services.store, actor, "application.read", doc["_id"], channel="mobile")
    return doc


async def update_draft(
    services: Services, applicant: Applicant, application_id: str, form: Any, materials: Any
) -> Document:
    doc = await for_applicant(services, applicant.index, application_id)
    if doc["status"] != "draft":
        raise Conflict("application.not_draft", "只有草稿可以修改")
    item = await services.catalog.item(doc["item"])
    clean_form = validate_form(item, with_applicant_identity(services, item, form, applicant), partial=True)
    clean_materials = await validate_materials(services, item, applicant, materials, complete=False)
    content_verdict = await check_form_text(services, applicant, item, clean_form)
    updated = await services.store["applications"].find_one_and_update(
        {"_id": doc["_id"], "status": "draft"},
        {
            "$set": {
                "form": services.cipher.seal(FORM_PURPOSE, json.dumps(clean_form, ensure_ascii=False)),
                "materials": clean_materials,
                "content_check": content_verdict,
                "updated_at": utcnow(),
            }
        },
        return_document=ReturnDocument.AFTER,
    )
    if updated is None:
        raise Conflict("application.not_draft", "只有草稿可以修改")
    await audit.record(
        services.store, applicant.actor, "application.draft_saved", doc["_id"], channel=applicant.channel
    )
    return updated


async def submit_draft(services: Services, applicant: Applicant, application_id: str, idempotency_key: Any) -> Document:
    """Submit a saved draft; submitting it again is harmless (same application)."""
    _check_key(idempotency_key)
    doc = await for_applicant(services, applicant.index, application_id)
    if doc["status"] != "draft":
        if doc["status"] == "submitted" or doc.get("submitted_at"):
            return doc  # a retried submit
        raise Conflict("application.not_draft", "只有草稿可以提交")
    item = await services.catalog.item(doc["item"])
    stored_form = json.loads(services.cipher.open(FORM_PURPOSE, doc["form"]))
    form = with_applicant_identity(services, item, stored_form, applicant)
    validate_form(item, form)
    await validate_materials(
        services,
        item,
        applicant,
        [{"material": m["material"], m["kind"]: m[m["kind"]]} for m in doc["materials"]],
        complete=True,
    )
    now = utcnow()
    pending = audit.intent(applicant.actor, "application.submitted", doc["_id"], channel=applicant.channel)
    updated = await services.store["applications"].find_one_and_update(
        {"_id": doc["_id"], "status": "draft"},
        {
            "$set": {
                "status": "submitted",
                "submitted_at": now,
                "updated_at": now,
                "form": services.cipher.seal(FORM_PURPOSE, json.dumps(form, ensure_ascii=False)),
            },
            "$push": {
                "history": {"status": "submitted", "at": now, "by": _by(applicant.actor), "note": ""},
                **audit.pending_push(pending),
            },
        },
        return_document=ReturnDocument.AFTER,
    )
    if updated is None:
        again = await for_applicant(services, applicant.index, application_id)
        return again
    await audit.settle(services.store, "applications", updated, pending)
    await _count_submission(services, doc["item"], now)
    await _notify(services, updated)
    return updated


async def supplement(
    services: Services, applicant: Applicant, application_id: str, materials: Any, note: Any = ""
) -> Document:
    """补正: provide what the department asked for; the application goes back to 'submitted'."""
    doc = await for_applicant(services, applicant.index, application_id)
    if doc["status"] != "returned":
        raise Conflict("application.not_returned", "该申请不需要补正")
    item = await services.catalog.item(doc["item"])
    added = await validate_materials(services, item, applicant, materials, complete=False)
    asked = set(doc["correction"]["materials"])
    given = {m["material"] for m in added}
    missing = [m for m in doc["correction"]["materials"] if m not in given]
    names = {m["id"]: m["name"] for m in item.get("materials", [])}
    problems = {f"material:{m}": f"请提供：{names.get(m, m)}" for m in missing}
    problems.update({f"material:{m}": "补正通知中没有要求这项材料" for m in given - asked})
    if problems:
        raise InvalidInput("application.correction_incomplete", "请一次提供全部补正材料", fields=problems)
    kept = [m for m in doc["materials"] if m["material"] not in given]
    now = utcnow()
    pending = audit.intent(applicant.actor, "application.supplemented", doc["_id"], channel=applicant.channel)
    updated = await services.store["applications"].find_one_and_update(
        {"_id": doc["_id"], "status": "returned"},
        {
            "$set": {
                "status": "submitted",
                "materials": kept + added,
                "updated_at": now,
                "correction.supplied_at": now,
            },
            "$push": {
                "history": {"status": "submitted", "at": now, "by": _by(applicant.actor), "note": "已补正"},
                **audit.pending_push(pending),
            },
        },
        return_document=ReturnDocument.AFTER,
    )
    if updated is None:
        raise Conflict("application.not_returned", "该申请不需要补正")
    await audit.settle(services.store, "applications", updated, pending)
    await _notify(services, updated)
    return updated


# ---- staff transitions -----------------------------------------------------------


@dataclass(frozen=True)
class Staff:
    department: str
    actor: audit.Actor


async def staff_get(services: Services, staff: Staff, application_id: Any) -> Document:
    if not isinstance(application_id, str) or len(application_id) > 64:
        raise NotFound("application.not_found", "找不到该申请")
    doc = await services.store["applications"].find_one({"_id": application_id, "department": staff.department})
    if doc is None or doc["status"] == "draft":
        raise NotFound("application.not_found", "找不到该申请")
    await audit.record(
        services.store, staff.actor, "application.read", doc["_id"], channel="console", on_behalf_of=None
    )
    return doc


async def staff_list(services: Services, staff: Staff, status: Any = None, limit: int = 100) -> list[Document]:
    query: dict[str, Any] = {"department": staff.department, "status": {"$ne": "draft"}}
    if status is not None:
        if status not in STATUS_LABELS or status == "draft":
            raise InvalidInput("application.status_invalid", "状态无效", fields={"status": "无效"})
        query["status"] = status
    cursor = services.store["applications"].find(query, sort=[("updated_at", -1)], limit=limit)
    return [doc async for doc in cursor]


async def transition(
    services: Services, staff: Staff, application_id: Any, action: Any, body: Mapping[str, Any]
) -> Document:
    """A department moves an application on; every step is recorded with who and when."""
    if action not in STAFF_TRANSITIONS:
        raise InvalidInput("application.action_invalid", "操作无效", fields={"action": "无效的操作"})
    allowed_from, target = STAFF_TRANSITIONS[action]
    note = body.get("note", "")
    if not isinstance(note, str) or len(note) > MAX_NOTE:
        raise InvalidInput("application.note_invalid", "备注最多 500 字", fields={"note": "最多 500 字"})
    doc = await staff_get(services, staff, application_id)
    if doc["status"] not in allowed_from:
        raise Conflict(
            "application.transition_invalid", f"当前状态为「{STATUS_LABELS[doc['status']]}」，不能进行此操作"
        )
    item = await services.catalog.item(doc["item"])
    now = utcnow()
    sets: dict[str, Any] = {"status": target, "updated_at": now}
    if action == "return":
        if doc.get("correction") is not None:
            raise Conflict("application.correction_used", "补正只能要求一次，且须一次性告知全部材料")
        wanted = body.get("materials")
        known = {m["id"] for m in item.get("materials", [])}
        if not isinstance(wanted, list) or not wanted or any(m not in known for m in wanted):
            raise InvalidInput(
                "application.correction_invalid",
                "请一次性列出需要补正的全部材料",
                fields={"materials": "请选择该事项的材料"},
            )
        if not note.strip():
            raise InvalidInput("application.correction_invalid", "请说明补正要求", fields={"note": "必填"})
        sets["correction"] = {
            "materials": list(dict.fromkeys(wanted)),
            "note": note.strip(),
            "requested_at": now,
            "supplied_at": None,
        }
    elif action == "accept":
        days = int(item.get("promised_days") or 0)
        start = local_today()
        sets["deadline"] = {
            "date": add_working_days(start, days).isoformat(),
            "working_days": days,
            "accepted_on": start.isoformat(),
        }
    elif action == "refuse":
        if not note.strip():
            raise InvalidInput("application.reason_required", "不予许可须说明理由", fields={"note": "必填"})
        sets["completed_at"] = now
    elif action == "deliver":
        sets["result"] = await _deliver(services, staff, doc, item, body)
        sets["completed_at"] = now
    pending = audit.intent(
        staff.actor, f"application.{target}", doc["_id"], channel="console", detail={"action": action}
    )
    updated = await services.store["applications"].find_one_and_update(
        {"_id": doc["_id"], "status": doc["status"]},
        {
            "$set": sets,
            "$push": {
                "history": {"status": target, "at": now, "by": _by(staff.actor), "note": note.strip()},
                **audit.pending_push(pending),
            },
        },
        return_document=ReturnDocument.AFTER,
    )
    if updated is None:
        raise Conflict("application.transition_invalid", "申请状态已被他人更新，请刷新后重试")
    await audit.settle(services.store, "applications", updated, pending)
    await _notify(services, updated)
    return updated


async def _deliver(
    services: Services, staff: Staff, doc: Document, item: Mapping[str, Any], body: Mapping[str, Any]
) -> dict[str, Any]:
    method = body.get("method")
    if not isinstance(method, str) or method not in DELIVERY_METHODS:
        raise InvalidInput(
            "application.delivery_invalid", "请选择送达方式：certificate、pickup 或 post", fields={"method": "无效"}
        )
    result: dict[str, Any] = {"method": method, "label": DELIVERY_METHODS[method]}
    if method == "certificate":
        ctype = item.get("result_certificate_type")
        if not ctype:
            raise InvalidInput("application.no_certificate", "该事项不产生电子证照", fields={"method": "不适用"})
        cert_body = body.get("certificate")
        if not isinstance(cert_body, dict):
            raise InvalidInput(
                "application.certificate_required",
                "请提供证照信息",
                fields={"certificate": "必填：number、issued_on、fields"},
            )

        holder = reveal_number(services.cipher, doc["applicant"]["number"])
        issued = await certificates.issue(
            services,
            staff.department,
            {
                **cert_body,
                "type": ctype,
                "holder": {"number": holder.value, "name": cert_body.get("holder_name", "")},
                "related_item": doc["item"],
            },
            idempotency_key=f"application:{doc['_id']}",
            actor=staff.actor,
        )
        result["certificate_id"] = issued.certificate["_id"]
        result["certificate_name"] = issued.certificate["name"]
    elif method == "pickup":
        place = body.get("place", "")
        if not isinstance(place, str) or not 1 <= len(place) <= 100:
            raise InvalidInput("application.place_required", "请说明领取地点", fields={"place": "必填"})
        result["place"] = place
    else:
        tracking = body.get("tracking", "")
        if not isinstance(tracking, str) or not 1 <= len(tracking) <= 40:
            raise InvalidInput("application.tracking_required", "请填写邮件号", fields={"tracking": "必填"})
        result["tracking"] = tracking
    return result


# ---- reading ---------------------------------------------------------------------


async def list_for_applicant(services: Services, applicant_index: str, limit: int = 100) -> list[Document]:
    """A resident's applications, most recently changed first. Equality on one top-level indexed field and
    no sort in the query: the form the embedded engine answers from its index whatever the collection's
    size (docs/embedded-db.md); a resident has few applications, so they are ordered here."""
    cursor = services.store["applications"].find({"applicant_index": applicant_index})
    found = [doc async for doc in cursor]
    found.sort(key=lambda doc: doc.get("updated_at") or doc.get("created_at") or _EPOCH, reverse=True)
    return found[:limit]


async def list_for_agent(
    services: Services, agent_code: str, authorisation_ids: list[str], limit: int = 100
) -> list[Document]:
    """What the agent filed under these (live) authorisations: nothing of a resident who revoked."""
    if not authorisation_ids:
        return []
    cursor = services.store["applications"].find(
        {"agent": agent_code, "authorisation": {"$in": authorisation_ids}}, sort=[("updated_at", -1)], limit=limit
    )
    return [doc async for doc in cursor]


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def due_date(deadline: Mapping[str, Any]) -> dt.date:
    """The promised date under today's calendar (a schedule entered later moves it)."""
    if deadline.get("accepted_on"):
        return add_working_days(dt.date.fromisoformat(deadline["accepted_on"]), int(deadline["working_days"]))
    return dt.date.fromisoformat(deadline["date"])


async def redate_open_deadlines(store: Store, year: int) -> int:
    """Keep the stored due dates of open matters in step with a newly entered year's schedule
    (the figures query by the stored date; what people see is computed by ``due_date``)."""
    cursor = store["applications"].find(
        {"status": {"$nin": sorted(COMPLETED)}, "deadline.date": {"$gte": dt.date(year - 1, 1, 1).isoformat()}},
        projection={"deadline": 1},
    )
    updates: list[UpdateOne] = []
    async for doc in cursor:
        deadline = doc.get("deadline") or {}
        due = due_date(deadline).isoformat()
        if due != deadline.get("date"):
            updates.append(UpdateOne({"_id": doc["_id"]}, {"$set": {"deadline.date": due}}))
    for start in range(0, len(updates), 500):
        await store["applications"].bulk_write(updates[start : start + 500], ordered=False)
    return len(updates)


def deadline_view(doc: Mapping[str, Any], today: dt.date | None = None) -> dict[str, Any] | None:
    deadline = doc.get("deadline")
    if not deadline:
        return None
    due = due_date(deadline)
    today = today or local_today()
    done = doc["status"] in COMPLETED
    left = working_days_between(today, due)
    return {
        "date": due.isoformat(),
        "promised_working_days": deadline["working_days"],
        "working_days_left": None if done else left,
        "overdue": (not done) and left < 0,
    }


def view(services: Services, doc: Mapping[str, Any], *, detail: bool = False) -> dict[str, Any]:
    """What the resident (or agent, or staff) sees of an application."""
    out: dict[str, Any] = {
        "id": doc["_id"],
        "tracking_number": doc["tracking_number"],
        "item": {"code": doc["item"], "name": doc["item_name"]},
        "department": doc["department"],
        "status": doc["status"],
        "status_label": STATUS_LABELS[doc["status"]],
        "applicant": {"name": doc["applicant"]["masked_name"], "id_number": doc["applicant"]["number"]["masked"]},
        "agent": doc.get("agent"),
        "submitted_at": doc.get("submitted_at"),
        "updated_at": doc["updated_at"],
        "deadline": deadline_view(doc),
        "correction": _correction_view(doc.get("correction")),
        "result": doc.get("result"),
    }
    if detail:
        out["form"] = json.loads(services.cipher.open(FORM_PURPOSE, doc["form"]))
        out["materials"] = [dict(m) for m in doc["materials"]]
        out["history"] = [
            {
                "status": h["status"],
                "status_label": STATUS_LABELS[h["status"]],
                "at": h["at"],
                "by": {"kind": h["by"]["kind"], "label": h["by"]["label"]},
                "note": h.get("note", ""),
            }
            for h in doc["history"]
        ]
    return out


async def detail_view(services: Services, doc: Mapping[str, Any], *, for_staff: bool = False) -> dict[str, Any]:
    """The detailed view, with each uploaded material's content check: the resident (or their agent)
    sees a refused image marked with WeChat's reason; staff never see a refused image (it is withheld)."""
    out = view(services, doc, detail=True)

    checks = await checks_of(services.store, [m["upload"] for m in out["materials"] if m.get("kind") == "upload"])
    materials = []
    for shown in out["materials"]:
        check = checks.get(shown.get("upload", ""), {}) if shown.get("kind") == "upload" else {}
        if not for_staff:
            materials.append({**shown, **check})
        elif check.get("check") == "refused":
            materials.append({"material": shown["material"], "name": shown["name"], "kind": "upload", "withheld": True})
        else:
            materials.append(shown)
    out["materials"] = materials
    if for_staff:  # the form's free text as WeChat judged it: "review" asks the reader to look twice
        out["content_check"] = doc.get("content_check", "unchecked")
    return out


def _correction_view(correction: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not correction:
        return None
    return {
        "materials": list(correction["materials"]),
        "note": correction["note"],
        "requested_at": correction["requested_at"],
        "supplied_at": correction.get("supplied_at"),
    }


async def _count_submission(services: Services, item_code: str, at: dt.datetime) -> None:
    """The day's counts follow a durable submission: a failure is logged, never the answer."""
    try:
        await activity.record_submission(services.store, item_code, at)
    except Exception:
        log.warning("submission not counted", extra={"fields": {"item": item_code}})


async def enqueue_status_change(services: Services, application: Mapping[str, Any]) -> bool:
    """The applicant's WeChat notice of a new status (their subscription permitting)."""
    account_id = application["applicant"].get("account_id")
    if account_id is None:  # filed at a kiosk or by an agent authorised at a kiosk
        bound = await services.store["wechat_accounts"].find_one(
            {"person_index": application["applicant"]["index"]}, {"_id": 1}
        )
        account_id = bound["_id"] if bound else None
    return await notifications.enqueue(
        services,
        account_id,
        "application_status",
        {
            "item": application["item_name"],
            "status": STATUS_LABELS[application["status"]],
            "tracking_number": application["tracking_number"],
            "time": format_local(application["updated_at"]),
        },
        f"pages/applications/detail?id={application['_id']}",
        application["_id"],
    )



async def _notify(services: Services, doc: Document) -> None:
    """Queue the WeChat notice; a failure here never blocks the transition."""
    try:
        await enqueue_status_change(services, doc)
    except Exception:
        log.exception("notification enqueue failed", extra={"fields": {"application": doc["_id"]}})


def require_same_person(doc: Mapping[str, Any], index: str) -> None:
    if doc["applicant"]["index"] != index:
        raise Forbidden("application.forbidden", "无权查看该申请")
