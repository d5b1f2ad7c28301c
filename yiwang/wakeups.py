"""In-process wake-ups for requests that wait on something another request does
(a phone releasing certificates to a kiosk, a phone picking up a copy).

The database stays the truth and is what crosses processes: every waiter also reads
its document every ``POLL_SECONDS`` (0.5 s, by ``_id``), so a release made by another
process is seen within that (``tests/test_two_processes.py``); within one process the
waiter is woken at once. One event per waited-on key, shared by its waiters and
dropped when the last one leaves (bounded by the requests waiting).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from yiwang.runtime import Services


@dataclass
class WakeUps:
    events: dict[str, asyncio.Event] = field(default_factory=dict)
    waiters: dict[str, int] = field(default_factory=dict)

    def event(self, key: str) -> asyncio.Event:
        self.waiters[key] = self.waiters.get(key, 0) + 1
        return self.events.setdefault(key, asyncio.Event())

    def notify(self, key: str) -> None:
        event = self.events.get(key)
        if event is not None:
            event.set()

    def forget(self, key: str) -> None:
        """One waiter leaves; the event goes with the last (another waiter on the same key keeps it)."""
        left = self.waiters.get(key, 0) - 1
        if left > 0:
            self.waiters[key] = left
            return
        self.waiters.pop(key, None)
        self.events.pop(key, None)

    async def aclose(self) -> None:
        """On shutdown: wake every waiter so its request can finish."""
        for event in self.events.values():
            event.set()
        self.events.clear()
        self.waiters.clear()


@dataclass
class WakeUpBoard:
    """The process's wake-ups, one :class:`WakeUps` per concept (``consent``, ``copy_pickup``)."""

    concepts: dict[str, WakeUps] = field(default_factory=dict)

    def of(self, concept: str) -> WakeUps:
        return self.concepts.setdefault(concept, WakeUps())

    async def aclose(self) -> None:
        for found in self.concepts.values():
            await found.aclose()


def wakeups(services: Services, concept: str) -> WakeUps:
    """The process's wake-ups for one concept."""
    return services.resources.get(WakeUpBoard).of(concept)
