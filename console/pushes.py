"""The console's link to the device fan-out (yiwang.devices, see docs/kiosk-and-devices.md):
a publish is pushed to the targeted kiosks at once, and delivery is read back per device."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from yiwang import audit, devices
from yiwang.errors import YiwangError
from yiwang.runtime import Services

log = logging.getLogger(__name__)


def device_target(target: Mapping[str, Any]) -> dict[str, Any]:
    keep = {"all": (), "city": ("city",), "hall": ("hall",), "group": ("hall", "group")}[str(target["scope"])]
    return {"scope": target["scope"], **{k: target[k] for k in keep}}


async def push_content(services: Services, document: Mapping[str, Any], by: audit.Actor) -> str | None:
    """Push a published piece to its targeted kiosks; returns the device message id.

    The publish itself is already stored: kiosks that miss the push read it on their next load."""
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
