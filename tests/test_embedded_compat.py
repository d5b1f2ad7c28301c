"""The mongoeco compatibility layer (yiwang/embedded_compat.py): what it fixes, and that upstream still needs it.

Each case runs in a process of its own (tests/support/mongoeco_probe.py) so the unpatched engine can be
observed next to the patched one. If a mongoeco upgrade changes any "unpatched" figure, the layer is stale:
read docs/mongoeco-patch.md, drop the fixes upstream now makes, and update SUPPORTED_VERSION.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import DuplicateKeyError

from yiwang import embedded_compat

ROOT = Path(__file__).resolve().parent.parent


def probe(mode: str, folder: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "tests.support.mongoeco_probe", mode, str(folder)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_the_installed_mongoeco_is_the_version_the_fixes_were_written_for() -> None:
    assert embedded_compat.mongoeco_version() == embedded_compat.SUPPORTED_VERSION


def test_upstream_mongoeco_still_has_the_costs_the_layer_removes(tmp_path: Path) -> None:
    unpatched = probe("unpatched", tmp_path)
    assert unpatched["string_insert_loads"] == 1  # one insert decodes the whole collection
    assert unpatched["reader_connects"] == 20  # one SQLite connection per multi-document read
    assert unpatched["type_scans_after_write"] == 3  # three Decimal128 probes scan after a write
    assert unpatched["resident_find"] == [6, False]  # a find by string equality on an indexed field scans
    assert unpatched["dotted_find"] == [302, False]  # a compound index led by a dotted field too
    assert unpatched["duplicate_string_refused"] and unpatched["equal_number_refused"]


def test_patched_engine_inserts_string_ids_without_a_scan_and_still_refuses_duplicates(tmp_path: Path) -> None:
    patched = probe("patched", tmp_path)
    assert patched["string_insert_loads"] == 0
    assert patched["duplicate_string_refused"]
    # Numeric ids keep upstream's scan: 1.0 equals a stored 1 only by BSON equality, not by storage key.
    assert patched["numeric_insert_loads"] == 1
    assert patched["equal_number_refused"]


def test_patched_engine_reuses_reader_connections_and_probes_types_through_the_index(tmp_path: Path) -> None:
    patched = probe("patched", tmp_path)
    assert patched["reader_connects"] <= 1
    assert patched["type_scans_after_write"] == 0


def test_patched_engine_answers_string_equality_finds_from_the_index_with_the_same_documents(
    tmp_path: Path,
) -> None:
    patched = probe("patched", tmp_path / "patched")
    unpatched = probe("unpatched", tmp_path / "unpatched")
    assert patched["resident_find"] == [6, True]
    assert patched["dotted_find"] == [302, True]
    for key in ("dotted_and_field_find", "array_value_found"):  # an array holding the value still matches
        assert patched[key] == unpatched[key]
    assert patched["array_value_found"] == 7


def test_apply_refuses_another_mongoeco_version(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(embedded_compat._state, "applied", False)
    monkeypatch.setattr(embedded_compat, "mongoeco_version", lambda: "9.9.9")
    assert embedded_compat.apply() is False
    assert "9.9.9" in caplog.text and "not applied" in caplog.text


async def test_the_embedded_server_refuses_a_duplicate_string_id_over_the_wire(mongo_uri: str) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri)
    coll = client["compat_probe"]["docs"]
    await coll.drop()
    await coll.insert_many([{"_id": f"d{i}"} for i in range(50)])
    await coll.insert_one({"_id": "fresh"})
    with pytest.raises(DuplicateKeyError):
        await coll.insert_one({"_id": "d7"})
    await client.close()
