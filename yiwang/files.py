"""Private files and folders: ``DATA_DIR`` and every folder in it 0700, every file in it 0600.

Everything the platform writes under ``DATA_DIR`` (the embedded database and its WAL, ``secrets.env``,
``embedded.uri``, the audit checkpoints, sealed uploads) goes through these helpers or is created under
``PRIVATE_UMASK``, so no other local account can read it whatever the process's inherited umask.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
PRIVATE_UMASK = 0o077


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) and make it 0700; returns it."""
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    os.chmod(path, PRIVATE_DIR_MODE)
    return path


def write_private(path: Path, data: bytes | str) -> None:
    """Write a whole file with mode 0600, atomically (a temporary file beside it, then a rename)."""
    private_dir(path.parent)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(raw)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def restrict(*paths: Path) -> None:
    """Make existing files 0600 (files an older version created with the default umask)."""
    for path in paths:
        if path.is_file():
            os.chmod(path, PRIVATE_FILE_MODE)


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines (``#`` comments ignored); empty if the file does not exist."""
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                key, _, value = line.partition("=")
                values[key.strip()] = value.strip()
    return values


def ensure_env_values(path: Path, wanted: Mapping[str, Callable[[], str]], header: str) -> dict[str, str]:
    """The file's values, after adding (generated once) any of ``wanted`` it lacks; the file stays 0600."""
    values = read_env_file(path)
    missing = {name: make() for name, make in wanted.items() if name not in values}
    if missing:
        values.update(missing)
        write_private(path, f"# {header}\n" + "".join(f"{key}={value}\n" for key, value in values.items()))
    elif path.exists():
        os.chmod(path, PRIVATE_FILE_MODE)
    return values
