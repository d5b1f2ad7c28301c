"""Backups of the embedded database, taken while the server runs.

    python -m yiwang.backup create --data-dir /var/lib/yiwang --out /backup
    python -m yiwang.backup restore /backup/yiwang-20261202T030000Z.sqlite --data-dir /var/lib/yiwang-new

``create`` uses SQLite's online backup API: it copies the database as it stood
at one instant, including what is still in the write-ahead log, while the
embedded server goes on writing, so every write acknowledged before the backup
began is in it. The copy is checked (``PRAGMA integrity_check``), written with
mode 0600, and made self-contained (no WAL beside it). ``restore`` refuses to
overwrite a database unless told to, and checks the file first.

The keys that open the sealed personal data (``PII_KEY``, ``BLIND_INDEX_KEY``,
in the environment or ``DATA_DIR/secrets.env``) are **not** in the backup, on
purpose: keep them with the key custodian, apart from the backups.

For MongoDB deployments use ``mongodump``/``mongorestore`` (docs/deploy.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sqlite3
import sys
from pathlib import Path

DATABASE_FILE = "yiwang.sqlite"


class BackupError(Exception):
    """A backup or restore that cannot go ahead; the message says why, in Chinese for the operator."""


def _check(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        result = conn.execute("PRAGMA integrity_check").fetchone()
    if result is None or result[0] != "ok":
        raise BackupError(f"{path} 未通过完整性检查：{result[0] if result else '无结果'}")


def create(data_dir: Path, out_dir: Path, *, now: dt.datetime | None = None) -> Path:
    """Copy the live database into ``out_dir``; returns the backup file."""
    source = data_dir / DATABASE_FILE
    if not source.exists():
        raise BackupError(f"找不到数据库文件 {source}")
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    target = out_dir / f"yiwang-{stamp}.sqlite"
    partial = target.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    src = sqlite3.connect(source, timeout=30)
    dst = sqlite3.connect(partial)
    try:
        src.backup(dst)  # all pages in one step, under one read transaction: one consistent instant
        dst.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file
        dst.commit()
    finally:
        dst.close()
        src.close()
    _check(partial)
    with open(partial, "rb") as handle:
        os.fsync(handle.fileno())
    partial.replace(target)
    return target


def restore(backup: Path, data_dir: Path, *, force: bool = False) -> Path:
    """Put a backup in place as ``DATA_DIR``'s database (the server must not be running on it)."""
    if not backup.is_file():
        raise BackupError(f"找不到备份文件 {backup}")
    _check(backup)
    target = data_dir / DATABASE_FILE
    if target.exists() and not force:
        raise BackupError(f"{target} 已存在：恢复不会覆盖现有数据库（确认无误后使用 --force）")
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    for leftover in (target.with_name(target.name + "-wal"), target.with_name(target.name + "-shm")):
        leftover.unlink(missing_ok=True)  # a WAL of the database being replaced must not be replayed into the copy
    partial = data_dir / (DATABASE_FILE + ".restoring")
    shutil.copyfile(backup, partial)
    partial.chmod(0o600)
    partial.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m yiwang.backup",
        description="内嵌数据库的在线备份与恢复 / Online backup and restore of the embedded database",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("create", help="备份正在运行的数据库 / back up the running database")
    make.add_argument("--data-dir", type=Path, default=Path(os.environ.get("DATA_DIR", "./var")))
    make.add_argument("--out", type=Path, required=True, help="备份目录 / folder for the backup file")
    back = commands.add_parser("restore", help="把备份恢复到 DATA_DIR / restore a backup into DATA_DIR")
    back.add_argument("backup", type=Path)
    back.add_argument("--data-dir", type=Path, required=True)
    back.add_argument("--force", action="store_true", help="覆盖已有数据库 / replace an existing database")
    args = parser.parse_args(argv)
    try:
        if args.command == "create":
            print(create(args.data_dir, args.out))
        else:
            print(restore(args.backup, args.data_dir, force=args.force))
    except (BackupError, sqlite3.Error) as error:
        print(f"失败：{error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
