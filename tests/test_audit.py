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
