"""Publishing guidance content to kiosks, as one use case: the content change (publish, roll
back, withdraw), its audit entry, the push to the targeted kiosks, and the delivery read back
per device (``docs/kiosk-and-devices.md``). The console's handlers call one function here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from yiwang import audit, content, devices
from yiwang.errors import YiwangError

if TYPE_CHECKING:
    from yiwang.runtime import Services
    from yiwang.store import Document

log = logging.getLogger(__name__)

Action = Literal["publish", "rollback", "withdraw"]


def summary(doc: Document | None) -> dict[str, Any] | None:
    """What the audit trail keeps of a piece of content (no personal data in it)."""
    if doc is None:
        return None
    draft = doc.get("draft") or {}
    published = doc.get("published") or {}
    return {
        "status": doc.get("status"),
        "version": doc.get("version"),
        "title": draft.get("title"),
        "body_html": draft.get("body_html"),
        "target": draft.get("target"),
        "published_version": published.get("version"),
        "published_title": published.get("title"),
        "image": (draft.get("image") or {}).get("id"),
    }


async def act(services: Services, content_id: str, action: Action, by: audit.Actor, *,
              version: int | None = None) -> Document:
    """Publish, roll back to ``version`` or withdraw; audited; a published result is pushed to its kiosks
    (the push is best effort: kiosks that miss it read the content on their next load)."""
    store = services.store
    if action == "publish":
        before, after = await content.publish(store, content_id, by=by.id)
    elif action == "rollback":
        if version is None:
            raise ValueError("rollback needs a version")
        before, after = await content.rollback(store, content_id, version, by=by.id)
    else:
        before, after = await content.withdraw(store, content_id, by=by.id)
    await audit.record(store, by, "content." + action, "content:" + content_id, channel="console",
                       purpose="console change", detail={"before": summary(before), "after": summary(after)})
    if after.get("status") == "published":
        message = await push_content(services, after, by)
        if message:
            await content.set_push_message(store, content_id, message)
    return after


def device_target(target: Mapping[str, Any]) -> dict[str, Any]:
    keep = {"all": (), "city": ("city",), "hall": ("hall",), "group": ("hall", "group")}[str(target["scope"])]
    return {"scope": target["scope"], **{k: target[k] for k in keep}}


async def push_content(services: Services, document: Mapping[str, Any], by: audit.Actor) -> str | None:
    """Push a published piece to its targeted kiosks; returns the device message id."""
    published = document["published"]
    payload = {"topic": "notices", "id": document["_id"], "kind": document["kind"], "version": published["version"]}
    try:
        return await devices.push(services, device_target(published["target"]), payload, by=by)
    except YiwangError as error:
        log.warning("content push refused", extra={"fields": {"code": error.code}})
        return None


async def delivery(services: Services, message_id: str | None) -> list[dict[str, Any]]:
    """Per targeted device: {device, label, state: delivered|pending|offline, at, result}."""
    if not message_id:
        return []
    try:
        status = await devices.delivery_status(services, message_id)
    except YiwangError:
        return []
    fleet = {d["id"]: d for d in await devices.list_devices(services)}
    rows: list[dict[str, Any]] = []
    for ack in status["acks"]:
        device = fleet.get(ack["device"], {})
        rows.append({"device": ack["device"], "label": device.get("label", ""), "state": "delivered",
                     "at": ack["at"], "result": ack.get("result")})  # fmt: skip
    for device_id in status["pending"]:
        device = fleet.get(device_id, {})
        state = "pending" if device.get("online") else "offline"
        rows.append({"device": device_id, "label": device.get("label", ""), "state": state, "at": None,
                     "result": None})  # fmt: skip
    return rows
