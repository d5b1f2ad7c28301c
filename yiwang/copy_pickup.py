"""存到手机: a resident at a kiosk takes an annotated copy (加注件) to their phone.

1. At the kiosk, the identified resident views one of their certificates, picks a
   purpose and taps 存到手机: :func:`offer` stores a pickup and gives the kiosk a QR
   ``YWP1:<26 Base32 chars>`` (128 random bits, no personal data, valid
   ``LIFETIME`` = 120 s, single use; only the token's SM3 digest is stored).
2. The resident scans it with the mini-program (``POST /api/mobile/v1/copies/pickup``):
   :func:`claim` checks that the scanning account's bound number is the
   certificate's holder (anybody else: ``403 copy_pickup.not_holder`` and the code
   stays usable), claims the pickup with one conditional ``find_one_and_update``,
   and records the copy with ``certificates.make_copy_for_holder`` (制作者 = the
   kiosk, 制作事由 = the purpose chosen at the kiosk, via ``kiosk_pickup``). The
   copy is then in the resident's wallet (:func:`copies_of`, :func:`copy_file`)
   and in the certificate's access history.
3. The kiosk page long-polls :func:`wait_for_pickup` (woken in-process at once, a
   DB poll covers a claim handled by another process) and shows 已存到手机.

Errors of :func:`claim`: ``400 copy_pickup.code_invalid``, ``404 copy_pickup.unknown``,
``403 copy_pickup.not_holder``, ``409 copy_pickup.used``, ``410 copy_pickup.expired``,
``410 copy_pickup.session_ended`` (the resident ended the service at the kiosk),
``410 certificate.revoked``.
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

from yiwang import audit, certificates, copy_files
from yiwang.certificates import Redeemer
from yiwang.crypto import token_digest
from yiwang.devices import redeemer_for
from yiwang.errors import Conflict, Forbidden, Gone, InvalidInput, NotFound
from yiwang.timeutil import as_utc, utcnow
from yiwang.wakeups import WakeUps, wakeups

if TYPE_CHECKING:
    from yiwang.devices import Device
    from yiwang.kiosk_sessions import KioskSession
    from yiwang.runtime import Services
    from yiwang.store import Document

PREFIX = "YWP1:"
LIFETIME = dt.timedelta(seconds=120)
TOKEN_CHARS = 26
VIA = "kiosk_pickup"
POLL_SECONDS = 0.5
_BASE32 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")


def hub(services: Services) -> WakeUps:
    return wakeups(services, "copy_pickup")


def _digest_from_text(text: Any) -> str:
    """The stored digest of a scanned ``YWP1:`` text; InvalidInput for anything else."""
    value = text.strip().upper().removeprefix(PREFIX) if isinstance(text, str) and len(text) <= 64 else ""
    if len(value) != TOKEN_CHARS or not set(value) <= _BASE32:
        raise InvalidInput("copy_pickup.code_invalid", "存到手机二维码格式不正确，请扫描自助终端上的二维码",
                           fields={"code": "格式不正确"})
    return token_digest(value)


def _require_valid(doc: Document) -> None:
    status = certificates.effective_status(doc)
    if status != "valid":
        label = certificates.STATUS_LABELS.get(status, status)
        raise Gone("certificate.revoked", f"该证照当前状态为「{label}」，不能制作加注件", detail={"status": status})


# ---- the kiosk's side ----------------------------------------------------------------------


async def offer(
    services: Services, session: KioskSession, device: Device, certificate_id: str, purpose: Any
) -> dict[str, Any]:
    """The identified resident tapped 存到手机 on one of their certificates at ``device``:
    ``{pickup_id, certificate_name, qr_text, purpose, expires_at, lifetime_seconds}``
    (the QR text carries no personal data)."""

    if session.mode != "resident" or session.resident_index is None:
        raise Forbidden("copy_pickup.resident_only", "存到手机仅限居民本人办理")
    purpose_text = certificates.clean_purpose(purpose)
    if session.released is not None and certificate_id not in session.released:
        raise NotFound("certificate.not_found", "找不到该证照")
    cert = await certificates.holder_certificate(services.store, session.resident_index, certificate_id)
    _require_valid(cert)
    token = base64.b32encode(secrets.token_bytes(16)).decode("ascii").rstrip("=")
    now = utcnow()
    doc: Document = {
        "_id": uuid.uuid4().hex,
        "token_digest": token_digest(token),
        "device": device.id,
        "kiosk": redeemer_for(device).as_dict(),
        "kiosk_session": session.id,  # the session's digest: the pickup lives only while the session does
        "holder_index": session.resident_index,
        "certificate_id": cert["_id"],
        "purpose": purpose_text,
        "status": "waiting",
        "copy_id": None,
        "created_at": now,
        "expires_at": now + LIFETIME,
    }
    await services.store["copy_pickups"].insert_one(doc)
    await audit.record(services.store, device.actor, "certificate.pickup_offered", cert["_id"], channel="kiosk",
                       purpose=purpose_text, detail={"pickup": doc["_id"], "hall": device.hall})
    return {
        "pickup_id": doc["_id"],
        "certificate_name": cert["name"],
        "qr_text": PREFIX + token,
        "purpose": purpose_text,
        "expires_at": doc["expires_at"],
        "lifetime_seconds": int(LIFETIME.total_seconds()),
    }


async def wait_for_pickup(
    services: Services, device: Device, pickup_id: Any, wait_seconds: float = 25.0
) -> dict[str, Any]:
    """Long-poll for the resident's pickup of this kiosk's offer.

    ``{"status": "picked_up", "purpose", "made_at"}`` or ``{"status": "waiting", "expires_at"}``
    (ask again); NotFound for another kiosk's or an unknown pickup, Gone once it expired.
    """
    if not isinstance(pickup_id, str) or len(pickup_id) != 32:
        raise NotFound("copy_pickup.unknown", "找不到该存到手机请求")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(0.0, min(wait_seconds, 60.0))
    event = hub(services).event(pickup_id)
    try:
        while True:
            event.clear()
            doc = await services.store["copy_pickups"].find_one({"_id": pickup_id, "device": device.id})
            if doc is None:
                raise NotFound("copy_pickup.unknown", "找不到该存到手机请求")
            if doc["status"] == "picked_up" and doc.get("copy_id"):
                return {"status": "picked_up", "purpose": doc["purpose"], "made_at": doc["picked_up_at"]}
            if as_utc(doc["expires_at"]) <= utcnow():
                raise Gone("copy_pickup.expired", "二维码已过期，请重新生成")
            remaining = deadline - loop.time()
            if remaining <= 0:
                return {"status": "waiting", "expires_at": doc["expires_at"]}
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(POLL_SECONDS, remaining))
    finally:
        hub(services).forget(pickup_id)


# ---- the phone's side ----------------------------------------------------------------------


async def claim(services: Services, holder_index: str, actor: audit.Actor, code: Any) -> dict[str, Any]:
    """The mini-program scanned a ``YWP1:`` code: if the account's bound number is the
    certificate's holder, the pickup is used (once) and the annotated copy is recorded.
    Returns ``{"copy": copy view, "certificate": summary}``."""
    digest = _digest_from_text(code)
    pickups = services.store["copy_pickups"]
    doc = await pickups.find_one({"token_digest": digest})
    if doc is None:
        raise NotFound("copy_pickup.unknown", "二维码无效，请在自助终端上重新生成")
    if doc["holder_index"] != holder_index:
        await audit.record(services.store, actor, "copy_pickup.refused", doc["_id"], channel="mobile",
                           detail={"reason": "not_holder"})
        raise Forbidden("copy_pickup.not_holder", "只有证照持有人本人才能把加注件存到自己的手机")
    await _require_waiting(services, doc)
    cert = await certificates.get_certificate(services.store, doc["certificate_id"])
    _require_valid(cert)
    now = utcnow()
    claimed = await pickups.find_one_and_update(
        {"_id": doc["_id"], "status": "waiting", "holder_index": holder_index, "expires_at": {"$gt": now}},
        {"$set": {"status": "picked_up", "picked_up_at": now}},
        return_document=ReturnDocument.AFTER,
    )
    if claimed is None:  # used or expired in the meantime
        again = await pickups.find_one({"_id": doc["_id"]})
        await _require_waiting(services, again or doc)
        raise Conflict("copy_pickup.used", "该二维码已使用，请在自助终端上重新生成")
    kiosk = Redeemer(**doc["kiosk"])
    try:
        copy = await certificates.make_copy_for_holder(services, holder_index, cert["_id"], kiosk, doc["purpose"],
                                                       via=VIA)
    except BaseException:
        # nothing half-written: the code stays usable when no copy was recorded
        await pickups.update_one({"_id": doc["_id"], "status": "picked_up", "copy_id": None},
                                 {"$set": {"status": "waiting"}, "$unset": {"picked_up_at": ""}})
        raise
    await pickups.update_one({"_id": doc["_id"]}, {"$set": {"copy_id": copy["_id"]}})
    await audit.record(services.store, actor, "certificate.pickup", cert["_id"], channel="mobile",
                       purpose=doc["purpose"],
                       detail={"copy": copy["_id"], "pickup": doc["_id"], "kiosk": kiosk.label})
    hub(services).notify(doc["_id"])
    return {"copy": wallet_view(copy), "certificate": certificates.summary(cert)}


async def _require_waiting(services: Services, doc: Document) -> None:
    if doc["status"] != "waiting":
        raise Conflict("copy_pickup.used", "该二维码已使用，请在自助终端上重新生成")
    if as_utc(doc["expires_at"]) <= utcnow():
        raise Gone("copy_pickup.expired", "二维码已过期，请在自助终端上重新生成")
    live = await services.store["kiosk_sessions"].find_one(
        {"_id": doc["kiosk_session"], "expires_at": {"$gt": utcnow()}}, projection={"_id": 1})
    if live is None:
        raise Gone("copy_pickup.session_ended", "自助终端上的本次服务已结束，请重新办理")


# ---- the wallet ----------------------------------------------------------------------------


def wallet_view(copy: Document) -> dict[str, Any]:
    view = certificates.copy_view(copy)
    view["expired"] = as_utc(copy["valid_until"]) <= utcnow()
    return view


async def copies_of(services: Services, holder_index: str, limit: int = 100) -> list[dict[str, Any]]:
    """The annotated copies the holder saved to their phone, newest first, with the certificate's name."""
    cursor = services.store["certificate_copies"].find(
        {"holder_index": holder_index, "via": VIA}, sort=[("made_at", -1)], limit=limit)
    copies = [doc async for doc in cursor]
    names: dict[str, str] = {}
    ids = sorted({c["certificate_id"] for c in copies})
    if ids:
        async for cert in services.store["certificates"].find({"_id": {"$in": ids}}, projection={"name": 1}):
            names[cert["_id"]] = cert["name"]
    return [{**wallet_view(c), "certificate_name": names.get(c["certificate_id"], "")} for c in copies]


async def copy_file(
    services: Services, holder_index: str, actor: audit.Actor, copy_id: str, fmt: Any
) -> tuple[str, bytes]:
    """One saved copy as PNG (the card) or PDF (A4 with the annotation), for its holder only,
    while it is valid; audited. Returns (content type, bytes)."""

    if fmt not in ("png", "pdf", "ofd"):
        raise InvalidInput(
            "certificate.format_invalid", "格式只能是 png、pdf 或 ofd", fields={"format": "png、pdf 或 ofd"}
        )
    copy = await services.store["certificate_copies"].find_one(
        {"_id": copy_id, "holder_index": holder_index, "via": VIA})
    if copy is None:
        raise NotFound("certificate.copy_not_found", "找不到该加注件")
    data = await copy_files.copy_image(services, copy["_id"], Redeemer(**copy["made_by"]), fmt)
    await audit.record(services.store, actor, "certificate.copy_download", copy["certificate_id"], channel="mobile",
                       purpose=copy["purpose"], detail={"copy": copy["_id"], "format": fmt})
    return copy_files.CONTENT_TYPES[fmt], data
