"""One live certificate per holder where the law allows only one (the resident ID card): a new one
supersedes the old, also when several are issued at the same moment."""

from __future__ import annotations

import asyncio

from tests.fixtures.certs import holder_index, id_card_body, issue
from yiwang import audit, certificates


async def _valid_id_cards(services) -> list[dict]:
    return [d async for d in services.store["certificates"].find(
        {"type": "resident_id_card", "holder.index": holder_index(services), "status": "valid"})]


async def test_a_new_id_card_supersedes_the_old_one(services) -> None:
    first = await issue(services)
    second = await issue(services, id_card_body(issued_on="2026-11-30"))
    [live] = await _valid_id_cards(services)
    assert live["_id"] == second["_id"]
    old = await services.store["certificates"].find_one({"_id": first["_id"]})
    assert old["status"] == "superseded" and old["superseded_by"] == second["_id"]
    assert [c["id"] for c in await certificates.list_for_holder(services.store, holder_index(services))] == [
        second["_id"]]
    actions = [e["action"] async for e in services.store["audit"].find({"subject": first["_id"]})]
    assert "certificate.superseded" in actions
    assert await audit.verify_chain(services.store) == (True, None)


async def test_concurrent_issues_leave_exactly_one_live_id_card(services) -> None:
    issued = await asyncio.gather(*(issue(services, id_card_body(issued_on=f"2026-11-{day:02d}"))
                                    for day in range(1, 9)))
    assert len({c["_id"] for c in issued}) == 8
    live = await _valid_id_cards(services)
    assert len(live) == 1
    superseded = await services.store["certificates"].count_documents(
        {"type": "resident_id_card", "status": "superseded"})
    assert superseded == 7


async def test_a_revoked_id_card_makes_room_and_other_types_keep_several(services) -> None:
    first = await issue(services)
    await certificates.change_status(services, "gz-psb", first["identifier"], "revoked", "证件信息有误")
    second = await issue(services)
    assert [c["_id"] for c in await _valid_id_cards(services)] == [second["_id"]]
    assert (await services.store["certificates"].find_one({"_id": first["_id"]}))["status"] == "revoked"
