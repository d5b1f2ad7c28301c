"""ID-card readers: a GA 467 SAM reader on a serial port (hardware), or a JSON file (development).

Only the number, the name and the card type leave the agent (to the server, over TLS);
the rest of :class:`~device_agent.drivers.ga467.CardData` stays in memory for the read.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device_agent.drivers import ga467

log = logging.getLogger("device_agent.id_reader")

WltDecoder = Callable[[bytes], bytes]


@dataclass(frozen=True)
class Card:
    id_number: str
    name: str
    card_type: str = ga467.RESIDENT

    def __repr__(self) -> str:  # never print personal data
        return "Card(…)"


class CardReadError(Exception):
    """A card was there but could not be read (pulled away, unreadable): tell the resident."""

    def __init__(self, message: str = "读卡失败，请将身份证平放在读卡区，不要移动") -> None:
        super().__init__(message)
        self.message = message


def load_wlt_decoder(spec: str) -> WltDecoder | None:
    """``module:function`` (the vendor's licensed WLT → BMP library, wrapped), or None."""
    if not spec:
        return None
    module, _, name = spec.partition(":")
    decoder: WltDecoder = getattr(importlib.import_module(module), name or "decode")
    return decoder


class SimulatedReader:
    """Development reader: a JSON file appearing = a card placed on the reader."""

    def __init__(self, path: Path, poll_seconds: float = 0.3) -> None:
        self.path = path
        self.poll_seconds = poll_seconds
        path.parent.mkdir(parents=True, exist_ok=True)

    def status(self) -> str:
        return "ready"

    async def next_card(self) -> Card:
        while True:
            if self.path.exists():
                try:
                    data = json.loads(self.path.read_text(encoding="utf-8"))
                    card = Card(str(data["id_number"]), str(data["name"]))
                except (ValueError, KeyError, OSError):
                    card = None
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
                if card is not None:
                    return card
            await asyncio.sleep(self.poll_seconds)


class SerialLink:
    """One GA 467 transaction at a time over a serial port (blocking: call from a thread)."""

    def __init__(self, port: str, baudrate: int = 115200, timeout: float = 1.0) -> None:
        self.port = port
        self.baudrate = baudrate
        self.timeout = timeout
        self._serial: Any = None

    def open(self) -> None:
        import serial  # pyserial

        if self._serial is None:
            self._serial = serial.Serial(self.port, self.baudrate, timeout=self.timeout, write_timeout=self.timeout)

    def close(self) -> None:
        if self._serial is not None:
            with contextlib.suppress(Exception):
                self._serial.close()
            self._serial = None

    def _read_exact(self, count: int, deadline: float) -> bytes:
        out = b""
        while len(out) < count:
            if time.monotonic() > deadline:
                raise TimeoutError("reader did not answer")
            chunk = self._serial.read(count - len(out))
            if not chunk and time.monotonic() > deadline:
                raise TimeoutError("reader did not answer")
            out += chunk
        return out

    def _read_response(self) -> bytes:
        """Skip to the preamble, then LEN and the rest."""
        deadline = time.monotonic() + self.timeout
        window = b""
        while window != ga467.PREAMBLE:
            window = (window + self._read_exact(1, deadline))[-len(ga467.PREAMBLE):]
        head = self._read_exact(2, deadline)
        length = int.from_bytes(head, "big")
        if not 4 <= length <= ga467.MAX_LENGTH:
            raise ga467.ProtocolError("implausible length")
        return head + self._read_exact(length, deadline)

    def transact(self, command: tuple[int, int], data: bytes = b"", retries: int = 2) -> tuple[int, bytes]:
        """Send a command, return (SW3, data). A corrupted answer is asked for again."""
        self.open()
        for attempt in range(retries + 1):
            self._serial.reset_input_buffer()
            self._serial.write(ga467.command_frame(command, data))
            self._serial.flush()
            try:
                return ga467.parse_response(self._read_response())
            except ga467.ProtocolError:
                if attempt == retries:
                    raise
                log.info("corrupted frame from the ID reader; asking again")
        raise AssertionError("unreachable")


class Ga467Reader:
    """A certified second-generation ID-card reader (SAM, GA 467) on a serial/USB-serial port.

    Polls find card every ``poll_seconds``; on a card: select, read the base message,
    parse it. A card left on the reader is reported once (until the reader says it is
    gone). A card pulled mid-read raises :class:`CardReadError` (the page says so); a
    reader that stops answering or disappears is ``offline`` and reopened.
    """

    def __init__(self, port: str, *, baudrate: int = 115200, timeout: float = 1.0, poll_seconds: float = 0.3,
                 wlt_decoder: WltDecoder | None = None) -> None:
        self.link = SerialLink(port, baudrate, timeout)
        self.poll_seconds = poll_seconds
        self.wlt_decoder = wlt_decoder
        self._state = "offline"
        self._last_reported: str | None = None  # number of the card still on the reader
        self._lock = threading.Lock()
        self.photo_bmp: bytes | None = None  # the last photo, when a WLT decoder is configured

    def status(self) -> str:
        return self._state

    def close(self) -> None:
        with self._lock:
            self.link.close()

    def read_once(self) -> ga467.CardData | None:
        """One find/select/read round (blocking). None: no (new) card."""
        with self._lock:
            status, _ = self.link.transact(ga467.FIND_CARD)
            if status == ga467.NO_CARD:
                self._last_reported = None
                return None
            if status != ga467.FIND_OK:
                raise ga467.ReaderError(status)
            status, _ = self.link.transact(ga467.SELECT_CARD)
            if status != ga467.OK:
                raise CardReadError()
            status, data = self.link.transact(ga467.READ_BASE)
            if status != ga467.OK:
                raise CardReadError()
            card = ga467.parse_base_message(data)
            if card.id_number == self._last_reported:
                return None
            self._last_reported = card.id_number
            return card

    async def next_card(self) -> Card:
        import serial

        while True:
            try:
                card = await asyncio.to_thread(self.read_once)
                self._state = "ready"
            except (TimeoutError, serial.SerialException, OSError):
                if self._state != "offline":
                    log.warning("ID reader on %s not answering", self.link.port)
                self._state = "offline"
                await asyncio.to_thread(self.close)
                await asyncio.sleep(max(self.poll_seconds, 1.0))
                continue
            except (ga467.ProtocolError, ga467.ReaderError) as error:
                self._state = "ready"
                log.warning("ID reader: %s", error)
                card = None
            except CardReadError:
                self._state = "ready"
                raise
            if card is not None:
                if self.wlt_decoder is not None and card.photo_wlt:
                    try:
                        self.photo_bmp = await asyncio.to_thread(self.wlt_decoder, card.photo_wlt)
                    except Exception:
                        log.warning("WLT decoder failed", exc_info=True)
                return Card(card.id_number, card.name, card.card_type)
            await asyncio.sleep(self.poll_seconds)
