"""Anonymous kiosk usage events for the console's figures (``yiwang.figures.kiosk_usage``).

An event is ``{"_id", "hall", "kind", "mode", "at"}`` and nothing else: no
person, no device credential, no certificate. Kinds the figures count:
``session_start`` (a resident or agent identified), ``scenario_checklist`` (a
scenario walked to its checklist), ``certificate_print`` and ``checklist_print``.

Events come in bursts from many kiosks and the embedded DB is slow, so
:func:`record` only appends to an in-process buffer; a background task writes
the buffer with one ``insert_many`` every ``FLUSH_SECONDS`` (or at
``MAX_BUFFER``), and ``Services.close`` flushes what is left (``aclose``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from yiwang.crypto import random_token
from yiwang.timeutil import utcnow

if TYPE_CHECKING:
    from yiwang.runtime import Services

log = logging.getLogger(__name__)

KINDS = frozenset({"session_start", "scenario_checklist", "certificate_print", "checklist_print"})
FLUSH_SECONDS = 2.0
MAX_BUFFER = 500


class EventRecorder:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.buffer: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._closed = False

    def add(self, event: dict[str, Any]) -> None:
        self.buffer.append(event)
        if len(self.buffer) >= MAX_BUFFER:
            self._wake.set()
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while not self._closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), FLUSH_SECONDS)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # the DB is away: keep the events for the next round (bounded)
                log.warning("kiosk events not written yet")
                del self.buffer[: max(0, len(self.buffer) - 10 * MAX_BUFFER)]

    async def flush(self) -> int:
        batch, self.buffer = self.buffer, []
        if not batch:
            return 0
        try:
            await self.services.store["kiosk_events"].insert_many(batch, ordered=False)
        except Exception:
            self.buffer[:0] = batch
            raise
        return len(batch)

    async def aclose(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self.flush()


def recorder(services: Services) -> EventRecorder:
    return services.resources.get(EventRecorder)


def record(services: Services, hall: str, kind: str, *, mode: str | None = None) -> None:
    """Queue one anonymous event (never awaits the DB)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kiosk event kind {kind!r}")
    recorder(services).add({"_id": random_token(12), "hall": hall, "kind": kind, "mode": mode, "at": utcnow()})


async def flush(services: Services) -> int:
    """Write what is buffered now (tests, shutdown)."""
    return await recorder(services).flush()
