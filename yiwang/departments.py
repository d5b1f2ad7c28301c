"""Issuing departments as the certificate library sees them: who they are
(from ``data/departments.json``), their API credentials (issuer API, window
scanners) and their SM2 signing keys.

* Credentials are bearer tokens ``<credential id>.<secret>``; only the SM3
  digest of the secret is stored.
* Each department has one active SM2 key pair; the private key is stored
  sealed by ``services.cipher`` and cached in-process as an ``SM2Signer``.
  Public keys are published (``published_keys``) so anyone can verify offline.
"""

from __future__ import annotations

import functools
import json
import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pymongo.errors import DuplicateKeyError

from yiwang import audit, versioned
from yiwang.crypto import SM2Signer, constant_time_equal, sm3, token_digest
from yiwang.errors import Conflict, NotAuthenticated, NotFound
from yiwang.timeutil import utcnow
from yiwang.versioned import Versioned

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


async def create_credential(store: Store, department_code: str, kind: CredentialKind, label: str = "") -> str:
    """Create a credential and return its bearer token (shown once, never stored)."""
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
    projection = {"secret_digest": 0}
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
        or not constant_time_equal(doc["secret_digest"], token_digest(secret))
    ):
        raise NotAuthenticated("department.credential_invalid", "部门凭证无效")
    return Credential(id=doc["_id"], kind=doc["kind"], department=doc["department"], label=doc["label"])


# ---- signing keys -----------------------------------------------------------


def key_id(public_key_raw: bytes) -> str:
    """Key id: the first 8 bytes of SM3(04‖x‖y), hex."""
    return sm3(public_key_raw)[:8].hex()


@dataclass
class KeyRing:
    """In-process cache of signers and public keys (read-mostly)."""

    signers: dict[str, tuple[str, SM2Signer]] = field(default_factory=dict)
    public: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def aclose(self) -> None:
        self.signers.clear()
        self.public.clear()


def keyring(services: Services) -> KeyRing:
    ring = services.extras.get("department_keys")
    if ring is None:
        ring = services.extras["department_keys"] = KeyRing()
    return ring  # type: ignore[no-any-return]


async def signer_for(services: Services, department_code: str) -> tuple[str, SM2Signer]:
    """The department's active (kid, signer); created on first use."""
    ring = keyring(services)
    cached = ring.signers.get(department_code)
    if cached is not None:
        return cached
    dept = department(department_code)
    keys = services.store["signing_keys"]
    doc = await keys.find_one({"department": dept.code, "status": "active"})
    if doc is None:
        signer = await services.offload.run(SM2Signer.generate)
        raw = signer.public_key_raw()
        doc = {
            "_id": f"{dept.code}:1",
            "kid": key_id(raw),
            "department": dept.code,
            "public_key": raw.hex(),
            "public_pem": signer.public_pem(),
            "private_sealed": services.cipher.seal(SIGNING_KEY_PURPOSE, signer.private_pem().decode()),
            "status": "active",
            "created_at": utcnow(),
        }
        try:
            await keys.insert_one(doc)
        except DuplicateKeyError:  # another request created it first
            doc = await keys.find_one({"_id": f"{dept.code}:1"})
            assert doc is not None
        else:
            await versioned.bump(services.store, KEYS_VERSION_ID)  # every process republishes its keys
    signer = SM2Signer.from_pem(services.cipher.open(SIGNING_KEY_PURPOSE, doc["private_sealed"]).encode())
    ring.signers[department_code] = (doc["kid"], signer)
    return doc["kid"], signer


def _public_view(doc: dict[str, Any]) -> dict[str, Any]:
    dept = department(doc["department"])
    return {
        "kid": doc["kid"],
        "department": {"code": dept.code, "name": dept.name, "credit_code": dept.credit_code},
        "public_key": doc["public_key"],
        "public_key_pem": doc["public_pem"],
        "status": doc["status"],
        "created_at": doc["created_at"],
    }


async def public_key(services: Services, kid: str) -> dict[str, Any] | None:
    """The published view of one key (cached), or None if unknown."""
    ring = keyring(services)
    if kid in ring.public:
        return ring.public[kid]
    doc = await services.store["signing_keys"].find_one({"kid": kid})
    if doc is None:
        return None
    view = _public_view(doc)
    ring.public[kid] = view
    return view


async def published_keys(store: Store) -> list[dict[str, Any]]:
    """Every department's public keys, from the database (see :func:`published` for the cached list)."""
    cursor = store["signing_keys"].find({}, sort=[("department", 1), ("created_at", 1)])
    return [_public_view(doc) async for doc in cursor]


KEYS_VERSION_ID = "signing_keys_version"
PUBLISHED_KEYS = "published_keys"


def published(services: Services) -> Versioned[list[dict[str, Any]]]:
    """The published keys in memory, reloaded when a key is added in any process (``yiwang.versioned``)."""
    cache: Versioned[list[dict[str, Any]]] | None = services.extras.get(PUBLISHED_KEYS)
    if cache is None:
        store = services.store

        async def load(_version: int) -> list[dict[str, Any]]:
            return await published_keys(store)

        cache = services.extras[PUBLISHED_KEYS] = Versioned(store, KEYS_VERSION_ID, load)
    return cache


# ---- replay protection for the issuer API -----------------------------------------

MAX_CLOCK_SKEW_SECONDS = 300


async def check_fresh(store: Store, credential: Credential, timestamp: Any, nonce: Any, *, now: float) -> None:
    """Refuse stale or replayed requests: the timestamp within ±5 minutes, the
    nonce (16–64 characters) never seen before for this credential."""
    try:
        moment = int(str(timestamp))
    except ValueError:
        raise NotAuthenticated("issuer.timestamp_invalid", "请求时间戳无效") from None
    if abs(now - moment) > MAX_CLOCK_SKEW_SECONDS:
        raise NotAuthenticated("issuer.stale_request", "请求时间与服务器相差超过 5 分钟")
    if not isinstance(nonce, str) or not 16 <= len(nonce) <= 64 or not nonce.isascii() or not nonce.isalnum():
        raise NotAuthenticated("issuer.nonce_invalid", "请求随机数应为 16–64 位字母或数字")
    try:
        await store["issuer_nonces"].insert_one({"_id": f"{credential.id}:{nonce}", "at": utcnow()})
    except DuplicateKeyError:
        raise Conflict("issuer.replayed", "重复的请求（随机数已使用）") from None
