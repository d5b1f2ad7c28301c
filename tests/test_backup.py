"""An online backup of the embedded database taken under write load holds every write
acknowledged before it began, and restores into a fresh DATA_DIR."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from yiwang import backup
from yiwang.embedded import EmbeddedMongo
from yiwang.store import Store


@pytest.mark.slow
async def test_a_backup_under_write_load_holds_every_acknowledged_write_and_restores(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    live = EmbeddedMongo(data_dir / backup.DATABASE_FILE)
    uri = await asyncio.to_thread(live.start)
    store = Store.connect(uri, "yiwang")
    acknowledged: list[int] = []
    stop = asyncio.Event()

    async def writer(lane: int) -> None:
        n = 0
        while not stop.is_set():
            number = lane * 1_000_000 + n
            await store["applications"].insert_one({"_id": f"a{number}", "n": number, "note": "申请" * 20})
            acknowledged.append(number)
            n += 1

    try:
        await store.prepare()
        writers = [asyncio.create_task(writer(lane)) for lane in range(3)]
        while len(acknowledged) < 60:
            await asyncio.sleep(0.05)
        before = set(acknowledged)
        made = await asyncio.to_thread(backup.create, data_dir, tmp_path / "backups")
        during = set(acknowledged)
        while len(acknowledged) < len(during) + 20:
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.gather(*writers)
    finally:
        await store.close()
        await asyncio.to_thread(live.stop)
    assert made.stat().st_mode & 0o777 == 0o600
    assert not Path(str(made) + "-wal").exists()

    fresh = tmp_path / "restored"
    out = subprocess.run(
        [sys.executable, "-m", "yiwang.backup", "restore", str(made), "--data-dir", str(fresh)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert fresh.stat().st_mode & 0o777 == 0o700
    again = subprocess.run(
        [sys.executable, "-m", "yiwang.backup", "restore", str(made), "--data-dir", str(fresh)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert again.returncode == 1 and "已存在" in again.stderr  # never overwritten by accident

    restored = EmbeddedMongo(fresh / backup.DATABASE_FILE)
    uri = await asyncio.to_thread(restored.start)
    store = Store.connect(uri, "yiwang")
    try:
        present = {doc["n"] async for doc in store["applications"].find({}, {"n": 1})}
    finally:
        await store.close()
        await asyncio.to_thread(restored.stop)
    assert before <= present  # everything acknowledged before the backup began
    assert present <= set(acknowledged)  # nothing half-written
    assert len(present) < len(acknowledged)  # one instant: the writes that came after it are not in it


def test_a_damaged_backup_is_refused_before_anything_is_replaced(tmp_path: Path) -> None:
    damaged = tmp_path / "yiwang-bad.sqlite"
    damaged.write_bytes(b"SQLite format 3\x00" + b"\x00" * 200)
    with pytest.raises(Exception) as raised:
        backup.restore(damaged, tmp_path / "data")
    assert not (tmp_path / "data" / backup.DATABASE_FILE).exists()
    assert raised.type.__name__ in ("BackupError", "DatabaseError")
    assert backup.main(["restore", str(damaged), "--data-dir", str(tmp_path / "data")]) == 1
