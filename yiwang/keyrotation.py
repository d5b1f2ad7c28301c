"""Rotating the key that seals personal data (PII_KEY).

1. Put the old key in ``PII_KEYS_PREVIOUS`` and a new one in ``PII_KEY``, restart.
   New writes are sealed with the new key; everything still opens.
2. A background job (:class:`Resealer`, started with the process when previous
   keys are configured) walks every collection and seals again, under the new
   key, each value an old key sealed: a conditional update per document, so a
   concurrent change is never overwritten (the job comes back to it later).
3. :func:`census` counts values per key; when no value names an old key (and
   none is unreadable), remove it from ``PII_KEYS_PREVIOUS``.

Values sealed in format 1 (before key ids) do not carry their purpose: they are
opened by trying the purposes in :data:`LEGACY_PURPOSES`. The audit trail is
never rewritten (it holds no sealed values, and rewriting it would break its
chain). Blind indexes are keyed separately (``BLIND_INDEX_KEY``) and are not
rotated by this job.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import Iterator
from typing import Any

from yiwang.crypto import FieldCipher
from yiwang.store import INDEXES, Document, Store

log = logging.getLogger(__name__)

# Every purpose a format-1 value may have been sealed for (format 2 names its own).
LEGACY_PURPOSES = (
    "one_number", "name", "phone", "wechat_openid", "wechat_session_key", "application_form", "upload",
    "complaint_content", "complaint_answer", "console_totp", "certificate_fields", "certificate_number",
    "certificate_holder_name", "sm2_signing_key",
)  # fmt: skip
SKIPPED = frozenset({"audit"})
BATCH = 200


def _looks_sealed(value: str) -> bool:
    if len(value) < 40 or len(value) % 4:
        return False
    try:
        head = base64.b64decode(value[:8], validate=True)
    except (binascii.Error, ValueError):
        return False
    return head[:1] in (b"\x01", b"\x02")


def _sealed_values(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        if path and _looks_sealed(value):
            yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _sealed_values(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _sealed_values(item, f"{path}.{index}")


async def reseal_collection(store: Store, cipher: FieldCipher, name: str) -> int:
    """Seal again under the current key what older keys sealed in one collection; returns how many values."""
    done = 0
    last: Any = None
    while True:
        query: Document = {} if last is None else {"_id": {"$gt": last}}
        batch = [d async for d in store[name].find(query, sort=[("_id", 1)], limit=BATCH)]
        if not batch:
            return done
        for doc in batch:
            changes: dict[str, str] = {}
            for path, sealed in _sealed_values({k: v for k, v in doc.items() if k != "_id"}):
                fresh = cipher.reseal(sealed, LEGACY_PURPOSES)
                if fresh is not None:
                    changes[path] = fresh
            if changes:
                unchanged = {path: doc_value for path, doc_value in _sealed_values(doc) if path in changes}
                result = await store[name].update_one({"_id": doc["_id"], **unchanged}, {"$set": changes})
                done += len(changes) if result.modified_count else 0
        last = batch[-1]["_id"]


async def reseal_all(store: Store, cipher: FieldCipher) -> dict[str, int]:
    counts = {}
    for name in INDEXES:
        if name not in SKIPPED:
            count = await reseal_collection(store, cipher, name)
            if count:
                counts[name] = count
    return counts


async def census(store: Store, cipher: FieldCipher) -> dict[str, int]:
    """How many sealed values each key id holds (``unreadable``: no configured key opens it)."""
    counts: dict[str, int] = {}
    for name in INDEXES:
        if name in SKIPPED:
            continue
        async for doc in store[name].find({}):
            for _, sealed in _sealed_values({k: v for k, v in doc.items() if k != "_id"}):
                kid, _ = cipher.sealed_with(sealed, LEGACY_PURPOSES)
                counts[kid or "unreadable"] = counts.get(kid or "unreadable", 0) + 1
    return counts


class Resealer:
    """Started with the process when old keys are still configured; re-seals once, then reports."""

    def __init__(self, store: Store, cipher: FieldCipher) -> None:
        self.store = store
        self.cipher = cipher
        self._task: asyncio.Task[dict[str, int]] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self.run())

    async def run(self) -> dict[str, int]:
        counts = await reseal_all(self.store, self.cipher)
        held = await census(self.store, self.cipher)
        remaining = {k: v for k, v in held.items() if k != self.cipher.current_key_id}
        log.info("personal data re-sealed", extra={"fields": {"resealed": sum(counts.values()), "left": remaining}})
        return counts

    async def wait(self) -> dict[str, int]:
        return await self._task if self._task is not None else {}

    async def aclose(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
