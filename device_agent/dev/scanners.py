"""Development doubles for QR scanner modules: a serial module on a pty, a keyboard-wedge
module as an event feeder writing ``struct input_event`` into a FIFO (no uinput needed).

Both sit behind a stable path (a symlink for the pty, the FIFO itself), so tests can
unplug them (the path disappears, the agent's read fails) and plug them back.
"""

from __future__ import annotations

import contextlib
import os
import time
import tty
from pathlib import Path

from device_agent.drivers.scanner import CHAR_TO_KEY, EV_KEY, EV_SYN, EVENT, KEY_ENTER, KEY_LEFTSHIFT


class PtySerialScanner:
    """A serial QR module: each :meth:`scan` writes the code and CR LF on a pty, reachable at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._master: int | None = None
        self._slave: int | None = None
        self.plug()

    def plug(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.path.symlink_to(os.ttyname(self._slave))

    def unplug(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None

    def scan(self, text: str, ending: bytes = b"\r\n") -> None:
        assert self._master is not None, "unplugged"
        os.write(self._master, text.encode("utf-8") + ending)

    def close(self) -> None:
        self.unplug()


class EventFeeder:
    """A keyboard-wedge QR module: :meth:`scan` types the code (with shift) and Enter as input events."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self.plug()

    def plug(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.mkfifo(self.path)
        self._fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK)  # never blocks, keeps the FIFO open

    def unplug(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None

    @staticmethod
    def events(text: str) -> bytes:
        now = time.time()
        sec, usec = int(now), int(now % 1 * 1_000_000)

        def event(kind: int, code: int, value: int) -> bytes:
            return EVENT.pack(sec, usec, kind, code, value)

        def key(code: int) -> bytes:
            return event(EV_KEY, code, 1) + event(EV_SYN, 0, 0) + event(EV_KEY, code, 0) + event(EV_SYN, 0, 0)

        out = b""
        for char in text:
            code, shifted = CHAR_TO_KEY[char]
            if shifted:
                out += event(EV_KEY, KEY_LEFTSHIFT, 1) + key(code) + event(EV_KEY, KEY_LEFTSHIFT, 0)
            else:
                out += key(code)
        return out + key(KEY_ENTER)

    def scan(self, text: str) -> None:
        assert self._fd is not None, "unplugged"
        data = self.events(text)
        for start in range(0, len(data), 4096):  # a pipe takes 4 KiB atomically
            os.write(self._fd, data[start:start + 4096])

    def close(self) -> None:
        self.unplug()
