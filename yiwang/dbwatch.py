"""Watching the embedded database's child process, and restarting it when it dies.

While the child is down the process knows at once (``DbWatch.available`` is False): the HTTP layer
answers ``503 db.unavailable`` straight away instead of letting each request wait for PyMongo's
server-selection timeout, and ``/readyz`` says so. The watch restarts the child on the same port (the
PyMongo client reconnects by itself) with a bounded exponential backoff; after ``max_attempts``
failures in a row it gives up and stays unavailable, so the supervisor (systemd, the load balancer
through ``/readyz``) takes the instance out of service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Literal

from yiwang.embedded import EmbeddedMongo
from yiwang.errors import ServiceUnavailable

log = logging.getLogger("yiwang.dbwatch")

State = Literal["ok", "restarting", "failed"]


def unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "db.unavailable", "数据库暂时不可用，正在恢复，请稍后再试", detail={"retry_after": 2}
    )


class DbWatch:
    """Notices the death of the embedded database's process and brings it back."""

    def __init__(
        self,
        embedded: EmbeddedMongo,
        *,
        poll_seconds: float = 0.5,
        first_delay: float = 0.5,
        max_delay: float = 15.0,
        max_attempts: int = 10,
    ) -> None:
        self.embedded = embedded
        self.poll_seconds = poll_seconds
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.max_attempts = max_attempts
        self.state: State = "ok"
        self.restarts = 0  # successful restarts since start-up
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def available(self) -> bool:
        """Cheap enough for every request: a non-blocking ``waitpid`` on the child."""
        if self.state == "ok" and not self._closing and not self.embedded.running():
            self._lost()
        return self.state == "ok"

    def check(self) -> None:
        """Raise ``db.unavailable`` (503) while the database is down."""
        if not self.available:
            raise unavailable()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="dbwatch")

    async def aclose(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _lost(self) -> None:
        log.error("embedded database process died; restarting it", extra={"fields": {"port": self.embedded.port}})
        self.state = "restarting"
        self._wake.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            self._wake.clear()
            if self.state == "ok" and not self.embedded.running():
                self._lost()
            if self.state == "restarting":
                await self._restart()

    async def _restart(self) -> None:
        delay = self.first_delay
        for attempt in range(1, self.max_attempts + 1):
            if self._closing:
                return
            await asyncio.sleep(delay)
            try:
                await asyncio.to_thread(self.embedded.start)
            except (OSError, RuntimeError) as error:
                log.error(
                    "embedded database restart failed",
                    extra={"fields": {"attempt": attempt, "error": str(error)[:200]}},
                )
                delay = min(delay * 2, self.max_delay)
                continue
            self.restarts += 1
            self.state = "ok"
            log.warning("embedded database restarted", extra={"fields": {"attempt": attempt}})
            return
        self.state = "failed"
        log.critical(
            "embedded database could not be restarted; giving up", extra={"fields": {"attempts": self.max_attempts}}
        )
