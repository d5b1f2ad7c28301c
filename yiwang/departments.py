"""Issuing departments as the certificate library sees them: who they are
(from ``data/departments.json``), their API credentials (issuer API, window
scanners) and their SM2 signing keys.

* Window credentials are bearer tokens ``<credential id>.<secret>``; only the SM3
  digest of the secret is stored.
* Issuer credentials are SM2 key pairs: the platform stores the public key and the
  department's system signs every issuer API request with the private key
  (``yiwang.issuer_signing``), which it is shown once or never sends at all.
* Each department has one active SM2 key pair; the private key is stored
  sealed by ``services.cipher`` and cached in-process as an ``SM2Signer``.
  Public keys are published (``published_keys``) so anyone can verify offline.
"""

from __future__ import annotations

import functools
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pymongo.errors import DuplicateKeyError

from yiwang import audit, issuer_signing, versioned
from yiwang.crypto import SM2Signer, constant_time_equal, sm2_public_key_raw, sm3, token_digest
from yiwang.errors import Conflict, InvalidInput, NotAuthenticated, NotFound
from yiwang.timeutil import utcnow

if TYPE_CHECKING:
    from yiwang.runtime import Services
    from yiwang.store import Document, Store

DATA = Path(__file__).resolve().parent.parent / "data"
SIGNING_KEY_PURPOSE = "sm2_signing_key"
CredentialKind = Literal["issuer", "window"]


@dataclass(frozen=True)
class Department:
    code: str
    name: str
    credit_code: str
    region: str


@functools.cache
def load_departments() -> dict[str, Department]:
    raw = json.loads((DATA / "departments.json").read_text(encoding="utf-8"))
    return {
        d["code"]: Department(code=d["code"], name=d["name"], credit_code=d["credit_code"], region=d["region"])
        for d in raw
    }


def department(code: str) -> Department:
    found = load_departments().get(code)
    if found is None:
        raise NotFound("department.unknown", "找不到该部门")
    return found


def department_by_credit_code(credit_code: str) -> Department | None:
    for dept in load_departments().values():
        if dept.credit_code == credit_code:
            return dept
    return None


# ---- credentials ------------------------------------------------------------


@dataclass(frozen=True)
class Credential:
    id: str
    kind: CredentialKind
    department: str
    label: str


@dataclass(frozen=True)
class IssuerCredential:
    """A new issuer credential: its id, and the private key if the platform generated it (shown once)."""

    id: str
    department: str
    public_key: str  # 04‖x‖y, hex
    private_pem: bytes | None = field(default=None, repr=False)


async def create_issuer_credential(
    store: Store, department_code: str, label: str = "", *, public_key_pem: bytes | None = None
) -> IssuerCredential:
    """An SM2 issuer credential. With ``public_key_pem`` the department keeps a key it made itself;
    otherwise a key pair is generated and its private key returned (never stored)."""
    dept = department(department_code)
    signer = None if public_key_pem is not None else SM2Signer.generate()
    raw = sm2_public_key_raw(public_key_pem) if public_key_pem is not None else signer.public_key_raw()  # type: ignore[union-attr]
    credential_id = uuid.uuid4().hex
    await store["department_credentials"].insert_one(
        {
            "_id": credential_id,
            "kind": "issuer",
            "department": dept.code,
            "label": label or dept.name,
            "public_key": raw.hex(),
            "alg": issuer_signing.ALGORITHM,
            "created_at": utcnow(),
            "revoked": False,
        }
    )
    return IssuerCredential(
        credential_id, dept.code, raw.hex(), signer.private_pem() if signer is not None else None
    )


async def create_credential(store: Store, department_code: str, kind: CredentialKind, label: str = "") -> str:
    """Create a window credential and return its bearer token (shown once, never stored).
    Issuer credentials are key pairs: :func:`create_issuer_credential`."""
    if kind != "window":
        raise InvalidInput("credential.kind", "签发凭证是 SM2 密钥对：请使用 create_issuer_credential")
    dept = department(department_code)
    credential_id = uuid.uuid4().hex
    secret = secrets.token_urlsafe(32)
    await store["department_credentials"].insert_one(
        {
            "_id": credential_id,
            "kind": kind,
            "department": dept.code,
            "label": label or dept.name,
            "secret_digest": token_digest(secret),
            "created_at": utcnow(),
            "revoked": False,
        }
    )
    return f"{credential_id}.{secret}"


async def revoke_credential(store: Store, credential_id: str, by: audit.Actor) -> None:
    result = await store["department_credentials"].update_one(
        {"_id": credential_id, "revoked": False}, {"$set": {"revoked": True, "revoked_at": utcnow()}}
    )
    if result.matched_count == 0:
        raise NotFound("credential.not_found", "找不到该凭证，或已吊销")
    await audit.record(store, by, "credential.revoked", f"credential:{credential_id}", channel="system")


async def list_credentials(store: Store) -> list[Document]:
    """Every credential without its digest, for operators."""
    projection = {"secret_digest": 0, "public_key": 0}
    return [d async for d in store["department_credentials"].find({}, projection, sort=[("created_at", 1)])]


async def authenticate(store: Store, token: str, kind: CredentialKind) -> Credential:
    """Check a bearer token of the given kind; a clear 401 otherwise."""
    credential_id, _, secret = (token or "").strip().partition(".")
    if not credential_id or not secret or len(token) > 200:
        raise NotAuthenticated("department.credential_invalid", "部门凭证无效")
    doc = await store["department_credentials"].find_one({"_id": credential_id})
    if (
        doc is None
        or doc.get("revoked")
        or doc["kind"] != kind
        or "secret_digest" not in doc  # issuer credentials have no bearer secret: they sign
        or not constant_time_equal(doc["secret_digest"], token_digest(secret))
    ):
        raise NotAuthenticated("department.credential_invalid", "部门凭证无效")
    return Credential(id=doc["_id"], kind=doc["kind"], department=doc["department"], label=doc["label"])


# ---- signing keys -----------------------------------------------------------


def key_id(public_key_raw: bytes) -> str:
    """Key id: the first 8 bytes of SM3(04‖x‖y), hex."""
    return sm3(public_key_raw)[:8].hex()


SIGNER_CACHE_SECONDS = 60.0  # a rotation made by another process is taken up within this


@dataclass
class KeyRing:
    """In-process cache of signers (60 s, so another process's rotation is seen) and public keys
    (immutable once published: a key's status and validity are re-read for the published list)."""

    signers: dict[str, tuple[float, str, SM2Signer]] = field(default_factory=dict)
    public: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def aclose(self) -> None:
        self.signers.clear()
        self.public.clear()


def keyring(services: Services) -> KeyRing:
    return services.resources.get(KeyRing)


async def _new_key_doc(services: Services, dept_code: str, generation: int) -> dict[str, Any]:
    signer = await services.offload.run(SM2Signer.generate)
    raw = signer.public_key_raw()
    now = utcnow()
    return {
        "_id": f"{dept_code}:{generation}",
        "kid": key_id(raw),
        "department": dept_code,
        "generation": generation,
        "public_key": raw.hex(),
        "public_pem": signer.public_pem(),
        "private_sealed": services.cipher.seal(SIGNING_KEY_PURPOSE, signer.private_pem().decode()),
        "status": "active",
        "created_at": now,
        "not_before": now,
        "not_after": None,
    }


async def signer_for(services: Services, department_code: str) -> tuple[str, SM2Signer]:
    """The department's active (kid, signer), the newest if a rotation is under way; created on first use."""
    ring = keyring(services)
    cached = ring.signers.get(department_code)
    if cached is not None and time.monotonic() - cached[0] < SIGNER_CACHE_SECONDS:
        return cached[1], cached[2]
    dept = department(department_code)
    keys = services.store["signing_keys"]
    doc = await keys.find_one({"department": dept.code, "status": "active"}, sort=[("created_at", -1)])
    if doc is None:
        doc = await _new_key_doc(services, dept.code, 1)
        try:
            await keys.insert_one(doc)
        except DuplicateKeyError:  # another request created it first
            doc = await keys.find_one({"_id": f"{dept.code}:1"})
            assert doc is not None
        else:
            await versioned.bump(services.store, KEYS_VERSION_ID)  # every process republishes its keys
    signer = SM2Signer.from_pem(services.cipher.open(SIGNING_KEY_PURPOSE, doc["private_sealed"]).encode())
    ring.signers[department_code] = (time.monotonic(), doc["kid"], signer)
    return doc["kid"], signer


async def rotate_signing_key(services: Services, department_code: str, *, by: audit.Actor) -> dict[str, Any]:
    """A new SM2 key for the department: new signatures use it; the old one is retired
    (``not_after`` = now) and stays published, so what it signed still verifies."""
    dept = department(department_code)
    keys = services.store["signing_keys"]
    current = [d async for d in keys.find({"department": dept.code})]
    generation = max((int(d.get("generation") or str(d["_id"]).rsplit(":", 1)[-1]) for d in current), default=0) + 1
    doc = await _new_key_doc(services, dept.code, generation)
    try:
        await keys.insert_one(doc)
    except DuplicateKeyError:
        raise Conflict("signing_key.rotation_running", "另一次密钥轮换正在进行，请稍后再试") from None
    now = doc["created_at"]
    await keys.update_many(
        {"department": dept.code, "status": "active", "_id": {"$ne": doc["_id"]}},
        {"$set": {"status": "retired", "not_after": now, "retired_at": now}},
    )
    keyring(services).signers.pop(dept.code, None)
    await audit.record(services.store, by, "signing_key.rotate", f"signing_key:{doc['kid']}", channel="console",
                       detail={"department": dept.code, "generation": generation})  # fmt: skip
    return _public_view(doc)


def _public_view(doc: dict[str, Any]) -> dict[str, Any]:
    dept = department(doc["department"])
    return {
        "kid": doc["kid"],
        "department": {"code": dept.code, "name": dept.name, "credit_code": dept.credit_code},
        "public_key": doc["public_key"],
        "public_key_pem": doc["public_pem"],
        "status": doc["status"],
        "created_at": doc["created_at"],
        # validity: signatures made from not_before until not_after (null: still signing) verify for good
        "not_before": doc.get("not_before") or doc["created_at"],
        "not_after": doc.get("not_after"),
    }


async def public_key(services: Services, kid: str) -> dict[str, Any] | None:
    """The published view of one key (cached: the public key never changes), or None if unknown."""
    ring = keyring(services)
    if kid in ring.public:
        return ring.public[kid]
    doc = await services.store["signing_keys"].find_one({"kid": kid})
    if doc is None:
        return None
    view = _public_view(doc)
    if len(ring.public) >= 1024:
        ring.public.clear()
    ring.public[kid] = view
    return view


async def published_keys(store: Store) -> list[dict[str, Any]]:
    """Every department's public keys, from the database (see :func:`published` for the cached list)."""
    cursor = store["signing_keys"].find({}, sort=[("department", 1), ("created_at", 1)])
    return [_public_view(doc) async for doc in cursor]


KEYS_VERSION_ID = "signing_keys_version"


class PublishedKeys(versioned.Versioned[list[dict[str, Any]]]):
    """The published keys in memory, reloaded when a key is added in any process (``yiwang.versioned``):
    a resource of the process."""

    def __init__(self, store: Store) -> None:
        async def load(_version: int) -> list[dict[str, Any]]:
            return await published_keys(store)

        super().__init__(store, KEYS_VERSION_ID, load)


def published(services: Services) -> PublishedKeys:
    return services.resources.get(PublishedKeys)


# ---- signed issuer API requests ---------------------------------------------------


async def authenticate_issuer(store: Store, request: issuer_signing.SignedRequest, *, now: float) -> Credential:
    """A signed issuer request: form and freshness first, then the credential's SM2 signature over
    method, target, timestamp, nonce and the body's SM3, and only then the nonce is spent (a forged
    request cannot use up a department's nonces). Every refusal is a 401."""
    signature = issuer_signing.check_form(request, now=now)
    doc = await store["department_credentials"].find_one({"_id": request.credential_id})
    if doc is None or doc.get("revoked") or doc["kind"] != "issuer" or "public_key" not in doc:
        raise NotAuthenticated("department.credential_invalid", "部门凭证无效")
    issuer_signing.verify(request, bytes.fromhex(doc["public_key"]), signature)
    try:
        await store["issuer_nonces"].insert_one({"_id": f"{doc['_id']}:{request.nonce}", "at": utcnow()})
    except DuplicateKeyError:
        raise NotAuthenticated("issuer.replayed", "重复的请求（随机数已使用）") from None
    return Credential(id=doc["_id"], kind="issuer", department=doc["department"], label=doc["label"])
