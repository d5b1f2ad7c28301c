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
chain). Blind indexes are keyed separately (``BLIND_INDEX_KEY``): their rotation is
the second half of this module (:func:`reindex_all`).
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


# ---- blind-index key rotation (BLIND_INDEX_KEY) ---------------------------------------------
#
# 1. Put the old key in BLIND_INDEX_KEYS_PREVIOUS and a new one in BLIND_INDEX_KEY, restart.
#    New indexes use the new key; lookups from a clear value (an ID number, an openid) try
#    every key's index and keep the one the person's records already carry.
# 2. :class:`Reindexer` (started with the process while previous index keys are configured)
#    builds {old index: new index} from the sealed values whose purpose is indexed, then
#    rewrites every stored string equal to an old index, in every collection but the audit
#    trail: a person's index is the key of their records everywhere (holder.index,
#    applicant.index, owner, person_index …), so all of them move together.
# 3. When :func:`index_census` finds no old index left, remove the old key and restart.
#    The audit trail keeps the indexes it was written with (its chain must not change):
#    ``index_aliases`` records old → new so an auditor can follow a person across the rotation.

INDEXED_PURPOSES = ("one_number", "wechat_openid")


async def _index_map(store: Store, cipher: FieldCipher) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for name in INDEXES:
        if name in SKIPPED or name in ("index_aliases", "file_chunks"):
            continue
        async for doc in store[name].find({}):
            for _, sealed in _sealed_values({k: v for k, v in doc.items() if k != "_id"}):
                kid, purpose = cipher.sealed_with(sealed, LEGACY_PURPOSES)
                if kid is None or purpose not in INDEXED_PURPOSES:
                    continue
                mapping.update(cipher.index_rewrites(purpose, cipher.open(purpose, sealed)))
    return mapping


def _index_values(value: Any, old: dict[str, str], path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        if path and value in old:
            yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _index_values(item, old, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _index_values(item, old, f"{path}.{index}")


async def reindex_all(store: Store, cipher: FieldCipher) -> dict[str, int]:
    """Rewrite, under the current blind-index key, every index an older key made; {collection: values}."""
    from pymongo.errors import DuplicateKeyError

    mapping = await _index_map(store, cipher)
    if not mapping:
        return {}
    for old, new in mapping.items():  # for auditors: the trail keeps the old indexes
        await store["index_aliases"].update_one({"_id": old}, {"$set": {"current": new}}, upsert=True)
    counts: dict[str, int] = {}
    for name in INDEXES:
        if name in SKIPPED or name in ("index_aliases", "file_chunks"):
            continue
        last: Any = None
        while True:
            query: Document = {} if last is None else {"_id": {"$gt": last}}
            batch = [d async for d in store[name].find(query, sort=[("_id", 1)], limit=BATCH)]
            if not batch:
                break
            for doc in batch:
                found = dict(_index_values({k: v for k, v in doc.items() if k != "_id"}, mapping))
                if not found:
                    continue
                try:
                    result = await store[name].update_one(
                        {"_id": doc["_id"], **found}, {"$set": {p: mapping[v] for p, v in found.items()}}
                    )
                except DuplicateKeyError:  # the same person registered again under the new key meanwhile
                    log.warning("re-index conflict", extra={"fields": {"collection": name, "id": str(doc["_id"])}})
                    counts["conflicts"] = counts.get("conflicts", 0) + 1
                    continue
                if result.modified_count:
                    counts[name] = counts.get(name, 0) + len(found)
            last = batch[-1]["_id"]
    return counts


async def index_census(store: Store, cipher: FieldCipher) -> dict[str, int]:
    """Stored values per collection still equal to an old key's index (empty: the old key can go)."""
    mapping = await _index_map(store, cipher)
    left: dict[str, int] = {}
    if not mapping:
        return left
    for name in INDEXES:
        if name in SKIPPED or name in ("index_aliases", "file_chunks"):
            continue
        async for doc in store[name].find({}):
            n = sum(1 for _ in _index_values({k: v for k, v in doc.items() if k != "_id"}, mapping))
            if n:
                left[name] = left.get(name, 0) + n
    return left


class Reindexer:
    """Started with the process while old blind-index keys are configured; re-indexes once, then reports."""

    def __init__(self, store: Store, cipher: FieldCipher) -> None:
        self.store = store
        self.cipher = cipher
        self._task: asyncio.Task[dict[str, int]] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self.run())

    async def run(self) -> dict[str, int]:
        counts = await reindex_all(self.store, self.cipher)
        left = await index_census(self.store, self.cipher)
        log.info("blind indexes re-indexed", extra={"fields": {"reindexed": sum(counts.values()), "left": left}})
        return counts

    async def wait(self) -> dict[str, int]:
        return await self._task if self._task is not None else {}

    async def aclose(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
