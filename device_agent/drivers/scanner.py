"""QR scanner modules besides the camera: serial modules and keyboard-wedge (HID) modules.

* :class:`SerialScanner` — a module on a (USB-)serial port sends each code as a line
  (CR, LF or CRLF). Opened with pyserial (baud rate), read without blocking the loop.
* :class:`KeyboardScanner` — a module that types the code as a USB keyboard, read from
  its ``/dev/input/event*`` device. The device is *grabbed* (``EVIOCGRAB``) so the
  keystrokes never reach the kiosk page; the kernel's ``struct input_event`` is parsed
  here (no ``evdev`` module needed), US key map, Enter ends a code.

Both are file descriptors watched with ``loop.add_reader``. A module unplugged (read
error or end of file) makes the driver ``offline``; it reopens the path every
``retry_seconds`` (use a stable ``/dev/serial/by-id/…`` or ``/dev/input/by-id/…`` path).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import struct
from collections import deque
from typing import Any

from qrscan.text import repair_text

log = logging.getLogger("device_agent.scanner")

EVENT = struct.Struct("llHHi")  # struct input_event on 64-bit Linux: timeval, type, code, value
EV_SYN, EV_KEY = 0, 1
KEY_ENTER, KEY_KPENTER, KEY_LEFTSHIFT, KEY_RIGHTSHIFT = 28, 96, 42, 54
EVIOCGRAB = 0x40044590  # _IOW('E', 0x90, int)
MAX_CODE = 4096

_PLAIN = {2: "1", 3: "2", 4: "3", 5: "4", 6: "5", 7: "6", 8: "7", 9: "8", 10: "9", 11: "0", 12: "-", 13: "=",
          16: "q", 17: "w", 18: "e", 19: "r", 20: "t", 21: "y", 22: "u", 23: "i", 24: "o", 25: "p", 26: "[", 27: "]",
          30: "a", 31: "s", 32: "d", 33: "f", 34: "g", 35: "h", 36: "j", 37: "k", 38: "l", 39: ";", 40: "'", 41: "`",
          43: "\\", 44: "z", 45: "x", 46: "c", 47: "v", 48: "b", 49: "n", 50: "m", 51: ",", 52: ".", 53: "/", 57: " "}
_SHIFTED_SYMBOLS = dict(zip("1234567890-=[];'`\\,./", "!@#$%^&*()_+{}:\"~|<>?", strict=True))
KEYMAP: dict[int, tuple[str, str]] = {
    code: (char, char.upper() if char.isalpha() else _SHIFTED_SYMBOLS.get(char, char)) for code, char in _PLAIN.items()
}
CHAR_TO_KEY: dict[str, tuple[int, bool]] = {}
for _code, (_plain, _shifted) in KEYMAP.items():
    CHAR_TO_KEY.setdefault(_plain, (_code, False))
    CHAR_TO_KEY.setdefault(_shifted, (_code, True))


class FdScanner:
    """A code source on a file descriptor; subclasses open it and turn bytes into codes."""

    kind = "scanner"

    def __init__(self, path: str, retry_seconds: float = 1.0) -> None:
        self.path = path
        self.retry_seconds = retry_seconds
        self._fd: int | None = None
        self._handle: Any = None
        self._codes: deque[str] = deque()
        self._state = "offline"

    def status(self) -> str:
        return self._state

    def _open(self) -> int:
        raise NotImplementedError

    def _feed(self, data: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(Exception):
                self._handle.close()
        elif self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = self._handle = None

    async def _read(self, fd: int) -> bytes:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(fd, wake)
        try:
            await ready
        finally:
            loop.remove_reader(fd)
        try:
            return os.read(fd, 4096)
        except BlockingIOError:
            return b"\x00retry"  # spurious wake-up
        except OSError:
            return b""  # EIO / ENODEV: unplugged

    async def next_code(self) -> str:
        while True:
            if self._codes:
                return self._codes.popleft()
            if self._fd is None:
                try:
                    self._fd = self._open()
                    self._state = "ready"
                    log.info("%s scanner on %s ready", self.kind, self.path)
                except OSError:
                    self._state = "offline"
                    await asyncio.sleep(self.retry_seconds)
                    continue
            data = await self._read(self._fd)
            if data == b"\x00retry":
                continue
            if not data:
                log.warning("%s scanner on %s unplugged", self.kind, self.path)
                self.close()
                self._state = "offline"
                await asyncio.sleep(self.retry_seconds)
                continue
            self._feed(data)


class SerialScanner(FdScanner):
    kind = "serial"

    def __init__(self, path: str, baudrate: int = 9600, retry_seconds: float = 1.0) -> None:
        super().__init__(path, retry_seconds)
        self.baudrate = baudrate
        self._buffer = b""

    def _open(self) -> int:
        import serial  # pyserial

        try:
            self._handle = serial.Serial(self.path, self.baudrate, timeout=0)
        except serial.SerialException as error:
            raise OSError(str(error)) from error
        self._buffer = b""
        fd: int = self._handle.fileno()
        return fd

    def _feed(self, data: bytes) -> None:
        self._buffer += data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        *lines, self._buffer = self._buffer.split(b"\n")
        self._buffer = self._buffer[-MAX_CODE:]
        self._codes.extend(text for text in (repair_text(line).strip() for line in lines) if text)


class KeyboardScanner(FdScanner):
    kind = "keyboard"

    def __init__(self, path: str, retry_seconds: float = 1.0) -> None:
        super().__init__(path, retry_seconds)
        self._partial = b""
        self._chars: list[str] = []
        self._shift = False
        self.grabbed = False

    def _open(self) -> int:
        fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            fcntl.ioctl(fd, EVIOCGRAB, 1)  # keystrokes go to us only, never to the page
            self.grabbed = True
        except OSError:
            self.grabbed = False  # not an input device (the development feeder's FIFO)
        self._partial, self._chars, self._shift = b"", [], False
        return fd

    def _feed(self, data: bytes) -> None:
        data = self._partial + data
        usable = len(data) - len(data) % EVENT.size
        self._partial = data[usable:]
        for _sec, _usec, kind, code, value in EVENT.iter_unpack(data[:usable]):
            if kind != EV_KEY:
                continue
            if code in (KEY_LEFTSHIFT, KEY_RIGHTSHIFT):
                self._shift = value != 0
            elif value in (1, 2):  # press, auto-repeat
                if code in (KEY_ENTER, KEY_KPENTER):
                    if self._chars:
                        self._codes.append("".join(self._chars))
                    self._chars = []
                elif code in KEYMAP and len(self._chars) < MAX_CODE:
                    self._chars.append(KEYMAP[code][1 if self._shift else 0])


def make_scanners(spec: str, retry_seconds: float = 1.0) -> list[FdScanner]:
    """``serial:/dev/ttyACM0[@9600],keyboard:/dev/input/by-id/…-event-kbd`` → scanners."""
    scanners: list[FdScanner] = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        kind, _, rest = item.partition(":")
        if kind == "serial":
            path, _, baud = rest.partition("@")
            scanners.append(SerialScanner(path, int(baud or 9600), retry_seconds))
        elif kind == "keyboard":
            scanners.append(KeyboardScanner(rest, retry_seconds))
        else:
            raise ValueError(f"AGENT_SCANNERS: unknown scanner {kind!r} (serial:PATH or keyboard:PATH)")
    return scanners
