"""The one audit function: who did what to what, when, through which channel,
for which purpose. Entries form an SM3 hash chain, so a changed or removed
entry shows when the chain is verified.

Entries never hold personal data in clear: subjects are ids, people are
referred to by blind index or masked form.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from pymongo.errors import BulkWriteError

from yiwang.crypto import sm3_hex
from yiwang.store import Document, Store
from yiwang.timeutil import utcnow

GENESIS = "0" * 64
CHANNELS = frozenset({"kiosk", "mobile", "window", "console", "agent", "issuer", "device", "system", "public"})


@dataclass(frozen=True)
class Actor:
    kind: str  # resident, agent, device, department, console_user, system
    id: str
    label: str = ""  # non-personal display label, e.g. "天河政务中心 1 号机"


SYSTEM = Actor("system", "system", "系统")
DUPLICATE_KEY = 11000

# The chain's head per database as this process last wrote or read it, so an
# entry costs no extra read. Another process appending first shows up as a
# duplicate seq; the head is then re-read from the database.
_heads: dict[str, tuple[int, str]] = {}
# Group commit: entries waiting to be chained, per database, and the one task per
# database that appends them. Under load, many requests' entries go out in one
# ``insert_many`` (one round trip) instead of queueing one insert each behind a lock.
_queues: dict[str, list[tuple[Document, asyncio.Future[Document]]]] = {}
_flushers: dict[str, asyncio.Task[None]] = {}
MAX_BATCH = 100


def _entry_digest(entry: Mapping[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k not in ("_id", "hash")}
    body["at"] = body["at"].isoformat()
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return sm3_hex(canonical.encode())


async def record(
    store: Store,
    actor: Actor,
    action: str,
    subject: str,
    *,
    channel: str,
    purpose: str = "",
    on_behalf_of: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> Document:
    """Append one entry to the chain and return it once it is written."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown audit channel {channel!r}")
    now = utcnow()
    entry: Document = {
        "_id": uuid.uuid4().hex,
        "at": now.replace(microsecond=now.microsecond // 1000 * 1000),  # MongoDB keeps ms
        "actor": asdict(actor),
        "action": action,
        "subject": subject,
        "channel": channel,
        "purpose": purpose,
        "on_behalf_of": on_behalf_of,
        "detail": dict(detail or {}),
    }
    head_key = f"{id(store.client)}:{store.db.name}"
    loop = asyncio.get_running_loop()
    queue_key = f"{id(loop)}:{head_key}"
    written: asyncio.Future[Document] = loop.create_future()
    _queues.setdefault(queue_key, []).append((entry, written))
    flusher = _flushers.get(queue_key)
    if flusher is None or flusher.done():
        _flushers[queue_key] = asyncio.create_task(_flush(store, head_key, queue_key))
    # shield: a cancelled caller's entry is still written (never lost once accepted)
    return await asyncio.shield(written)


def _chain(batch: list[tuple[Document, asyncio.Future[Document]]], head: tuple[int, str]) -> list[Document]:
    """Number and link the entries onto ``head`` (in the order they were recorded)."""
    chained: list[Document] = []
    seq, prev = head
    for entry, _ in batch:
        ordered: Document = {"_id": entry["_id"], "seq": seq + 1, **{k: v for k, v in entry.items() if k != "_id"}}
        ordered["prev"] = prev
        ordered["hash"] = _entry_digest(ordered)
        chained.append(ordered)
        seq, prev = ordered["seq"], ordered["hash"]
    return chained


async def _flush(store: Store, head_key: str, queue_key: str) -> None:
    """Append everything queued for this database, a batch per round trip, until the queue is empty."""
    entries = store["audit"]
    queue = _queues.setdefault(queue_key, [])
    while queue:
        batch = queue[:MAX_BATCH]
        del queue[: len(batch)]
        try:
            while batch:
                head = _heads.get(head_key)
                if head is None:
                    last = await entries.find_one({}, sort=[("seq", -1)], projection={"seq": 1, "hash": 1})
                    head = (last["seq"], last["hash"]) if last else (0, GENESIS)
                chained = _chain(batch, head)
                try:
                    await entries.insert_many(chained, ordered=True)
                    done = len(chained)
                except BulkWriteError as exc:
                    errors = exc.details.get("writeErrors") or []
                    if not errors or errors[0].get("code") != DUPLICATE_KEY:
                        raise
                    done = int(exc.details.get("nInserted", errors[0].get("index", 0)))
                for (_, written), stored in zip(batch[:done], chained[:done], strict=True):
                    if not written.done():
                        written.set_result(stored)
                if done == len(chained):
                    _heads[head_key] = (chained[-1]["seq"], chained[-1]["hash"])
                    batch = []
                else:  # another process appended first: chain the rest onto its entry
                    _heads.pop(head_key, None)
                    batch = batch[done:]
        except BaseException as exc:  # the database failed (or the loop is ending): those callers see it
            _heads.pop(head_key, None)
            for _, written in batch + ([] if isinstance(exc, Exception) else queue):
                if not written.done():
                    written.set_exception(exc)
            if not isinstance(exc, Exception):
                queue.clear()
                raise


async def verify_chain(store: Store) -> tuple[bool, int | None]:
    """Walk the chain; returns (intact, first bad seq)."""
    expected_prev = GENESIS
    expected_seq = 1
    async for entry in store["audit"].find({}, sort=[("seq", 1)]):
        if entry["seq"] != expected_seq or entry["prev"] != expected_prev or _entry_digest(entry) != entry["hash"]:
            return False, entry["seq"]
        expected_prev = entry["hash"]
        expected_seq += 1
    return True, None


async def history(store: Store, subject: str, limit: int = 100) -> list[Document]:
    cursor = store["audit"].find({"subject": subject}, sort=[("seq", -1)], limit=limit)
    return [entry async for entry in cursor]
