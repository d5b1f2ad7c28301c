"""Offline cache of public guidance pages: files on disk, keyed by path+query."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Cached:
    status: int
    content_type: str
    body: bytes


class OfflineCache:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.folder / hashlib.sha256(key.encode()).hexdigest()

    def put(self, key: str, content_type: str, body: bytes) -> None:
        path = self._path(key)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(json.dumps({"key": key, "content_type": content_type}).encode() + b"\n" + body)
        tmp.replace(path)

    def get(self, key: str) -> Cached | None:
        path = self._path(key)
        if not path.exists():
            return None
        head, _, body = path.read_bytes().partition(b"\n")
        meta = json.loads(head)
        return Cached(200, meta["content_type"], body)

    def clear(self) -> int:
        count = sum(1 for _ in self.folder.iterdir())
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True, exist_ok=True)
        return count

    def __len__(self) -> int:
        return sum(1 for _ in self.folder.iterdir())
