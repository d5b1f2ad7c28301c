"""systemd's notify protocol (sd_notify), for ``Type=notify`` units with a watchdog.

The server says READY=1 once it listens and STOPPING=1 when it drains; with
``WatchdogSec`` set, it says WATCHDOG=1 from the event loop at half the
interval, so a loop that stops turning (a blocking call, a deadlock) gets the
process restarted. Without ``NOTIFY_SOCKET`` (not under systemd) every call is
a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket


def notify(state: str) -> bool:
    """Send one state line; False when not under systemd or the socket is gone."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError:
        return False
    return True


def watchdog_interval() -> float | None:
    """Half the watchdog period systemd asked for, in seconds (None: no watchdog for this process)."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6


async def keep_alive(interval: float) -> None:
    """Pet the watchdog from the event loop until cancelled."""
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(interval)


def start_watchdog() -> asyncio.Task[None] | None:
    interval = watchdog_interval()
    return asyncio.create_task(keep_alive(interval)) if interval else None


async def stop_watchdog(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
