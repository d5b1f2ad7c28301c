"""Agent mode at a kiosk (帮办代办).

Sign-in (two factors: the activated agent account on the agent's phone, and
being in front of this kiosk):

1. The kiosk shows a sign-in QR ``YWK1:<26 chars>`` (random, no personal data,
   2 minutes, this device only): :func:`open_sign_in`.
2. The agent scans it with the mini-program's agent account
   (``POST /api/mobile/v1/agent/kiosk-sign-in``): :func:`confirm_on_phone` binds
   the request to the agent and answers a 6-digit one-time code *on the phone*.
3. The agent types the 6 digits on the kiosk: :func:`complete_sign_in` (5
   attempts) starts an agent-mode kiosk session. A photographed QR is useless
   without standing at the kiosk with the agent's phone.

Then the agent picks the item(s) and a period (:func:`set_scope`); the resident
puts their ID card on the reader, which records ``agents.grant_authorisation(
..., channel="kiosk")`` (``kiosk_sessions.authorise_resident``); the agent
files with :func:`file_application` — history and audit say "agent X for
resident Y". The agent never sees the resident's number, name or certificates:
the form's name and number are filled in on the server, and a material the
resident holds as an e-certificate is attached by the server.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import uuid
from typing import TYPE_CHECKING, Any

from pymongo import ReturnDocument

from yiwang import agents, applications, audit, certificates, kiosk_events, kiosk_sessions, throttle
from yiwang.crypto import constant_time_equal, token_digest
from yiwang.errors import Conflict, Forbidden, Gone, InvalidInput, NotFound
from yiwang.identity import reveal_number
from yiwang.people import NAME_PURPOSE
from yiwang.timeutil import local_today, utcnow

if TYPE_CHECKING:
    from yiwang.devices import Device
    from yiwang.kiosk_sessions import KioskSession
    from yiwang.runtime import Services

PREFIX = "YWK1:"
SIGN_IN_TTL = dt.timedelta(minutes=2)
MAX_ATTEMPTS = 5
PERIODS = {"7": 7, "30": 30, "90": 90}
SERVER_FILLED = ("applicant_name", "id_number")


def _token_digest(text: Any) -> str:
    if not isinstance(text, str):
        raise InvalidInput("agent_sign_in.code_invalid", "登录码格式不正确", fields={"code": "格式不正确"})
    value = text.strip().upper().removeprefix(PREFIX)
    if len(value) != 26 or any(c not in "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567" for c in value):
        raise InvalidInput("agent_sign_in.code_invalid", "登录码格式不正确", fields={"code": "格式不正确"})
    return token_digest(value)


async def open_sign_in(services: Services, device: Device) -> dict[str, Any]:
    token = base64.b32encode(secrets.token_bytes(16)).decode("ascii").rstrip("=")
    now = utcnow()
    doc = {"_id": uuid.uuid4().hex, "token_digest": token_digest(token), "device": device.id,
           "device_label": device.label, "agent": None, "otp_digest": None, "attempts": 0, "used": False,
           "created_at": now, "expires_at": now + SIGN_IN_TTL}
    await services.store["kiosk_agent_sign_ins"].insert_one(doc)
    return {"request_id": doc["_id"], "qr_text": PREFIX + token, "expires_at": doc["expires_at"]}


async def confirm_on_phone(services: Services, agent_doc: dict[str, Any], code: Any,
                           actor: audit.Actor) -> dict[str, Any]:
    """The agent's phone scanned the kiosk's QR: returns the kiosk and the one-time code to type there."""
    digest = _token_digest(code)
    otp = f"{secrets.randbelow(10**6):06d}"
    doc = await services.store["kiosk_agent_sign_ins"].find_one({"token_digest": digest})
    if doc is None:
        raise NotFound("agent_sign_in.unknown", "登录码无效，请在终端上重新获取")
    if doc["expires_at"].replace(tzinfo=dt.UTC) <= utcnow():
        raise Gone("agent_sign_in.expired", "登录码已过期，请在终端上重新获取")
    claimed = await services.store["kiosk_agent_sign_ins"].find_one_and_update(
        {"_id": doc["_id"], "agent": None, "used": False},
        {"$set": {"agent": agent_doc["_id"], "otp_digest": token_digest(otp)}},
        return_document=ReturnDocument.AFTER,
    )
    if claimed is None:
        raise Conflict("agent_sign_in.used", "该登录码已被使用")
    await audit.record(services.store, actor, "kiosk.agent_sign_in_confirmed", f"device:{doc['device']}",
                       channel="mobile", detail={"agent": agent_doc["_id"]})
    return {"kiosk": doc["device_label"], "confirmation_code": otp, "expires_at": doc["expires_at"]}


async def complete_sign_in(services: Services, device: Device, request_id: Any, digits: Any) -> str:
    """The agent typed the phone's code at the kiosk: an agent-mode session token."""
    if not isinstance(digits, str) or len(digits.strip()) != 6 or not digits.strip().isdigit():
        raise InvalidInput("agent_sign_in.digits_invalid", "请输入手机上显示的 6 位确认码",
                           fields={"digits": "6 位数字"})
    # Wrong codes per kiosk too (yiwang.throttle), on top of the request's own MAX_ATTEMPTS.
    reservation = await throttle.reserve(
        services.store, [(throttle.KIOSK_SIGN_IN_DEVICE, device.id)], code="agent_sign_in.throttled",
        message="确认码错误次数过多，请 {minutes} 分钟后再试",
    )
    doc = None
    if isinstance(request_id, str) and len(request_id) <= 64:
        doc = await services.store["kiosk_agent_sign_ins"].find_one_and_update(
            {"_id": request_id, "device": device.id, "used": False, "agent": {"$ne": None},
             "attempts": {"$lt": MAX_ATTEMPTS}, "expires_at": {"$gt": utcnow()}},
            {"$inc": {"attempts": 1}}, return_document=ReturnDocument.AFTER,
        )
    if doc is None:
        await reservation.release()  # no code was checked
        raise Forbidden("agent_sign_in.not_confirmed", "请先用代办员账号在手机上扫描本机二维码，或重新获取二维码")
    if not constant_time_equal(doc["otp_digest"], token_digest(digits.strip())):
        raise Forbidden("agent_sign_in.digits_wrong", "确认码不正确，请核对手机上显示的数字")
    await reservation.release()
    used = await services.store["kiosk_agent_sign_ins"].find_one_and_update(
        {"_id": doc["_id"], "used": False}, {"$set": {"used": True}})
    if used is None:
        raise Conflict("agent_sign_in.used", "该登录码已被使用")
    agent_doc = await agents.agent(services, doc["agent"])
    label = f"{agent_doc['name']['masked']}（{agent_doc['village']}）"
    token, _ = await kiosk_sessions.start_agent_mode(services, device, agent_doc["_id"], label)
    kiosk_events.record(services, device.hall, "session_start", mode="agent")
    return token


async def set_scope(services: Services, session: KioskSession, device: Device, items: Any, days: Any) -> None:
    """What the resident will be asked to authorise (before the card is read)."""
    if session.mode != "agent" or session.identified:
        raise Forbidden("kiosk.not_agent_mode", "当前不能选择代办事项")
    if not isinstance(days, str) or days not in PERIODS:
        raise InvalidInput("authorisation.invalid", "授权内容有误", fields={"days": "可选 7、30、90 天"})
    until = local_today() + dt.timedelta(days=PERIODS[days])
    clean_items, end = await agents._validate_scope(services, items, until)
    await kiosk_sessions.set_agent_scope(services, session, {"items": clean_items, "until": end.isoformat()})


async def scope_view(services: Services, session: KioskSession) -> dict[str, Any] | None:
    if not session.scope:
        return None
    snap = await services.catalog.snapshot()
    return {"items": [{"code": c, "name": snap.items[c]["name"]} for c in session.scope["items"] if c in snap.items],
            "until": session.scope["until"]}


def form_fields(item: dict[str, Any]) -> list[dict[str, Any]]:
    """The item's form as the kiosk shows it to the agent (name and number come from the server)."""
    schema = item.get("form_schema", {})
    required = set(schema.get("required", []))
    out = []
    for name, spec in schema.get("properties", {}).items():
        if name in SERVER_FILLED:
            continue
        out.append({"name": name, "title": spec.get("title", name), "type": spec.get("type", "string"),
                    "enum": spec.get("enum"), "required": name in required})
    return out


async def file_application(
    services: Services, session: KioskSession, device: Device, item_code: Any, form: dict[str, Any], *,
    idempotency_key: Any,
) -> dict[str, Any]:
    """The agent files ``item_code`` for the authorised resident present at this kiosk."""
    if session.mode != "agent" or not session.authorisation or session.resident_index is None:
        raise Forbidden("agent.not_authorised", "请先由居民本人刷身份证授权")
    agent_doc = await agents.agent(services, session.agent_code)
    applicant = await agents.applicant_for(services, agent_doc, session.authorisation, item_code)
    item = await services.catalog.item(str(item_code))
    resident = await services.store["residents"].find_one({"number.index": session.resident_index})
    if resident is None:
        raise NotFound("person.not_found", "找不到该居民的实名信息")
    clean: dict[str, Any] = {}
    for field in form_fields(item):
        value = form.get(field["name"])
        if value in (None, ""):
            continue
        clean[field["name"]] = value in ("1", "true", "on", True) if field["type"] == "boolean" else value
    clean["applicant_name"] = services.cipher.open(NAME_PURPOSE, resident["name"]["sealed"])
    clean["id_number"] = reveal_number(services.cipher, resident["number"]).value
    materials = []
    held = await certificates.list_for_holder(services.store, session.resident_index)
    for spec in item.get("materials", []):
        match = next((c for c in held if spec.get("certificate_type") and c["type"]["code"] == spec["certificate_type"]
                      and c["status"] == "valid"), None)
        if match is not None:
            materials.append({"material": spec["id"], "certificate": match["id"]})
    doc, replayed = await applications.create(services, applicant, item_code, clean, materials, submit=True,
                                              idempotency_key=idempotency_key)
    if not replayed:
        await agents.record_activity(services, session.authorisation, "application.submitted", doc["_id"])
    del clean
    return applications.view(services, doc)


async def screen(services: Services, session: KioskSession | None, device: Device | None,
                 item_code: str | None) -> dict[str, Any]:
    """What the agent screen shows at this step: sign_in | scope | card | file."""
    if device is None:
        return {"step": "no_device"}
    if session is None or session.mode != "agent":
        return {"step": "sign_in", "sign_in": await open_sign_in(services, device)}
    if not session.identified:
        if not session.scope:
            snap = await services.catalog.snapshot()
            choices = sorted((i for i in snap.items.values() if "kiosk" in (i.get("channels") or [])),
                             key=lambda i: i["code"])
            return {"step": "scope", "choices": [{"code": i["code"], "name": i["name"]} for i in choices],
                    "periods": list(PERIODS)}
        return {"step": "card", "scope": await scope_view(services, session)}
    # the resident may have revoked from their phone meanwhile: nothing more of them on this screen
    await agents.require_authorisation(services, session.agent_code or "", session.authorisation, None)
    scope = await scope_view(services, session)
    assert scope is not None
    codes = [i["code"] for i in scope["items"]]
    chosen = item_code if item_code in codes else (codes[0] if len(codes) == 1 else None)
    item = await services.catalog.item(chosen) if chosen else None
    return {"step": "file", "scope": scope, "item": item, "fields": form_fields(item) if item else [],
            "idempotency_key": uuid.uuid4().hex}
