"""A development GA 467 ID-card reader on a pseudo-terminal, answering from a JSON card.

    python -m device_agent.dev.id_reader var/agent/id-card.json
    # prints the tty (e.g. /dev/pts/7); run the agent with AGENT_ID_READER_PORT=/dev/pts/7

The card is on the reader while the JSON file exists (``{"name", "id_number", "sex": "1",
"nation": "01", "birth": "19520312", "address", "authority", "valid_from", "valid_until",
"card_type": "resident" | "foreign_permanent" | "hmt_residence"}``); ``remove_after_read``
deletes it after a successful read (a card placed and taken away). Tests drive the
failure cases: :meth:`pull_during_read`, :meth:`corrupt_next`, :attr:`silent`.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import sys
import threading
import tty
from pathlib import Path
from typing import Any

from device_agent.drivers import ga467

PHOTO = bytes(range(256)) * 4  # 1024 opaque bytes standing in for the WLT photo


class PtyIdReader:
    def __init__(self, card_file: Path | None = None, *, remove_after_read: bool = False) -> None:
        self.card_file = card_file
        self.remove_after_read = remove_after_read
        self.card: dict[str, Any] | None = None
        self.silent = False  # stop answering (a reader that hangs / is unplugged)
        self.commands: list[tuple[int, int]] = []
        self._pull_during_read = False
        self._corrupt = 0
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._serve, name="pty-id-reader", daemon=True)
        self._thread.start()

    # ---- what tests do -------------------------------------------------------

    def place(self, card: dict[str, Any]) -> None:
        self.card = dict(card)

    def remove(self) -> None:
        self.card = None

    def pull_during_read(self) -> None:
        """The next base-message read fails as if the card left the field halfway."""
        self._pull_during_read = True

    def corrupt_next(self, count: int = 1) -> None:
        """The next ``count`` answers carry a wrong check byte."""
        self._corrupt = count

    def close(self) -> None:
        os.write(self._stop_w, b"x")
        self._thread.join(2)
        for fd in (self._master, self._slave, self._stop_r, self._stop_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    # ---- the reader ------------------------------------------------------------

    def _current_card(self) -> dict[str, Any] | None:
        if self.card is not None:
            return self.card
        if self.card_file is not None and self.card_file.exists():
            try:
                loaded: dict[str, Any] = json.loads(self.card_file.read_text(encoding="utf-8"))
                return loaded
            except (OSError, ValueError):
                return None
        return None

    def answer(self, command: tuple[int, int]) -> bytes:
        card = self._current_card()
        if command == ga467.FIND_CARD:
            return ga467.response_frame(ga467.FIND_OK if card else ga467.NO_CARD)
        if command == ga467.SELECT_CARD:
            return ga467.response_frame(ga467.OK if card else ga467.SELECT_FAILED)
        if command == ga467.READ_BASE:
            if card is None or self._pull_during_read:
                self._pull_during_read = False
                self.card = None
                return ga467.response_frame(ga467.READ_FAILED)
            card_type = str(card.get("card_type", ga467.RESIDENT))
            text = ga467.encode_text({k: str(v) for k, v in card.items()}, card_type)
            if self.remove_after_read and self.card_file is not None:
                with contextlib.suppress(FileNotFoundError):
                    self.card_file.unlink()
            return ga467.response_frame(ga467.OK, ga467.base_message(text, PHOTO))
        if command == ga467.READ_SAM_ID:
            return ga467.response_frame(ga467.OK, bytes(16))
        return ga467.response_frame(ga467.BAD_COMMAND)

    def _serve(self) -> None:
        buffer = b""
        while True:
            ready, _, _ = select.select([self._master, self._stop_r], [], [])
            if self._stop_r in ready:
                return
            try:
                buffer += os.read(self._master, 4096)
            except OSError:
                return
            while True:
                start = buffer.find(ga467.PREAMBLE)
                if start < 0:
                    buffer = buffer[-4:]
                    break
                body = buffer[start + len(ga467.PREAMBLE):]
                if len(body) < 2 or len(body) < 2 + int.from_bytes(body[:2], "big"):
                    buffer = buffer[start:]
                    break
                length = int.from_bytes(body[:2], "big")
                frame, buffer = body[:2 + length], body[2 + length:]
                try:
                    cmd, para, _ = ga467.parse_command(frame)
                    reply = self.answer((cmd, para))
                except ga467.ProtocolError:
                    reply = ga467.response_frame(ga467.BAD_CHECKSUM)
                self.commands.append((frame[2], frame[3]))
                if self.silent:
                    continue
                if self._corrupt:
                    self._corrupt -= 1
                    reply = reply[:-1] + bytes([reply[-1] ^ 0xFF])
                os.write(self._master, reply)


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("var/agent/id-card.json")
    reader = PtyIdReader(path, remove_after_read=True)
    print(reader.port, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()
    reader.close()


if __name__ == "__main__":
    main()
