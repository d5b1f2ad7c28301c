"""Offline cache of public guidance pages: files on disk, keyed by path+query.

Bounded: when the files together pass ``max_bytes`` the least recently used (file
mtime, touched on every hit) are removed until they fit again."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Cached:
    status: int
    content_type: str
    body: bytes


DEFAULT_MAX_BYTES = 64 * 1024 * 1024


class OfflineCache:
    def __init__(self, folder: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        folder.mkdir(parents=True, exist_ok=True)
        self._size = self.size()

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.folder.iterdir() if p.is_file())

    def _evict(self) -> None:
        if self._size <= self.max_bytes:
            return
        entries = sorted(((p.stat().st_mtime_ns, p) for p in self.folder.iterdir() if p.is_file()),
                         key=lambda item: item[0])
        self._size = sum(p.stat().st_size for _, p in entries)
        for _, path in entries:
            if self._size <= self.max_bytes:
                break
            with contextlib.suppress(FileNotFoundError):
                size = path.stat().st_size
                path.unlink()
                self._size -= size

    def _path(self, key: str) -> Path:
        return self.folder / hashlib.sha256(key.encode()).hexdigest()

    def put(self, key: str, content_type: str, body: bytes) -> None:
        data = json.dumps({"key": key, "content_type": content_type}).encode() + b"\n" + body
        if len(data) > self.max_bytes:
            return  # never worth evicting everything else for
        path = self._path(key)
        old = path.stat().st_size if path.exists() else 0
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        self._size += len(data) - old
        self._evict()

    def get(self, key: str) -> Cached | None:
        path = self._path(key)
        if not path.exists():
            return None
        try:
            head, _, body = path.read_bytes().partition(b"\n")
            os.utime(path)  # recently used
        except FileNotFoundError:
            return None
        meta = json.loads(head)
        return Cached(200, meta["content_type"], body)

    def clear(self) -> int:
        count = sum(1 for _ in self.folder.iterdir())
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._size = 0
        return count

    def __len__(self) -> int:
        return sum(1 for _ in self.folder.iterdir())
