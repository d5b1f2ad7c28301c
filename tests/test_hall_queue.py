"""The queue's domain: numbers per category and day, calling in order, priorities, transfers,
recalls, no-shows, estimates from service times, and two windows calling at once."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from tests.queue_support import CLERK, HALL, prepare_queue, take
from yiwang import audit, hall_queue
from yiwang.errors import InvalidInput, NotFound


async def test_numbers_run_per_category_from_001(services) -> None:
    await prepare_queue(services)
    a1, a2, b1 = await take(services, "A"), await take(services, "A"), await take(services, "B")
    assert (a1["number"], a2["number"], b1["number"]) == ("A001", "A002", "B001")
    assert (a1["ahead"], a2["ahead"], b1["ahead"]) == (0, 1, 0)
    assert a2["wait_minutes"] > 0 and a1["wait_minutes"] == 0
    assert a1["category_name"] == "民生服务" and a1["status"] == "waiting"


async def test_unknown_category_or_priority_is_refused_and_nothing_is_written(services) -> None:
    await prepare_queue(services)
    with pytest.raises(NotFound) as unknown:
        await take(services, "Z")
    assert unknown.value.code == "queue.category_unknown"
    with pytest.raises(InvalidInput) as bad:
        await take(services, "A", priority_claim="vip")
    assert bad.value.code == "queue.priority_invalid"
    assert await services.store["queue_tickets"].count_documents({}) == 0


async def test_two_windows_calling_at_once_never_get_the_same_ticket(services) -> None:
    await prepare_queue(services)
    for _ in range(6):
        await take(services, "A")
    windows = ["A01", "A02", "C01"]  # the three windows that serve 民生服务

    async def call(window: str) -> str | None:
        try:
            return (await hall_queue.call_next(services, HALL, window, CLERK))["number"]
        except NotFound:
            return None

    first = await asyncio.gather(*(call(w) for w in windows))
    second = await asyncio.gather(*(call(w) for w in windows))
    third = await asyncio.gather(*(call(w) for w in windows))
    called = [n for n in first + second + third if n]
    assert sorted(called) == [f"A{i:03d}" for i in range(1, 7)]  # each ticket once, none lost
    assert len(set(called)) == len(called)
    assert third.count(None) == 3
    docs = [d async for d in services.store["queue_tickets"].find({})]
    assert all(len(d.get("calls", [])) == 1 for d in docs)


async def test_concurrent_first_tickets_of_the_day_get_distinct_numbers(services) -> None:
    await prepare_queue(services)
    tickets = await asyncio.gather(*(take(services, "C") for _ in range(8)))
    assert sorted(t["number"] for t in tickets) == [f"C{i:03d}" for i in range(1, 9)]


async def test_priority_tickets_are_called_first_then_in_order_taken(services) -> None:
    await prepare_queue(services)
    await take(services, "A")
    await take(services, "A")
    elderly = await take(services, "A", priority_claim="elderly")
    assert elderly["ahead"] == 0 and elderly["priority"] == "elderly"
    order = [(await hall_queue.call_next(services, HALL, "A01", CLERK))["number"] for _ in range(3)]
    assert order == ["A003", "A001", "A002"]


async def test_a_priority_the_hall_does_not_give_counts_as_normal(services) -> None:
    await prepare_queue(services)
    await services.store["queue_halls"].update_one({"_id": HALL}, {"$set": {"priority.elderly": False}})
    await take(services, "A")
    late = await take(services, "A", priority_claim="elderly")
    assert late["priority"] is None and late["ahead"] == 1


async def test_a_window_calls_only_its_categories_and_a_number_on_request(services) -> None:
    await prepare_queue(services)
    await take(services, "A")
    await take(services, "C")
    assert (await hall_queue.call_next(services, HALL, "B01", CLERK))["number"] == "C001"  # 婚姻登记 only
    with pytest.raises(NotFound) as empty:
        await hall_queue.call_next(services, HALL, "B01", CLERK)
    assert empty.value.code == "queue.empty"
    await take(services, "A")
    picked = await hall_queue.call_next(services, HALL, "A01", CLERK, number="a002")
    assert picked["number"] == "A002"
    with pytest.raises(NotFound):
        await hall_queue.call_next(services, HALL, "A01", CLERK, number="A002")  # no longer waiting
    with pytest.raises(InvalidInput):
        await hall_queue.call_next(services, HALL, "A01", CLERK, number="12")
    with pytest.raises(NotFound):
        await hall_queue.call_next(services, HALL, "Z99", CLERK)


async def test_recall_no_show_and_done_record_the_calls_and_times(services) -> None:
    await prepare_queue(services)
    await take(services, "A")
    await take(services, "A")
    await hall_queue.call_next(services, HALL, "A01", CLERK)
    again = await hall_queue.recall(services, HALL, "A01", CLERK)
    assert again["number"] == "A001"
    gone = await hall_queue.no_show(services, HALL, "A01", CLERK)
    assert gone["status"] == "no_show"
    with pytest.raises(NotFound):
        await hall_queue.recall(services, HALL, "A01", CLERK)  # nothing called here now
    await hall_queue.call_next(services, HALL, "A01", CLERK)
    served = await hall_queue.finish(services, HALL, "A01", CLERK)
    assert served["status"] == "done"
    doc = await services.store["queue_tickets"].find_one({"number": "A002"})
    assert doc["service_seconds"] >= 0 and doc["wait_seconds"] >= 0
    board = await hall_queue.latest_calls(services.store, HALL)
    assert [(c["number"], c["kind"]) for c in board["calls"]] == [("A002", "call"), ("A001", "recall"),
                                                                 ("A001", "call")]
    assert board["calls"][0]["text"] == "请 A002 号到 A01 号窗口办理"
    figures = await hall_queue.day_figures(services.store, HALL)
    row = figures["rows"][0]
    assert (row["category"], row["tickets"], row["served"], row["no_show"]) == ("A", 2, 1, 1)
    actions = [e["action"] async for e in services.store["audit"].find({"action": {"$regex": "^queue\\."}})]
    assert {"queue.ticket_taken", "queue.call", "queue.recall", "queue.no_show", "queue.served"} <= set(actions)


async def test_calling_next_finishes_the_ticket_still_at_the_window(services) -> None:
    await prepare_queue(services)
    await take(services, "A")
    await take(services, "A")
    await hall_queue.call_next(services, HALL, "A01", CLERK)
    await hall_queue.call_next(services, HALL, "A01", CLERK)
    first = await services.store["queue_tickets"].find_one({"number": "A001"})
    assert first["status"] == "done"


async def test_a_transferred_ticket_keeps_its_number_and_is_first_at_its_new_window(services) -> None:
    await prepare_queue(services)
    await take(services, "A")
    await take(services, "B")
    await hall_queue.call_next(services, HALL, "A01", CLERK)
    moved = await hall_queue.transfer(services, HALL, "A01", CLERK, to_category="B")
    assert moved["status"] == "waiting" and moved["category"] == "B"
    assert (await hall_queue.call_next(services, HALL, "A03", CLERK))["number"] == "A001"  # before B001
    to_window = await hall_queue.transfer(services, HALL, "A03", CLERK, to_window="D01")
    assert to_window["number"] == "A001"
    assert (await hall_queue.call_next(services, HALL, "D01", CLERK))["number"] == "A001"
    with pytest.raises(InvalidInput):
        await hall_queue.transfer(services, HALL, "D01", CLERK)
    with pytest.raises(InvalidInput):
        await hall_queue.transfer(services, HALL, "D01", CLERK, to_window="D01")


async def test_the_estimate_uses_recent_service_times_and_open_windows(services) -> None:
    await prepare_queue(services)
    now = hall_queue.utcnow()
    for n in range(3):  # three served in 10 minutes each
        await services.store["queue_tickets"].insert_one({
            "_id": f"old{n}", "hall": HALL, "day": "2026-01-05", "category": "A", "number": f"A9{n:02d}",
            "status": "done", "service_seconds": 600.0, "done_at": now - dt.timedelta(days=1), "taken_at": now,
        })  # fmt: skip
    for _ in range(4):
        last = await take(services, "A")
    assert last["ahead"] == 3
    # 民生服务 has three windows, but only windows seen calling count as open: one → 3 × 10 min
    assert last["wait_minutes"] == 30


async def test_settings_are_validated_all_at_once_and_refused_input_changes_nothing(services) -> None:
    await prepare_queue(services)
    before = await hall_queue.settings(services, HALL)
    raw = {"categories": [{"code": "a1", "name": "", "windows": ["Z9"]}, {"code": "B", "name": "x", "windows": []},
                          {"code": "B", "name": "y", "windows": []}],
           "near_ahead": "0", "lat": "91", "lng": "113", "hours": "9-12", "slot_minutes": "30", "per_slot": "4",
           "days_ahead": "7"}  # fmt: skip
    with pytest.raises(InvalidInput) as refused:
        await hall_queue.configure(services, HALL, raw, audit.SYSTEM)
    assert set(refused.value.fields) >= {"categories.0.code", "categories.0.name", "categories.0.windows",
                                         "categories.2.code", "near_ahead", "lat", "hours"}
    assert await hall_queue.settings(services, HALL) == before
    good = {"categories": [{"code": "A", "name": "综合", "windows": []}], "near_ahead": "2", "hours": "09:00-12:00",
            "slot_minutes": "30", "per_slot": "2", "days_ahead": "3", "priority_elderly": True}  # fmt: skip
    saved = await hall_queue.configure(services, HALL, good, audit.SYSTEM)
    assert saved["categories"] == [{"code": "A", "name": "综合", "windows": []}] and saved["door_code"]
    assert saved["priority"] == {"appointment": False, "elderly": True, "disabled": False}


async def test_a_ticket_handled_meanwhile_cannot_be_transferred(services) -> None:
    await prepare_queue(services)
    await take(services, "A")
    await hall_queue.call_next(services, HALL, "A01", CLERK)
    doc = await services.store["queue_tickets"].find_one({"number": "A001"})
    await services.store["queue_tickets"].update_one({"_id": doc["_id"]}, {"$set": {"status": "done"}})
    with pytest.raises(NotFound) as refused:
        await hall_queue.transfer(services, HALL, "A01", CLERK, to_category="B")
    assert refused.value.code == "queue.none_called"
    assert (await services.store["queue_tickets"].find_one({"_id": doc["_id"]}))["status"] == "done"


async def test_a_call_that_finds_nothing_leaves_the_ticket_at_the_window_as_it_was(services) -> None:
    await prepare_queue(services)
    await take(services, "A")
    await hall_queue.call_next(services, HALL, "A01", CLERK)
    for number in ("Z999", None):
        with pytest.raises(NotFound):
            await hall_queue.call_next(services, HALL, "A01", CLERK, number=number)
    with pytest.raises(InvalidInput):
        await hall_queue.call_next(services, HALL, "A01", CLERK, number="bad")
    doc = await services.store["queue_tickets"].find_one({"number": "A001"})
    assert doc["status"] == "called" and doc["window"] == "A01"
