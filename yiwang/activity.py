"""Counts maintained as applications come in, so no page aggregates applications to show them.

One document per local (Asia/Shanghai) day in ``daily_counts``, ``_id`` the ISO date:
``{"day": "2026-12-02", "submitted": n, "items": {item code: n}}``, incremented by one upsert when an
application is submitted. Reads are lookups by ``_id`` (flat on every engine: the embedded one included,
see docs/embedded-db.md), never a scan of ``applications``: the hot-items ranking reads the last 30 days'
documents, at most once per ``RECENT_CACHE_SECONDS`` per process, concurrent misses sharing one read.

Migration 2 in ``yiwang.store`` backfills the days from applications submitted before the counts existed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import weakref
from typing import Any

from yiwang.store import Document, Store
from yiwang.timeutil import SHANGHAI, as_utc, local_today

COLLECTION = "daily_counts"
RECENT_DAYS = 30
RECENT_CACHE_SECONDS = 30.0


def day_of(moment: dt.datetime) -> str:
    return as_utc(moment).astimezone(SHANGHAI).date().isoformat()


def _increment(item_code: str) -> dict[str, Any]:
    return {"$inc": {"submitted": 1, f"items.{item_code}": 1}}


async def record_submission(store: Store, item_code: str, at: dt.datetime) -> None:
    """One more application for ``item_code`` on the local day of ``at`` (call once per submission)."""
    day = day_of(at)
    update = _increment(item_code)
    update["$setOnInsert"] = {"day": day}
    await store[COLLECTION].update_one({"_id": day}, update, upsert=True)


def recent_days(today: dt.date, days: int = RECENT_DAYS) -> list[str]:
    return [(today - dt.timedelta(days=k)).isoformat() for k in range(days)]


async def _read_recent(store: Store, days: list[str]) -> dict[str, int]:
    found = await asyncio.gather(*(store[COLLECTION].find_one({"_id": day}) for day in days))
    counts: dict[str, int] = {}
    for doc in found:
        for code, n in ((doc or {}).get("items") or {}).items():
            counts[code] = counts.get(code, 0) + int(n)
    return counts


class _RecentCache:
    def __init__(self) -> None:
        self.value: dict[str, int] | None = None
        self.at = 0.0
        self.pending: asyncio.Future[dict[str, int]] | None = None


_caches: weakref.WeakKeyDictionary[Store, _RecentCache] = weakref.WeakKeyDictionary()


async def recent_item_counts(store: Store) -> dict[str, int]:
    """Applications per item over the last 30 local days (cached per process for 30 s)."""
    cache = _caches.setdefault(store, _RecentCache())
    if cache.value is not None and time.monotonic() - cache.at < RECENT_CACHE_SECONDS:
        return cache.value
    if cache.pending is not None:
        return await asyncio.shield(cache.pending)
    future: asyncio.Future[dict[str, int]] = asyncio.get_running_loop().create_future()
    cache.pending = future
    try:
        value = await _read_recent(store, recent_days(local_today()))
        cache.value, cache.at = value, time.monotonic()
        future.set_result(value)
        return value
    except BaseException as exc:
        future.set_exception(exc)
        future.exception()  # retrieved: no warning when nobody else waited
        raise
    finally:
        cache.pending = None


def forget_cached(store: Store) -> None:
    """Drop this process's cached counts (tests, and after a backfill)."""
    _caches.pop(store, None)


async def backfill(store: Store) -> None:
    """Rebuild the days from ``applications`` (migration 2): one pass over submitted applications."""
    per_day: dict[str, Document] = {}
    cursor = store["applications"].find(
        {"submitted_at": {"$ne": None}}, projection={"item": 1, "submitted_at": 1, "_id": 0}
    )
    async for doc in cursor:
        if not doc.get("submitted_at") or not doc.get("item"):
            continue
        day = day_of(doc["submitted_at"])
        entry = per_day.setdefault(day, {"_id": day, "day": day, "submitted": 0, "items": {}})
        entry["submitted"] += 1
        entry["items"][doc["item"]] = entry["items"].get(doc["item"], 0) + 1
    for entry in per_day.values():
        await store[COLLECTION].replace_one({"_id": entry["_id"]}, entry, upsert=True)
