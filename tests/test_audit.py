"""The audit trail: every entry chained, tampering shows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from tests.conftest import ROOT, Client
from yiwang import audit, audit_anchor
from yiwang.audit import Actor
from yiwang.audit_anchor import AuditWatch
from yiwang.crypto import sm3_hex
from yiwang.runtime import Services
from yiwang.store import Store

KIOSK = Actor("device", "kiosk-1", "天河政务中心 1 号机")


async def test_entries_form_an_intact_chain(store: Store) -> None:
    for n in range(5):
        await audit.record(store, KIOSK, "certificate.view", f"certificate:{n}", channel="kiosk", purpose="办理业务")
    assert await audit.verify_chain(store) == (True, None)
    entries = await audit.history(store, "certificate:3")
    assert [e["action"] for e in entries] == ["certificate.view"]
    assert entries[0]["actor"]["label"] == "天河政务中心 1 号机"


async def test_an_edited_entry_breaks_the_chain_at_that_entry(store: Store) -> None:
    for n in range(4):
        await audit.record(store, KIOSK, "certificate.view", f"certificate:{n}", channel="kiosk")
    await store["audit"].update_one({"seq": 2}, {"$set": {"purpose": "篡改"}})
    assert await audit.verify_chain(store) == (False, 2)


async def test_a_removed_entry_breaks_the_chain(store: Store) -> None:
    for n in range(4):
        await audit.record(store, KIOSK, "certificate.view", f"certificate:{n}", channel="kiosk")
    await store["audit"].delete_one({"seq": 3})
    intact, first_bad = await audit.verify_chain(store)
    assert not intact and first_bad == 3  # the first seq missing


async def test_two_processes_appending_keep_one_chain(store: Store, mongo_uri: str) -> None:
    # A second client stands for another server process writing to the same database.
    other = Store.connect(mongo_uri, store.db.name)
    try:
        await audit.record(store, KIOSK, "a", "s:1", channel="kiosk")
        await audit.record(other, KIOSK, "b", "s:2", channel="kiosk")
        await audit.record(store, KIOSK, "c", "s:3", channel="kiosk")  # its cached head is stale now
        await audit.record(other, KIOSK, "d", "s:4", channel="kiosk")
    finally:
        await other.close()
    assert await audit.verify_chain(store) == (True, None)
    assert [e["action"] async for e in store["audit"].find({}, sort=[("seq", 1)])] == ["a", "b", "c", "d"]


async def test_concurrent_entries_from_two_processes_are_all_written_in_one_chain(store: Store, mongo_uri: str) -> None:
    import asyncio

    other = Store.connect(mongo_uri, store.db.name)
    try:
        written = await asyncio.gather(
            *(
                audit.record(store if n % 3 else other, KIOSK, "certificate.view", f"c:{n}", channel="kiosk")
                for n in range(60)
            )
        )
    finally:
        await other.close()
    assert sorted(e["seq"] for e in written) == list(range(1, 61))  # each caller got its own entry back
    assert await audit.verify_chain(store) == (True, None)
    stored = [e["subject"] async for e in store["audit"].find({}, sort=[("seq", 1)])]
    assert sorted(stored) == sorted(f"c:{n}" for n in range(60))
    mine = [e["subject"] for e in sorted(written, key=lambda e: e["seq"]) if int(e["subject"][2:]) % 3]
    assert mine == [f"c:{n}" for n in range(60) if n % 3]  # one process's entries keep their order


# ---- the keyed chain and its anchors (issue 9, "The audit trail must be evidence") ----------



def _unkeyed_hash(entry: dict[str, Any]) -> str:
    """What an attacker with database access but no AUDIT_KEY can compute: the plain SM3 of the entry."""
    body = {k: v for k, v in entry.items() if k not in ("_id", "hash")}
    body["at"] = body["at"].isoformat()
    return sm3_hex(json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str).encode())


async def _rehash_from(store: Store, seq: int, change: dict[str, Any]) -> None:
    """Edit entry ``seq`` and re-hash it and every entry after it, as the attacker would."""
    entries = [e async for e in store["audit"].find({}, sort=[("seq", 1)])]
    prev = entries[seq - 2]["hash"] if seq > 1 else audit.GENESIS
    for entry in entries[seq - 1 :]:
        if entry["seq"] == seq:
            entry.update(change)
        entry["prev"] = prev
        entry["hash"] = _unkeyed_hash(entry)
        await store["audit"].replace_one({"_id": entry["_id"]}, entry)
        prev = entry["hash"]


async def _record(services: Services, n: int) -> None:
    for i in range(n):
        await audit.record(services.store, KIOSK, "certificate.view", f"certificate:{i}", channel="kiosk")


async def test_an_entry_edited_and_re_hashed_after_is_caught(store: Store) -> None:
    for n in range(6):
        await audit.record(store, KIOSK, "certificate.view", f"certificate:{n}", channel="kiosk")
    await _rehash_from(store, 2, {"subject": "certificate:someone-else"})
    assert await audit.verify_chain(store) == (False, 2)


async def test_entries_rewritten_as_the_old_unkeyed_chain_are_caught(store: Store) -> None:
    for n in range(4):
        await audit.record(store, KIOSK, "certificate.view", f"certificate:{n}", channel="kiosk")
    await store["audit"].update_many({}, {"$unset": {"v": ""}})  # pose as legacy entries
    await _rehash_from(store, 1, {})
    intact, _ = await audit.verify_chain(store)
    assert intact  # a legacy-only chain still walks (that is what the checkpoints are for) ...
    await audit.record(store, KIOSK, "x", "s:9", channel="kiosk")
    await _rehash_from(store, 5, {})  # ... but an unkeyed entry after a keyed one never does
    assert (await audit.walk(store, audit.chain_key())).problem in ("downgrade", "edited")


async def test_a_cut_tail_is_caught_by_the_checkpoint(services: Services) -> None:
    await _record(services, 5)
    assert (await services.resources.get(AuditWatch).run_once()).state == "intact"  # anchors seq 5
    await services.store["audit"].delete_many({"seq": {"$gte": 4}})
    status = await services.resources.get(AuditWatch).run_once()
    assert (status.state, status.problem) == ("broken", "truncated")


async def test_an_edit_before_the_checkpoint_is_caught(services: Services) -> None:
    await _record(services, 5)
    await services.resources.get(AuditWatch).run_once()
    await _rehash_from(services.store, 3, {"purpose": "篡改"})
    status = await services.resources.get(AuditWatch).run_once()
    assert (status.state, status.problem) == ("broken", "anchor_mismatch")
    full, _ = await audit_anchor.verify(
        services.store, services.config.audit_key, services.config.audit_checkpoints, full=True
    )
    assert (full.state, full.first_bad) == ("broken", 3)


async def test_an_entry_edited_in_place_before_the_checkpoint_is_caught_by_the_daily_full_walk(
    services: Services,
) -> None:
    await _record(services, 5)
    await services.resources.get(AuditWatch).run_once()
    await services.store["audit"].update_one({"seq": 2}, {"$set": {"purpose": "篡改"}})
    status = await services.resources.get(AuditWatch).run_once(full=True)
    assert (status.state, status.problem, status.first_bad) == ("broken", "edited", 2)


async def test_an_entry_deleted_before_the_checkpoint_is_caught_by_the_next_check(services: Services) -> None:
    await _record(services, 5)
    await services.resources.get(AuditWatch).run_once()
    await services.store["audit"].delete_one({"seq": 2})
    status = await services.resources.get(AuditWatch).run_once()  # not a full walk: the count gives it away
    assert (status.state, status.problem, status.first_bad) == ("broken", "gap", 2)


async def test_a_deleted_entry_is_caught(services: Services) -> None:
    await _record(services, 3)
    await services.resources.get(AuditWatch).run_once()
    await _record(services, 3)
    await services.store["audit"].delete_one({"seq": 5})
    status = await services.resources.get(AuditWatch).run_once()
    assert (status.state, status.problem, status.first_bad) == ("broken", "gap", 5)
    # the checkpointed entry itself removed is caught too
    await services.store["audit"].delete_one({"seq": status.verified_from})
    status = await services.resources.get(AuditWatch).run_once()
    assert (status.state, status.problem) == ("broken", "gap")


async def test_checkpoints_are_signed_outside_the_database_and_a_forged_one_is_refused(services: Services) -> None:
    await _record(services, 2)
    await services.resources.get(AuditWatch).run_once()
    path = services.config.audit_checkpoints
    assert path.stat().st_mode & 0o777 == 0o600
    lines = path.read_text().splitlines()
    last = json.loads(lines[-1])
    assert last["db"] == services.store.db.name and last["kid"] == audit_anchor.key_id(
        audit_anchor.public_key(services.config.audit_key)
    )
    last["seq"] = 1  # roll the anchor back, as someone hiding a cut tail would
    path.write_text("\n".join([*lines[:-1], json.dumps(last)]) + "\n")
    status = await services.resources.get(AuditWatch).run_once()
    assert (status.state, status.problem) == ("broken", "checkpoint_signature")


async def test_checkpoint_lines_removed_or_edited_in_the_file_are_caught(services: Services) -> None:
    path = services.config.audit_checkpoints
    for _ in range(3):
        await _record(services, 1)
        await services.resources.get(AuditWatch).run_once()
    lines = path.read_text().splitlines()
    assert len(lines) == 3
    path.write_text(lines[0] + "\n")  # the last two cut off, as someone hiding a cut tail would
    assert (await services.resources.get(AuditWatch).run_once()).problem == "checkpoints_truncated"
    edited = json.loads(lines[1])
    edited["at"] = "2020-01-01T00:00:00+00:00"
    path.write_text("\n".join([lines[0], json.dumps(edited), lines[2]]) + "\n")  # a middle line changed
    status, _ = await audit_anchor.verify(services.store, services.config.audit_key, path, full=True)
    assert (status.state, status.problem) == ("broken", "checkpoint_chain")


async def test_a_legacy_unkeyed_chain_is_sealed_and_then_held(services: Services) -> None:
    store = services.store
    prev = audit.GENESIS
    for seq in (1, 2):
        entry = {"_id": f"old{seq}", "seq": seq, "at": audit.utcnow().replace(microsecond=0), "actor": {},
                 "action": "old", "subject": "s", "channel": "kiosk", "purpose": "", "on_behalf_of": None,
                 "detail": {}, "prev": prev}
        entry["hash"] = _unkeyed_hash(entry)
        prev = entry["hash"]
        await store["audit"].insert_one(entry)
    audit._heads.clear()
    sealed = await audit.seal_legacy(store)
    assert sealed is not None and sealed["detail"] == {"legacy_head_seq": 2, "legacy_head": prev}
    assert await audit.verify_chain(store) == (True, None)
    await store["audit"].update_one({"seq": 1}, {"$set": {"subject": "t"}})
    await _rehash_from(store, 1, {"subject": "t"})  # the legacy prefix cannot be rewritten past the seal
    assert await audit.verify_chain(store) == (False, 3)


async def test_readiness_shows_the_audit_verification(services: Services, client: Client) -> None:
    await _record(services, 2)
    await services.resources.get(AuditWatch).run_once()
    await services.store["audit"].delete_many({})
    await services.resources.get(AuditWatch).run_once()
    status, body, _ = await client.get("/readyz")
    assert status == 200  # a broken trail is an alarm, not an outage
    assert body["audit"]["state"] == "broken"


def _offline(*args: str, key: bytes) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, AUDIT_KEY=key.hex())
    return subprocess.run([sys.executable, "-m", "yiwang.audit_anchor", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60, check=False)


async def test_the_offline_command_verifies_against_the_database_and_the_checkpoints(
    services: Services, mongo_uri: str
) -> None:
    import asyncio
    await _record(services, 4)
    await services.resources.get(AuditWatch).run_once()
    key, path, db = services.config.audit_key, str(services.config.audit_checkpoints), services.store.db.name
    assert "--checkpoints" in _offline("verify", "--help", key=key).stdout
    public = _offline("public-key", key=key).stdout.strip()
    good = await asyncio.to_thread(_offline, "verify", "--uri", mongo_uri, "--db", db, "--checkpoints", path,
                                   "--public-key", public, key=key)
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["state"] == "intact"
    await _rehash_from(services.store, 2, {"action": "nothing"})
    bad = await asyncio.to_thread(_offline, "verify", "--uri", mongo_uri, "--db", db, "--checkpoints", path, key=key)
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["first_bad"] == 2


async def test_province_and_city_admins_see_the_audit_verification_on_the_console_home(
    services: Services, server: str
) -> None:
    from tests.console_support import Browserless, prepare
    await prepare(services)
    await _record(services, 3)
    await services.resources.get(AuditWatch).run_once()
    admin, hall = Browserless(server), Browserless(server)
    try:
        status, text = await admin.login("gz_admin")
        assert status == 200 and "审计日志核验" in text and "完好" in text
        await services.store["audit"].delete_one({"seq": 2})
        await services.resources.get(AuditWatch).run_once()
        _, text = await admin.get("/console/")
        assert "已被篡改" in text and "第 2 条缺失" in text
        status, text = await hall.login("th_hall")
        assert status == 200 and "审计日志核验" not in text  # a hall manager does not see it
    finally:
        await admin.close()
        await hall.close()
