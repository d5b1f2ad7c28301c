"""Read-mostly data served from memory, one version number per topic in ``meta`` (the one mechanism).

A writer changes the data, then calls :func:`bump` (``meta`` document ``_id`` = the topic, ``{"version": n}``).
Each process keeps one :class:`Versioned` per topic (the catalogue with its scenarios and halls, the published
verification keys):

* the first use loads the data (concurrent first uses share one load);
* after that a request never waits on the database: a background task started with the first load reads the
  topic's version document every ``REFRESH_SECONDS`` (one lookup by ``_id``, flat on every engine) and, when
  it moved, loads the new version and swaps it in. A change made by another process (the console, an admin
  command) shows within ``REFRESH_SECONDS`` plus one load; in the writing process ``bump`` drops the
  copies in memory, so it sees its own change on the next use;
* per version, :meth:`Versioned.rendered` keeps a view's serialised JSON bytes and their ETag, so a cached
  endpoint serialises once per version and answers ``304`` to a matching ``If-None-Match``.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import hashlib
import json
import logging
import weakref
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from yiwang.store import Store

log = logging.getLogger(__name__)

REFRESH_SECONDS = 1.0
META = "meta"
MAX_RENDERED = 4096  # views kept per version (item details, lists by limit); beyond, rendered per request

def json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(value: Any) -> str:
    """The one JSON form of a response body: compact, UTF-8 text, datetimes in ISO 8601."""
    return json.dumps(value, ensure_ascii=False, default=json_default, separators=(",", ":"))


@dataclass(frozen=True)
class Rendered:
    """A response body serialised once, with its ETag (weak: the same for the gzipped form) and, made on
    first use, its gzipped form (compressed once per version, not once per response)."""

    body: bytes
    etag: str

    @classmethod
    def of(cls, value: Any) -> Rendered:
        body = dumps(value).encode()
        return cls(body, 'W/"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"')

    @functools.cached_property
    def gzipped(self) -> bytes:
        return gzip.compress(self.body, compresslevel=6, mtime=0)


async def read_version(store: Store, topic: str) -> int:
    doc = await store[META].find_one({"_id": topic})
    return int(doc["version"]) if doc else 0


async def bump(store: Store, topic: str) -> None:
    """Tell every process that ``topic`` changed (call after the change is written). This process's own
    copies of the topic are dropped at once, so the writer reads its change on its next use."""
    await store[META].update_one({"_id": topic}, {"$inc": {"version": 1}}, upsert=True)
    for cached in list(_instances):
        if cached.store is store and cached.topic == topic:
            cached.invalidate()


@dataclass
class _Entry[T]:
    version: int
    value: T
    rendered: dict[Hashable, Rendered] = field(default_factory=dict)


_instances: weakref.WeakSet[Versioned[Any]] = weakref.WeakSet()


class Versioned[T]:
    """One topic's data in memory, reloaded in the background when its version document moves."""

    def __init__(self, store: Store, topic: str, load: Callable[[int], Awaitable[T]]) -> None:
        self.store = store
        self.topic = topic
        self._load = load
        self._entry: _Entry[T] | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        _instances.add(self)

    @property
    def version(self) -> int | None:
        """The version in memory (None before the first load or after ``invalidate``)."""
        return self._entry.version if self._entry is not None else None

    async def _current(self) -> _Entry[T]:
        entry = self._entry
        if entry is not None:
            return entry
        async with self._lock:  # the first load (and the next use after invalidate()): shared
            if self._entry is None:
                version = await read_version(self.store, self.topic)  # before the data: never newer than it
                self._entry = _Entry(version, await self._load(version))
                self._start_watch()
            return self._entry

    async def get(self) -> T:
        return (await self._current()).value

    async def rendered(self, key: Hashable, build: Callable[[T], Any]) -> Rendered:
        """``build(value)`` serialised, once per version and key (``build`` may raise, e.g. NotFound)."""
        entry = await self._current()
        hit = entry.rendered.get(key)
        if hit is None:
            hit = Rendered.of(build(entry.value))
            if len(entry.rendered) < MAX_RENDERED:
                entry.rendered[key] = hit
        return hit

    async def check(self) -> bool:
        """Read the version document; load and swap in the new version if it moved. True when it did."""
        entry = self._entry
        if entry is None:
            return False
        version = await read_version(self.store, self.topic)
        if version == entry.version:
            return False
        value = await self._load(version)
        if self._entry is entry:  # not invalidated meanwhile
            self._entry = _Entry(version, value)
        return True

    def invalidate(self) -> None:
        """This process changed the data: the next use loads it (other processes see it on their check)."""
        self._entry = None

    def _start_watch(self) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(self._watch(), name=f"versioned:{self.topic}")

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            try:
                await self.check()
            except Exception:  # the next check retries; requests keep what is in memory
                log.warning("version check failed", exc_info=True, extra={"fields": {"topic": self.topic}})

    async def aclose(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
