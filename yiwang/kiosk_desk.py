"""What a resident (or an agent for them) does with certificates at a kiosk.

Each function is one thing the kiosk surface asks for, taking the identified
:class:`~yiwang.kiosk_sessions.KioskSession` and the kiosk's
:class:`~yiwang.devices.Device`:

* :func:`print_certificate` — a printed annotated copy (加注件): recorded with
  ``certificates.make_copy_for_holder`` (制作者 = this kiosk, 制作事由 = the
  purpose chosen on screen), so the holder sees it in the access history; the
  PDF carries the purpose watermark and the verification QR.
* :func:`visible_certificates` / :func:`open_certificate` — what the screen may
  show: after 扫码取证 only the certificates the holder released.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from yiwang import audit, certificates, copy_files, kiosk_events, verification
from yiwang.devices import redeemer_for
from yiwang.errors import Forbidden, NotFound

if TYPE_CHECKING:
    from yiwang.devices import Device
    from yiwang.kiosk_sessions import KioskSession
    from yiwang.runtime import Services


def _on_behalf(session: KioskSession) -> str | None:
    return f"resident:{session.resident_id}" if session.mode == "agent" else None


def _require_holder_present(session: KioskSession) -> str:
    """Certificates are shown only to their holder: never in agent mode, where the
    agent sees only what the authorised item needs (filled in by the server)."""
    if session.mode != "resident" or session.resident_index is None:
        raise Forbidden("kiosk.holder_only", "证照仅限持证人本人查看和打印")
    return session.resident_index


def _require_visible(session: KioskSession, certificate_id: str) -> str:
    holder_index = _require_holder_present(session)
    if session.released is not None and certificate_id not in session.released:
        raise NotFound("certificate.not_found", "找不到该证照")
    return holder_index


async def visible_certificates(services: Services, session: KioskSession, device: Device) -> list[dict[str, Any]]:
    """The holder's certificates this session may show (all, or those released by 扫码取证); audited."""
    holder_index = _require_holder_present(session)
    certs = await certificates.list_for_holder(services.store, holder_index)
    if session.released is not None:
        certs = [c for c in certs if c["id"] in session.released]
    await audit.record(services.store, device.actor, "kiosk.certificates_listed", f"resident:{session.resident_id}",
                       channel="kiosk", purpose="本人查看", on_behalf_of=_on_behalf(session))
    return certs


async def open_certificate(
    services: Services, session: KioskSession, device: Device, certificate_id: str
) -> dict[str, Any]:
    holder_index = _require_visible(session, certificate_id)
    return await verification.open_for_holder(services, holder_index, certificate_id, channel="kiosk")


async def print_certificate(
    services: Services, session: KioskSession, device: Device, certificate_id: str, purpose: Any
) -> bytes:
    """Record an annotated copy made by this kiosk for ``purpose`` and render it as an A4 PDF."""

    holder_index = _require_visible(session, certificate_id)
    redeemer = redeemer_for(device)
    copy = await certificates.make_copy_for_holder(services, holder_index, certificate_id, redeemer, purpose)
    pdf = await copy_files.copy_image(services, copy["_id"], redeemer, "pdf")
    await audit.record(services.store, device.actor, "certificate.print", certificate_id, channel="kiosk",
                       purpose=copy["purpose"], detail={"hall": device.hall, "copy": copy["_id"]},
                       on_behalf_of=_on_behalf(session))
    kiosk_events.record(services, device.hall, "certificate_print", mode=session.mode)
    return pdf
