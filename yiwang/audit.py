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

from pymongo.errors import DuplicateKeyError

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

_chain_lock = asyncio.Lock()
# The chain's head per database as this process last wrote or read it, so an
# entry costs one insert. Another process appending first shows up as a
# duplicate seq; the head is then re-read from the database.
_heads: dict[str, tuple[int, str]] = {}


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
    """Append one entry to the chain and return it."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown audit channel {channel!r}")
    entries = store["audit"]
    head_key = f"{id(store.client)}:{store.db.name}"
    async with _chain_lock:  # one writer per process; the unique seq index orders processes
        while True:
            head = _heads.get(head_key)
            if head is None:
                last = await entries.find_one({}, sort=[("seq", -1)], projection={"seq": 1, "hash": 1})
                head = (last["seq"], last["hash"]) if last else (0, GENESIS)
            now = utcnow()
            entry: Document = {
                "_id": uuid.uuid4().hex,
                "seq": head[0] + 1,
                "at": now.replace(microsecond=now.microsecond // 1000 * 1000),  # MongoDB keeps ms
                "actor": asdict(actor),
                "action": action,
                "subject": subject,
                "channel": channel,
                "purpose": purpose,
                "on_behalf_of": on_behalf_of,
                "detail": dict(detail or {}),
                "prev": head[1],
            }
            entry["hash"] = _entry_digest(entry)
            try:
                await entries.insert_one(entry)
            except DuplicateKeyError:
                _heads.pop(head_key, None)  # another process appended first: chain onto its entry
                continue
            _heads[head_key] = (entry["seq"], entry["hash"])
            return entry


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
