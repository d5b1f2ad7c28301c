"""systemd's notification protocol (sd_notify), spoken directly: one datagram per message
to the AF_UNIX socket named by ``$NOTIFY_SOCKET`` (a leading ``@`` is the abstract
namespace). ``READY=1`` once the agent serves the page and its channel runs;
``WATCHDOG=1`` every half ``$WATCHDOG_USEC`` from a task on the event loop, so a stuck
loop misses its pings and systemd (``WatchdogSec=``) restarts the agent; ``STOPPING=1``
on shutdown. Without ``$NOTIFY_SOCKET`` (not under systemd) every call does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Mapping

log = logging.getLogger("device_agent.sd_notify")


class Notifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.address = env.get("NOTIFY_SOCKET", "")
        watchdog_usec = env.get("WATCHDOG_USEC", "")
        watchdog_pid = env.get("WATCHDOG_PID", "")
        for_us = not watchdog_pid or watchdog_pid == str(os.getpid())
        self.watchdog_seconds = int(watchdog_usec) / 1_000_000 if watchdog_usec.isdigit() and for_us else 0.0
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def notify(self, *lines: str) -> bool:
        if not self.address:
            return False
        address = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto("\n".join(lines).encode(), address)
            return True
        except OSError as error:
            log.warning("sd_notify failed: %s", error)
            return False

    def ready(self, status: str = "") -> None:
        self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, status: str) -> None:
        self.notify(f"STATUS={status}")

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    def start_watchdog(self, healthy: Callable[[], bool] = lambda: True) -> None:
        """Ping every half watchdog period while ``healthy()``; a sick agent stops pinging and is restarted."""
        if not self.watchdog_seconds or self._task is not None:
            return

        async def pinger() -> None:
            while True:
                if healthy():
                    self.notify("WATCHDOG=1")
                await asyncio.sleep(self.watchdog_seconds / 2)

        self._task = asyncio.get_running_loop().create_task(pinger())

    async def stop_watchdog(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
