"""Kiosk sessions: who is being served at a kiosk right now.

A session starts when a resident is identified at a kiosk (ID card on the
reader, or the mini-program's confirmation) and ends when they leave, when the
page times out, or after ``SESSION_IDLE`` without activity on the server. It
holds only the resident's blind index and *masked* name and number; the page
shows nothing more. The token lives in an HttpOnly cookie scoped to
``/kiosk``; the store keeps its SM3 digest.

Agent mode (帮办代办): a village agent signs in at the kiosk; the session then
records the agent, and the resident present authorises by ID card. Every
screen says whose matter is being handled (``handling_label``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pymongo import ReturnDocument

from yiwang import agents, audit, consent, kiosk_events
from yiwang.certificates import Redeemer
from yiwang.crypto import random_token, token_digest
from yiwang.devices import redeemer_for
from yiwang.errors import Forbidden, InvalidInput, NotAuthenticated, NotFound, YiwangError
from yiwang.identity import mask_name, parse_id_number
from yiwang.people import name_matches, resident_by_index, resident_by_number
from yiwang.timeutil import utcnow

if TYPE_CHECKING:
    from yiwang.devices import Device
    from yiwang.runtime import Services

SESSION_IDLE = dt.timedelta(minutes=3)
_TOUCH_AFTER = dt.timedelta(seconds=20)

@dataclass(frozen=True)
class KioskSession:
    id: str  # digest of the token, never the token
    device: str
    hall: str
    mode: str  # resident | agent
    resident_index: str | None
    resident_id: str | None
    masked_name: str
    masked_number: str
    agent_code: str | None = None
    agent_label: str = ""
    # 扫码取证: only these certificate ids may be shown (None: identified by ID card, all of the holder's)
    released: tuple[str, ...] | None = None
    consent_session: str | None = None
    authorisation: str | None = None  # agent mode: the authorisation the resident gave at this kiosk
    scope: dict[str, Any] | None = None  # agent mode: items and days chosen before the card is read
    method: str = ""  # how the resident was identified: id_card (on this kiosk's reader) | consent

    @property
    def identified(self) -> bool:
        return self.resident_index is not None

    @property
    def handling_label(self) -> str:
        if self.mode == "agent":
            if not self.identified:
                return f"代办员 {self.agent_label} 已登录 · 请先读取居民身份证"
            return f"代办员 {self.agent_label} 正在为 {self.masked_name}（{self.masked_number}） 办理"
        return f"正在为 {self.masked_name}（{self.masked_number}）办理"

    def public(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "masked_name": self.masked_name,
            "masked_number": self.masked_number,
            "agent_label": self.agent_label,
            "handling": self.handling_label,
        }

def _session(doc: dict[str, Any]) -> KioskSession:
    return KioskSession(
        id=doc["_id"],
        device=doc["device"],
        hall=doc["hall"],
        mode=doc.get("mode", "resident"),
        resident_index=doc.get("resident_index"),
        resident_id=doc.get("resident_id"),
        masked_name=doc.get("masked_name", ""),
        masked_number=doc.get("masked_number", ""),
        agent_code=doc.get("agent_code"),
        agent_label=doc.get("agent_label", ""),
        released=tuple(doc["released"]) if doc.get("released") is not None else None,
        consent_session=doc.get("consent_session"),
        authorisation=doc.get("authorisation"),
        scope=doc.get("scope"),
        method=doc.get("method", ""),
    )

async def _identify(services: Services, id_number: Any, name: Any) -> tuple[Any, str]:
    if not isinstance(id_number, str) or not isinstance(name, str) or not name.strip():
        raise InvalidInput("kiosk.id_card_invalid", "未能读取身份证信息，请重新放置身份证")
    parse_id_number(id_number)  # precise reason for a garbled read
    person = await resident_by_number(services.store, services.cipher, id_number)
    if person is None:
        raise NotFound("kiosk.resident_unknown", "未查询到您的信息，请到窗口咨询")
    if not await name_matches(services.store, services.cipher, person.index, name):
        raise Forbidden("kiosk.id_card_mismatch", "身份证信息核验未通过，请到窗口咨询")
    return person, mask_name(name.strip())

async def _drop_device_sessions(services: Services, device_id: str) -> None:
    """End every session on this device, wiping what 扫码取证 released to it."""
    async for doc in services.store["kiosk_sessions"].find({"device": device_id, "consent_session": {"$ne": None}}):
        await _end_consent(services, doc)
    await services.store["kiosk_sessions"].delete_many({"device": device_id})

async def _end_consent(services: Services, doc: dict[str, Any]) -> None:

    if doc.get("consent_session"):
        with contextlib.suppress(YiwangError):
            await consent.end_consent_session(services, doc["consent_session"],
                                              Redeemer("kiosk", doc["device"], doc.get("device_label", "")))

async def start_by_id_card(
    services: Services, device: Device, id_number: Any, name: Any, *, method: str = "id_card"
) -> tuple[str, KioskSession]:
    """A resident put their ID card on the reader of ``device``: a new session
    (any earlier session on this device ends). Returns (token, session)."""
    person, masked_name = await _identify(services, id_number, name)
    await _drop_device_sessions(services, device.id)
    token = random_token(24)
    now = utcnow()
    doc = {
        "_id": token_digest(token),
        "device": device.id,
        "device_label": device.label,
        "hall": device.hall,
        "mode": "resident",
        "resident_index": person.index,
        "resident_id": person.id,
        "masked_name": person.masked_name or masked_name,
        "masked_number": person.masked_number,
        "method": method,
        "created_at": now,
        "touched_at": now,
        "expires_at": now + SESSION_IDLE,
    }
    await services.store["kiosk_sessions"].insert_one(doc)
    await audit.record(services.store, device.actor, "kiosk.identified", f"resident:{person.id}", channel="kiosk",
                       purpose="自助终端身份识别", detail={"method": method, "hall": device.hall})
    kiosk_events.record(services, device.hall, "session_start", mode="resident")
    return token, _session(doc)

async def start_agent_mode(
    services: Services, device: Device, agent_code: str, agent_label: str
) -> tuple[str, KioskSession]:
    """A village agent (already verified by the agents module) starts handling at this kiosk."""
    await _drop_device_sessions(services, device.id)
    token = random_token(24)
    now = utcnow()
    doc = {
        "_id": token_digest(token), "device": device.id, "hall": device.hall, "mode": "agent",
        "agent_code": agent_code, "agent_label": agent_label, "resident_index": None, "resident_id": None,
        "masked_name": "", "masked_number": "", "created_at": now, "touched_at": now,
        "expires_at": now + SESSION_IDLE,
    }
    await services.store["kiosk_sessions"].insert_one(doc)
    await audit.record(services.store, audit.Actor("agent", agent_code, agent_label), "kiosk.agent_signed_in",
                       f"device:{device.id}", channel="agent")
    return token, _session(doc)

async def set_agent_scope(services: Services, session: KioskSession, scope: dict[str, Any]) -> None:
    await services.store["kiosk_sessions"].update_one({"_id": session.id, "mode": "agent"}, {"$set": {"scope": scope}})

async def agent_session_on(services: Services, device_id: str) -> KioskSession | None:
    """The live agent-mode session on this kiosk (the reader does not know the page's token)."""
    doc = await services.store["kiosk_sessions"].find_one(
        {"device": device_id, "mode": "agent", "expires_at": {"$gt": utcnow()}})
    return _session(doc) if doc else None

async def authorise_resident(
    services: Services, session: KioskSession, device: Device, id_number: Any, name: Any
) -> KioskSession:
    """In agent mode: the resident present puts their ID card on the reader, which records their
    authorisation of the agent for the chosen items and period (``agents.grant_authorisation``,
    channel ``kiosk``)."""

    if session.mode != "agent":
        raise Forbidden("kiosk.not_agent_mode", "当前不是代办模式")
    if not session.scope:
        raise InvalidInput("kiosk.agent_scope_missing", "请代办员先选择代办事项和授权期限，再请居民刷身份证")
    person, masked_name = await _identify(services, id_number, name)
    granted = await agents.grant_authorisation(
        services, person.index, session.agent_code, session.scope["items"], session.scope["until"],
        channel="kiosk", actor=audit.Actor("resident", person.index[:16], "本人（自助终端刷身份证）"),
    )
    doc = await services.store["kiosk_sessions"].find_one_and_update(
        {"_id": session.id, "device": device.id, "expires_at": {"$gt": utcnow()}},
        {"$set": {"resident_index": person.index, "resident_id": person.id, "authorisation": granted["id"],
                  "masked_name": person.masked_name or masked_name, "masked_number": person.masked_number}},
        return_document=ReturnDocument.AFTER,
    )
    if doc is None:
        raise NotAuthenticated("kiosk.session_expired", "本次服务已结束，请重新开始")
    await audit.record(services.store, audit.Actor("agent", session.agent_code or "", session.agent_label),
                       "kiosk.agent_authorised", f"resident:{person.id}", channel="agent",
                       on_behalf_of=f"resident:{person.id}",
                       detail={"device": device.id, "method": "id_card", "authorisation": granted["id"]})
    return _session(doc)

async def current(services: Services, token: str | None, device_id: str | None) -> KioskSession | None:
    """The live session for this token on this device (sliding expiry), or None."""
    if not token or len(token) > 64:
        return None
    now = utcnow()
    query: dict[str, Any] = {"_id": token_digest(token), "expires_at": {"$gt": now}}
    if device_id is not None:
        query["device"] = device_id
    doc = await services.store["kiosk_sessions"].find_one(query)
    if doc is None:
        return None
    touched = doc.get("touched_at")
    if touched is None or now - touched > _TOUCH_AFTER:
        await services.store["kiosk_sessions"].update_one(
            {"_id": doc["_id"]}, {"$set": {"touched_at": now, "expires_at": now + SESSION_IDLE}}
        )
    return _session(doc)

async def end(services: Services, token: str | None) -> None:
    """结束服务 / idle reset: the session goes, and so does whatever the phone released to it."""
    if token and len(token) <= 64:
        doc = await services.store["kiosk_sessions"].find_one_and_delete({"_id": token_digest(token)})
        if doc is not None:
            await _end_consent(services, doc)

async def end_for_device(services: Services, device_id: str) -> None:
    await _drop_device_sessions(services, device_id)

# ---- 扫码取证 as identification -------------------------------------------------------

CONSENT_PURPOSE = "自助终端查看和打印证照"

async def open_consent_identification(services: Services, device: Device) -> dict[str, Any]:
    """A consent session for this kiosk: ``{session_id, qr_text, expires_at}`` (the QR carries no personal data)."""

    return await consent.create_consent_session(services, redeemer_for(device), CONSENT_PURPOSE)

async def await_consent_identification(
    services: Services, device: Device, consent_session_id: Any, wait_seconds: float = 25.0
) -> dict[str, Any]:
    """Long-poll for the holder's release. On release, the holder is identified at this kiosk: a new
    session that may show exactly the released certificates. ``{"status": "waiting"}`` or
    ``{"status": "released", "session": token, ...public view}``; Gone when the QR expired."""

    redeemer = redeemer_for(device)
    result = await consent.wait_for_release(services, consent_session_id, redeemer, wait_seconds)
    if result["status"] != "released":
        return {"status": "waiting"}
    holder_index = await consent.released_holder(services, consent_session_id, redeemer)
    if holder_index is None:
        return {"status": "waiting"}
    person = await resident_by_index(services.store, holder_index)
    released = [c["certificate"]["id"] for c in result["certificates"]]
    await _drop_device_sessions(services, device.id)
    token = random_token(24)
    now = utcnow()
    doc = {
        "_id": token_digest(token), "device": device.id, "device_label": device.label, "hall": device.hall,
        "mode": "resident", "resident_index": person.index, "resident_id": person.id,
        "masked_name": person.masked_name, "masked_number": person.masked_number,
        "consent_session": consent_session_id, "released": released, "method": "consent",
        "created_at": now, "touched_at": now, "expires_at": now + SESSION_IDLE,
    }
    await services.store["kiosk_sessions"].insert_one(doc)
    await audit.record(services.store, device.actor, "kiosk.identified", f"resident:{person.id}", channel="kiosk",
                       purpose="自助终端身份识别", detail={"method": "consent", "hall": device.hall,
                                                        "released": len(released)})
    kiosk_events.record(services, device.hall, "session_start", mode="resident")
    return {"status": "released", "session": token, **_session(doc).public()}
