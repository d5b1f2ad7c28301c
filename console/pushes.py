"""The console's link to the device fan-out (yiwang.devices, owned by the kiosk
engineer). Publishing works without it; when it is there, a publish is pushed
to the targeted kiosks at once and delivery is read back per device."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from typing import Any

from yiwang.runtime import Services

log = logging.getLogger(__name__)


def _devices() -> Any:
    try:
        return importlib.import_module("yiwang.devices")
    except ImportError:
        return None


def _target_for_devices(target: Mapping[str, Any]) -> dict[str, Any]:
    return dict(target)


async def push_content(services: Services, document: Mapping[str, Any]) -> str | None:
    """Push a published piece to its targeted kiosks; returns the message id (None when no fan-out exists)."""
    devices = _devices()
    push = getattr(devices, "push", None) if devices else None
    if push is None:
        return None
    published = document["published"]
    payload = {"type": "content", "id": document["_id"], "kind": document["kind"], "version": published["version"]}
    try:
        result = await push(services, _target_for_devices(published["target"]), payload)
    except Exception:
        log.exception("content push failed")
        return None
    return str(result) if result is not None else None


async def delivery(services: Services, message_id: str | None) -> list[dict[str, Any]]:
    """Per device: {device, label, hall, state: delivered|pending|offline, at}."""
    devices = _devices()
    status = getattr(devices, "delivery_status", None) if devices else None
    if status is None or not message_id:
        return []
    try:
        return list(await status(services.store, message_id))
    except Exception:
        log.exception("delivery status failed")
        return []
