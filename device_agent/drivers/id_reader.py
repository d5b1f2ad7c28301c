"""ID-card readers. See the package docstring for what a real reader provides."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Card:
    id_number: str
    name: str

    def __repr__(self) -> str:  # never print personal data
        return "Card(…)"


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
