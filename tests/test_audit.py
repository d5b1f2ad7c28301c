"""The audit trail: every entry chained, tampering shows."""

from __future__ import annotations

from yiwang import audit
from yiwang.audit import Actor
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
    assert not intact and first_bad == 4


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
