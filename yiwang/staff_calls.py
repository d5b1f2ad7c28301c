"""呼叫工作人员: a kiosk calls the hall's staff; the call shows at once on the hall's console page
(which kiosk, which page), a member of staff acknowledges it, and the kiosk says someone is coming.

No personal data: a call holds the device, its hall, label and location, and the page's path and
title (never its query string). One open call per kiosk: calling again while one is open returns
it (with the page updated). Calls are kept a day (TTL index).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from pymongo import ReturnDocument

from yiwang import audit
from yiwang.errors import Conflict, NotFound
from yiwang.timeutil import utcnow

if TYPE_CHECKING:
    from yiwang.devices import Device
    from yiwang.runtime import Services
    from yiwang.store import Document

MAX_TITLE = 60
MAX_PATH = 200
OPEN, ACKNOWLEDGED = "open", "acknowledged"


def _page_path(path: Any) -> str:
    text = str(path or "/kiosk/").split("?", 1)[0].split("#", 1)[0]
    return text[:MAX_PATH] if text.startswith("/kiosk") else "/kiosk/"


def view(doc: Document) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "hall": doc["hall"],
        "device": doc["device"],
        "device_label": doc["device_label"],
        "location": doc.get("location", ""),
        "page": doc["page"],
        "page_title": doc["page_title"],
        "status": doc["status"],
        "created_at": doc["created_at"],
        "acknowledged_at": doc.get("acknowledged_at"),
        "acknowledged_by": doc.get("acknowledged_by"),
    }


async def call(services: Services, device: Device, page: Any, page_title: Any) -> dict[str, Any]:
    """The kiosk's call (its open one if there is one, with the page brought up to date)."""
    now = utcnow()
    fields = {"page": _page_path(page), "page_title": str(page_title or "")[:MAX_TITLE], "updated_at": now}
    calls = services.store["staff_calls"]
    doc = await calls.find_one_and_update({"device": device.id, "status": OPEN}, {"$set": fields},
                                          return_document=ReturnDocument.AFTER)
    if doc is None:
        doc = {"_id": uuid.uuid4().hex, "hall": device.hall, "device": device.id, "device_label": device.label,
               "location": device.location, "status": OPEN, "created_at": now, **fields}
        await calls.insert_one(doc)
        await audit.record(services.store, audit.Actor("kiosk", device.id, device.label), "staff_call.call",
                           doc["_id"], channel="kiosk", purpose="呼叫工作人员", detail={"page": fields["page"]})
    return view(doc)


async def kiosk_call(services: Services, device: Device, call_id: str | None = None) -> dict[str, Any] | None:
    """The kiosk's call: the one named (another kiosk's is NotFound), or its latest open or acknowledged
    call of the last 10 minutes, shown on every page until the session ends."""
    calls = services.store["staff_calls"]
    if call_id is not None:
        doc = await calls.find_one({"_id": call_id, "device": device.id})
        if doc is None:
            raise NotFound("staff_call.unknown", "找不到该呼叫")
        return view(doc)
    doc = await calls.find_one({"device": device.id, "status": {"$in": [OPEN, ACKNOWLEDGED]}},
                               sort=[("created_at", -1)])
    if doc is None or (utcnow() - doc["created_at"]).total_seconds() > 600:
        return None
    return view(doc)


async def dismiss(services: Services, device: Device) -> None:
    """The kiosk's session ended: its calls leave the kiosk's screen (and an unanswered one the console)."""
    calls = services.store["staff_calls"]
    await calls.update_many({"device": device.id, "status": {"$in": [OPEN, ACKNOWLEDGED]}},
                            {"$set": {"status": "closed", "closed_at": utcnow()}})


async def open_calls(services: Services, halls: list[str]) -> list[dict[str, Any]]:
    """Open and acknowledged calls of these halls, oldest first (the console's list)."""
    cursor = services.store["staff_calls"].find(
        {"hall": {"$in": list(halls)}, "status": {"$in": [OPEN, ACKNOWLEDGED]}}, sort=[("created_at", 1)])
    return [view(doc) async for doc in cursor]


async def get(services: Services, call_id: str) -> dict[str, Any]:
    doc = await services.store["staff_calls"].find_one({"_id": call_id})
    if doc is None:
        raise NotFound("staff_call.unknown", "找不到该呼叫")
    return view(doc)


async def acknowledge(services: Services, call_id: str, *, by: audit.Actor) -> dict[str, Any]:
    """A member of staff is on the way: the kiosk says so at once. Twice is a Conflict."""
    now = utcnow()
    doc = await services.store["staff_calls"].find_one_and_update(
        {"_id": call_id, "status": OPEN},
        {"$set": {"status": ACKNOWLEDGED, "acknowledged_at": now, "acknowledged_by": by.label}},
        return_document=ReturnDocument.AFTER,
    )
    if doc is None:
        await get(services, call_id)  # NotFound for an unknown call
        raise Conflict("staff_call.already_acknowledged", "该呼叫已有工作人员响应")
    await audit.record(services.store, by, "staff_call.acknowledge", call_id, channel="console",
                       purpose="响应终端呼叫", detail={"device": doc["device"]})
    return view(doc)
