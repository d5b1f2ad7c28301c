"""亮证: a holder shows one certificate through a single-use display code.

* The token is 128 random bits in Base32 (26 characters): QR text
  ``YWD1:<26 chars>`` — 31 characters of the QR alphanumeric set, a version 2
  QR at level M. No personal data in it; only its SM3 digest is stored.
* Valid 60 seconds, renewable (renewal retires the old code).
* Redemption by a kiosk or window is one conditional ``find_one_and_update``
  (so a code is used once, however many redeem it at the same moment), then
  one annotated-copy record (加注件) that the holder sees at once.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import secrets
import uuid
from typing import TYPE_CHECKING, Any

from pymongo import ReturnDocument

from yiwang import audit, certificates, verification
from yiwang.certificates import Redeemer
from yiwang.crypto import token_digest
from yiwang.errors import Conflict, Gone, InvalidInput, NotFound
from yiwang.timeutil import utcnow

if TYPE_CHECKING:
    from yiwang.runtime import Services
    from yiwang.store import Document

PREFIX = "YWD1:"
LIFETIME = dt.timedelta(seconds=60)
TOKEN_CHARS = 26
REPEAT_WINDOW = dt.timedelta(minutes=10)  # a repeat within the same visit shows the same copy


def _new_token() -> str:
    return base64.b32encode(secrets.token_bytes(16)).decode("ascii").rstrip("=")


def _token_from_text(text: Any) -> str:
    if not isinstance(text, str):
        raise InvalidInput("certificate.display_code_invalid", "亮证码格式不正确", fields={"code": "格式不正确"})
    value = text.strip().upper()
    value = value.removeprefix(PREFIX)
    if len(value) != TOKEN_CHARS or any(c not in "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567" for c in value):
        raise InvalidInput("certificate.display_code_invalid", "亮证码格式不正确", fields={"code": "格式不正确"})
    return value


def _public(token: str, doc: Document) -> dict[str, Any]:
    return {
        "code": PREFIX + token,  # the QR text
        "handle": doc["handle"],  # non-secret id the holder's app can use to renew
        "certificate_id": doc["certificate_id"],
        "purpose": doc["purpose"],
        "expires_at": doc["expires_at"],
        "lifetime_seconds": int(LIFETIME.total_seconds()),
    }


async def create_display_code(
    services: Services, holder_index: str, certificate_id: str, purpose: Any
) -> dict[str, Any]:
    """A fresh display code for one of the holder's own valid certificates."""
    purpose_text = certificates.clean_purpose(purpose)
    doc = await certificates.holder_certificate(services.store, holder_index, certificate_id)
    _require_valid(doc)
    return await _insert(services, doc, holder_index, purpose_text)


async def _insert(services: Services, cert: Document, holder_index: str, purpose: str) -> dict[str, Any]:
    token = _new_token()
    now = utcnow()
    code: Document = {
        "_id": token_digest(token),
        "handle": uuid.uuid4().hex,
        "certificate_id": cert["_id"],
        "holder_index": holder_index,
        "purpose": purpose,
        "status": "active",
        "created_at": now,
        "expires_at": now + LIFETIME,
    }
    await services.store["display_codes"].insert_one(code)
    await audit.record(
        services.store,
        audit.Actor("resident", holder_index[:16], "持证人"),
        "certificate.display_code",
        cert["_id"],
        channel="mobile",
        purpose=purpose,
    )
    return _public(token, code)


async def renew_display_code(services: Services, holder_index: str, handle: str) -> dict[str, Any]:
    """Retire the holder's code (by its handle) and issue a fresh one for the same certificate and purpose."""
    if not isinstance(handle, str) or len(handle) != 32:
        raise NotFound("certificate.display_code_unknown", "找不到该亮证码")
    old = await services.store["display_codes"].find_one_and_update(
        {"handle": handle, "holder_index": holder_index, "status": "active"},
        {"$set": {"status": "renewed", "renewed_at": utcnow()}},
    )
    if old is None:
        raise NotFound("certificate.display_code_unknown", "找不到该亮证码，或它已被使用")
    cert = await certificates.holder_certificate(services.store, holder_index, old["certificate_id"])
    _require_valid(cert)
    return await _insert(services, cert, holder_index, old["purpose"])


def _require_valid(doc: Document) -> None:
    status = certificates.effective_status(doc)
    if status != "valid":
        raise Gone(
            "certificate.revoked",
            f"该证照当前状态为「{certificates.STATUS_LABELS.get(status, status)}」，不能出示",
            detail={"status": status},
        )


async def redeem_display_code(
    services: Services, code: Any, redeemer: Redeemer, *, visit: str | None = None
) -> dict[str, Any]:
    """Redeem a scanned display code: the certificate, watermarked, once.

    ``visit`` is the redeemer's opaque key for one visit (a kiosk's ``kiosk_visit`` cookie, cleared
    when the service ends): the same redeemer repeating the same code within the same visit (a page
    reloaded, a double tap) gets the same result and the same copy record, not a second one.

    Errors: ``certificate.display_code_invalid`` (400, malformed),
    ``certificate.display_code_unknown`` (404), ``certificate.display_code_used`` (409),
    ``certificate.display_code_expired`` (410), ``certificate.revoked`` (410).
    """
    token = _token_from_text(code)
    digest = token_digest(token)
    now = utcnow()
    codes = services.store["display_codes"]
    copy_id = uuid.uuid4().hex
    claimed = await codes.find_one_and_update(
        {"_id": digest, "status": "active", "expires_at": {"$gt": now}},
        {"$set": {"status": "used", "used_at": now, "redeemer": redeemer.as_dict(), "copy_id": copy_id,
                  "visit": token_digest(visit) if visit else None}},
        return_document=ReturnDocument.AFTER,
    )
    if claimed is None:
        existing = await codes.find_one({"_id": digest})
        if existing is None:
            raise NotFound("certificate.display_code_unknown", "亮证码无效，请让持证人重新出示")
        if existing["status"] == "used":
            repeated = await _repeat(services, existing, redeemer, visit)
            if repeated is not None:
                return repeated
            raise Conflict("certificate.display_code_used", "该亮证码已被使用，请让持证人重新出示")
        raise Gone("certificate.display_code_expired", "亮证码已过期，请让持证人刷新后重新出示")
    cert = await certificates.get_certificate(services.store, claimed["certificate_id"])
    _require_valid(cert)
    copy = {**certificates.new_copy(cert, redeemer, claimed["purpose"], "display_code"), "_id": copy_id}
    await asyncio.gather(
        services.store["certificate_copies"].insert_one(copy),
        audit.record(
            services.store,
            redeemer.actor,
            "certificate.redeem",
            cert["_id"],
            channel=redeemer.channel,
            purpose=claimed["purpose"],
            detail={"copy": copy["_id"], "via": "display_code"},
        ),
    )
    return delivered(services, cert, copy)


async def _repeat(
    services: Services, used: Document, redeemer: Redeemer, visit: str | None
) -> dict[str, Any] | None:
    """The same redeemer, the same visit, within ``REPEAT_WINDOW``: the copy already made, shown again."""
    if not visit or used.get("visit") != token_digest(visit) or not used.get("copy_id"):
        return None
    if (used.get("redeemer") or {}).get("id") != redeemer.id or used["used_at"] + REPEAT_WINDOW < utcnow():
        return None
    copy = await services.store["certificate_copies"].find_one({"_id": used["copy_id"]})
    if copy is None:
        return None
    cert = await certificates.get_certificate(services.store, used["certificate_id"])
    _require_valid(cert)
    await audit.record(services.store, redeemer.actor, "certificate.redeem_repeat", cert["_id"],
                       channel=redeemer.channel, purpose=used["purpose"],
                       detail={"copy": copy["_id"], "via": "display_code"})
    return delivered(services, cert, copy)


def delivered(services: Services, cert: Document, copy: Document) -> dict[str, Any]:
    """What a redeeming party receives: the certificate, the copy record and its watermark."""

    view = certificates.full_view(services.cipher, cert)
    view.pop("status_history", None)
    return {
        "certificate": view,
        "copy": certificates.copy_view(copy),
        "watermark": {
            "text": copy["watermark"],
            "purpose": copy["purpose"],
            "made_at": copy["made_at"],
            "made_by": copy["made_by"]["label"],
        },
        "verification_qr": verification.payload_for(cert),
    }
