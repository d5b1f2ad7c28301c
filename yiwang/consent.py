"""扫码取证: a kiosk asks, the holder's phone consents.

1. The kiosk (or window) opens a session: :func:`create_consent_session` gives
   a session id (kept by the kiosk) and a QR text ``YWS1:<26 chars>`` (128
   random bits, no personal data) that the kiosk shows.
2. The holder scans it in the mini-program: :func:`describe_consent_session`
   says which kiosk is asking and for what, and lists the holder's valid
   certificates; :func:`release_to_session` releases exactly the chosen ones.
3. The kiosk awaits :func:`wait_for_release` (an in-process ``asyncio.Event``
   wakes it at once; a DB poll covers releases handled by another process)
   and receives those certificates, for that session only.
4. :func:`end_consent_session` wipes the release from the session.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import secrets
import uuid
from typing import TYPE_CHECKING, Any

from pymongo import ReturnDocument

from yiwang import audit, certificates, display_codes
from yiwang.certificates import Redeemer
from yiwang.crypto import token_digest
from yiwang.errors import Conflict, Gone, InvalidInput, NotFound
from yiwang.timeutil import as_utc, utcnow
from yiwang.wakeups import WakeUps, wakeups

if TYPE_CHECKING:
    from yiwang.runtime import Services
    from yiwang.store import Document

PREFIX = "YWS1:"
LIFETIME = dt.timedelta(minutes=5)
POLL_SECONDS = 0.5
MAX_RELEASE = 10


def hub(services: Services) -> WakeUps:
    return wakeups(services, "consent")


def _digest_from_text(text: Any) -> str:
    if not isinstance(text, str):
        raise InvalidInput("consent.code_invalid", "取证码格式不正确", fields={"code": "格式不正确"})
    value = text.strip().upper().removeprefix(PREFIX)
    if len(value) != 26 or any(c not in "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567" for c in value):
        raise InvalidInput("consent.code_invalid", "取证码格式不正确", fields={"code": "格式不正确"})
    return token_digest(value)


async def create_consent_session(services: Services, redeemer: Redeemer, purpose: Any) -> dict[str, Any]:
    purpose_text = certificates.clean_purpose(purpose)
    token = base64.b32encode(secrets.token_bytes(16)).decode("ascii").rstrip("=")
    now = utcnow()
    doc: Document = {
        "_id": uuid.uuid4().hex,
        "token_digest": token_digest(token),
        "kiosk": redeemer.as_dict(),
        "purpose": purpose_text,
        "status": "waiting",
        "created_at": now,
        "expires_at": now + LIFETIME,
        "holder_index": None,
        "released": [],
        "copies": [],
    }
    await services.store["consent_sessions"].insert_one(doc)
    return {
        "session_id": doc["_id"],
        "qr_text": PREFIX + token,
        "purpose": purpose_text,
        "expires_at": doc["expires_at"],
    }


async def _session_by_code(services: Services, text: Any) -> Document:
    doc = await services.store["consent_sessions"].find_one({"token_digest": _digest_from_text(text)})
    if doc is None:
        raise NotFound("consent.unknown", "取证码无效，请在终端上重新获取")
    if doc["status"] != "waiting":
        raise Conflict("consent.used", "该取证码已使用或会话已结束")
    if as_utc(doc["expires_at"]) <= utcnow():
        raise Gone("consent.expired", "取证码已过期，请在终端上重新获取")
    return doc


async def describe_consent_session(services: Services, holder_index: str, code: Any) -> dict[str, Any]:
    """What the holder sees after scanning: who asks, for what, and what they could release."""
    doc = await _session_by_code(services, code)
    mine = await certificates.list_for_holder(services.store, holder_index)
    return {
        "requester": {"kind": doc["kiosk"]["kind"], "label": doc["kiosk"]["label"]},
        "purpose": doc["purpose"],
        "expires_at": doc["expires_at"],
        "certificates": [c for c in mine if c["status"] == "valid"],
    }


async def release_to_session(services: Services, holder_index: str, code: Any, certificate_ids: Any) -> dict[str, Any]:
    """Release exactly the chosen certificates to the asking kiosk session."""
    if (
        not isinstance(certificate_ids, list)
        or not 1 <= len(certificate_ids) <= MAX_RELEASE
        or not all(isinstance(c, str) for c in certificate_ids)
    ):
        raise InvalidInput(
            "consent.selection_invalid", f"请选择 1–{MAX_RELEASE} 个证照", fields={"certificate_ids": "选择有误"}
        )
    ids = list(dict.fromkeys(certificate_ids))
    session = await _session_by_code(services, code)
    certs = [await certificates.holder_certificate(services.store, holder_index, cid) for cid in ids]
    for cert in certs:
        display_codes._require_valid(cert)
    kiosk = Redeemer(**session["kiosk"])
    copies = [certificates.new_copy(cert, kiosk, session["purpose"], "consent") for cert in certs]
    claimed = await services.store["consent_sessions"].find_one_and_update(
        {"_id": session["_id"], "status": "waiting", "expires_at": {"$gt": utcnow()}},
        {
            "$set": {
                "status": "released",
                "holder_index": holder_index,
                "released": ids,
                "copies": [c["_id"] for c in copies],
                "released_at": utcnow(),
            }
        },
        return_document=ReturnDocument.AFTER,
    )
    if claimed is None:
        raise Conflict("consent.used", "该取证码已使用或会话已结束")
    await services.store["certificate_copies"].insert_many(copies)
    for cert, copy in zip(certs, copies, strict=True):
        await audit.record(
            services.store,
            audit.Actor("resident", holder_index[:16], "持证人"),
            "certificate.release",
            cert["_id"],
            channel="mobile",
            purpose=session["purpose"],
            detail={"copy": copy["_id"], "to": kiosk.label, "via": "consent"},
        )
    hub(services).notify(session["_id"])
    return {"released": len(ids), "requester": kiosk.label, "purpose": session["purpose"]}


async def _kiosk_session(services: Services, session_id: Any, redeemer: Redeemer) -> Document:
    doc = (
        await services.store["consent_sessions"].find_one({"_id": session_id})
        if isinstance(session_id, str) and len(session_id) <= 64
        else None
    )
    if doc is None or doc["kiosk"]["kind"] != redeemer.kind or doc["kiosk"]["id"] != redeemer.id:
        raise NotFound("consent.session_not_found", "找不到该取证会话")
    return doc


async def released_certificates(services: Services, doc: Document) -> list[dict[str, Any]]:
    out = []
    for cid, copy_id in zip(doc["released"], doc["copies"], strict=True):
        cert = await certificates.get_certificate(services.store, cid)
        copy = await services.store["certificate_copies"].find_one({"_id": copy_id})
        if copy is not None:
            out.append(display_codes.delivered(services, cert, copy))
    return out


async def wait_for_release(
    services: Services, session_id: str, redeemer: Redeemer, wait_seconds: float = 25.0
) -> dict[str, Any]:
    """Await the holder's release for this kiosk's session.

    Returns ``{"status": "released", "certificates": [...]}`` or
    ``{"status": "waiting"}`` when ``wait_seconds`` pass first (long-poll again);
    raises Gone for an ended or expired session.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(0.0, min(wait_seconds, 60.0))
    event = hub(services).event(session_id)
    try:
        while True:
            event.clear()
            doc = await _kiosk_session(services, session_id, redeemer)
            if doc["status"] == "released":
                return {
                    "status": "released",
                    "purpose": doc["purpose"],
                    "certificates": await released_certificates(services, doc),
                }
            if doc["status"] == "ended":
                raise Gone("consent.ended", "取证会话已结束")
            if as_utc(doc["expires_at"]) <= utcnow():
                raise Gone("consent.expired", "取证码已过期，请重新获取")
            remaining = deadline - loop.time()
            if remaining <= 0:
                return {"status": "waiting", "expires_at": doc["expires_at"]}
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(POLL_SECONDS, remaining))
    finally:
        hub(services).forget(session_id)


async def end_consent_session(services: Services, session_id: str, redeemer: Redeemer) -> None:
    """End the session and wipe what was released to it."""
    doc = await _kiosk_session(services, session_id, redeemer)
    await services.store["consent_sessions"].update_one(
        {"_id": doc["_id"]},
        {"$set": {"status": "ended", "released": [], "copies": [], "ended_at": utcnow()}},
    )
    await audit.record(
        services.store, redeemer.actor, "consent.end", doc["_id"], channel=redeemer.channel, purpose=doc["purpose"]
    )
    hub(services).notify(doc["_id"])


async def released_holder(services: Services, session_id: str, redeemer: Redeemer) -> str | None:
    """The blind index of the holder who released to this kiosk's session (None before a release).
    For the kiosk, which then serves that holder (扫码取证 as identification)."""
    doc = await _kiosk_session(services, session_id, redeemer)
    return doc.get("holder_index") if doc["status"] == "released" else None
