"""Shared set-up for the queue tests: the demo halls and their demo queue settings."""

from __future__ import annotations

import json

from tests.conftest import ROOT
from yiwang import hall_queue
from yiwang.audit import Actor
from yiwang.catalog import bump_version
from yiwang.runtime import Services

HALL = "gz-th-center"
CLERK = Actor("console_user", "clerk-1", "th_window (window)")
KIOSK = Actor("device", "kiosk-1", "天河 1 号机")


async def prepare_queue(services: Services) -> None:
    """The halls of data/halls.json (not the whole catalogue) and data/demo/queue.json."""
    for hall in json.loads((ROOT / "data" / "halls.json").read_text(encoding="utf-8")):
        await services.store["halls"].replace_one({"_id": hall["code"]}, {"_id": hall["code"], **hall}, upsert=True)
    await bump_version(services.store)
    services.catalog.invalidate()
    await hall_queue.load_demo_queue(services)


async def take(services: Services, category: str = "A", **kw: object) -> dict:
    return await hall_queue.take_ticket(services, HALL, category, by=KIOSK, source="kiosk", **kw)  # type: ignore[arg-type]
