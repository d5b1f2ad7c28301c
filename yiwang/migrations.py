"""The data's migrations: ordered, append-only steps that each run once per database, at
boot (``yiwang.boot``), after the indexes exist. A step that needs this host's files and keys
gets a :class:`MigrationContext`; without one (a tool, a test store) it is deferred to the
server's next start.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pymongo import UpdateOne

from yiwang import activity
from yiwang.crypto import FieldCipher
from yiwang.store import Store
from yiwang.timeutil import utcnow
from yiwang.uploads import import_disk_uploads

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MigrationContext:
    """What a migration may need besides the database: this host's files and the keys."""

    data_dir: Path
    cipher: FieldCipher


class MigrationDeferred(Exception):
    """A migration that cannot run here (no context: a test store, a tool); left for the server's start."""


Migration = Callable[[Store, "MigrationContext | None"], Awaitable[None]]


async def _initial_schema(store: Store, context: MigrationContext | None) -> None:
    """Version 1: the collections and indexes above; nothing to transform."""


async def _daily_counts(store: Store, context: MigrationContext | None) -> None:
    """Version 2: per-day application counts (yiwang.activity) from the applications already there."""
    await activity.backfill(store)


async def _uploads_into_database(store: Store, context: MigrationContext | None) -> None:
    """Version 3: uploads sealed on this host's disk move into ``file_chunks`` (yiwang.uploads).
    Another host's files: ``python -m yiwang.admin uploads import-disk`` there; until then they
    are read from that host's disk."""
    if context is None:
        raise MigrationDeferred("needs DATA_DIR and the keys")
    await import_disk_uploads(store, context.cipher, context.data_dir)


async def _applicant_index(store: Store, context: MigrationContext | None) -> None:
    """Version 4: a top-level ``applicant_index`` on every application (the resident's list reads it)."""
    cursor = store["applications"].find({"applicant_index": {"$exists": False}}, {"applicant.index": 1})
    updates = [
        UpdateOne({"_id": doc["_id"]}, {"$set": {"applicant_index": doc["applicant"]["index"]}})
        async for doc in cursor
        if (doc.get("applicant") or {}).get("index")
    ]
    for start in range(0, len(updates), 500):
        await store["applications"].bulk_write(updates[start : start + 500], ordered=False)


# Ordered, append-only. Each runs once; the version reached is kept in `meta`.
MIGRATIONS: Sequence[tuple[int, str, Migration]] = (
    (1, "initial schema", _initial_schema),
    (2, "daily application counts", _daily_counts),
    (3, "uploads from DATA_DIR/uploads into the database", _uploads_into_database),
    (4, "applications: top-level applicant_index", _applicant_index),
)


async def run(store: Store, context: MigrationContext | None = None) -> int:
    """Every migration not yet applied, in order; the version reached is kept in ``meta``."""
    meta = store.db["meta"]
    current = await meta.find_one({"_id": "schema_version"})
    version = int(current["version"]) if current else 0
    for number, title, step in MIGRATIONS:
        if number <= version:
            continue
        log.info("migration", extra={"fields": {"version": number, "title": title}})
        try:
            await step(store, context)
        except MigrationDeferred:
            log.info("migration deferred", extra={"fields": {"version": number, "title": title}})
            break
        await meta.update_one(
            {"_id": "schema_version"},
            {"$set": {"version": number, "title": title, "at": utcnow()}},
            upsert=True,
        )
        version = number
    return version

