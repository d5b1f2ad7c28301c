"""What the agent keeps on disk: its credential (0600) and its message cursor."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

MACHINE_HEADER = "X-Device-Machine"


def machine_hash(path: Path | None) -> str:
    """An application-specific hash of /etc/machine-id (the id itself never leaves the kiosk), or ""."""
    if path is None:
        return ""
    try:
        machine_id = path.read_text().strip()
    except OSError:
        return ""
    if not machine_id:
        return ""
    return hashlib.sha256(b"yiwang-device-agent\0" + machine_id.encode()).hexdigest()


@dataclass(frozen=True)
class Credential:
    device_id: str
    secret: str
    hall: str = ""
    label: str = ""
    machine: str = ""  # machine_hash(), sent with every request (not stored with the credential)

    @property
    def header(self) -> str:
        return f"Device {self.device_id}:{self.secret}"

    def headers(self) -> dict[str, str]:
        return {"Authorization": self.header, **({MACHINE_HEADER: self.machine} if self.machine else {})}

    def with_machine(self, machine: str) -> Credential:
        return replace(self, machine=machine)

    def __repr__(self) -> str:  # never log the secret
        return f"Credential({self.device_id})"


def _write_private(path: Path, data: dict[str, Any]) -> None:
    """Atomic write, owner-only from the first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w") as out:
        json.dump(data, out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)


class AgentState:
    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir
        self.credential_path = state_dir / "credential.json"
        self.cursor_path = state_dir / "cursor.json"
        self.last_seq = 0
        self.recent: deque[str] = deque(maxlen=500)
        if self.cursor_path.exists():
            data = json.loads(self.cursor_path.read_text())
            self.last_seq = int(data.get("last_seq", 0))
            self.recent.extend(data.get("recent", []))

    def credential(self) -> Credential | None:
        if not self.credential_path.exists():
            return None
        data = json.loads(self.credential_path.read_text())
        return Credential(data["device_id"], data["credential"], data.get("hall", ""), data.get("label", ""))

    def save_credential(self, device_id: str, secret: str, hall: str, label: str) -> Credential:
        _write_private(self.credential_path, {"device_id": device_id, "credential": secret, "hall": hall,
                                              "label": label})
        return Credential(device_id, secret, hall, label)

    def seen(self, message_id: str) -> bool:
        return message_id in self.recent

    def processed(self, seq: int, message_id: str) -> None:
        self.recent.append(message_id)
        self.last_seq = max(self.last_seq, seq)
        _write_private(self.cursor_path, {"last_seq": self.last_seq, "recent": list(self.recent)})
