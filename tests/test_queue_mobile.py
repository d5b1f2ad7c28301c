"""排队取号 and 预约 through the mini-program API: presence for remote tickets, one waiting ticket
per account, slot limits, and the near-turn subscribe message through the fake WeChat API."""

from __future__ import annotations

import datetime as dt

from tests.mobile_support import HUANG, LI, WANG, eventually
from tests.queue_support import CLERK, HALL, prepare_queue, take
from tests.support.miniprogram import MiniProgram
from yiwang import hall_queue, people
from yiwang.notifications import TEMPLATES, send_due
from yiwang.timeutil import is_working_day, local_today

INSIDE = {"lat": 23.1360, "lng": 113.3615}  # a few tens of metres from the demo coordinates of 天河
FAR = {"lat": 23.1291, "lng": 113.2644}  # 越秀, about 10 km away


async def door_code(services) -> str:
    return hall_queue.door_value((await hall_queue.settings(services, HALL))["door_code"])


async def resident(client, fake_wechat, person=None) -> MiniProgram:
    mp = MiniProgram(client, fake_wechat)
    await mp.login()
    if person:
        await mp.bind(*person)
    return mp


def next_working_day() -> str:
    day = local_today() + dt.timedelta(days=1)
    while not is_working_day(day):
        day += dt.timedelta(days=1)
    return day.isoformat()


async def test_the_hall_lists_its_categories_with_waiting_and_estimates(services, client) -> None:
    await prepare_queue(services)
    await take(services, "A")
    status, body, _ = await client.get(f"/api/mobile/v1/queue/halls/{HALL}")
    assert status == 200
    a = next(c for c in body["categories"] if c["code"] == "A")
    assert a["name"] == "民生服务" and a["waiting"] == 1 and a["wait_minutes"] >= 1
    assert set(body["priority"]) == {"elderly", "disabled"}
    status, body, _ = await client.get("/api/mobile/v1/queue/halls/no-such-hall")
    assert status == 404 and body["error"]["code"] == "catalog.hall_not_found"


async def test_a_remote_ticket_needs_the_door_code_or_a_position_inside_the_hall(services, client, fake_wechat) -> None:
    await prepare_queue(services)
    mp = await resident(client, fake_wechat)
    refused = await mp.post("/queue/tickets", {"hall": HALL, "category": "A"}, expect=403)
    assert refused["error"]["code"] == "queue.presence_required" and refused["error"]["message"]
    wrong = await mp.post("/queue/tickets", {"hall": HALL, "category": "A", "door_code": "YWQ1:forged"}, expect=403)
    assert wrong["error"]["code"] == "queue.door_code_invalid"
    far = await mp.post("/queue/tickets", {"hall": HALL, "category": "A", "position": FAR}, expect=403)
    assert far["error"]["code"] == "queue.too_far"
    bad = await mp.post("/queue/tickets", {"hall": HALL, "category": "A", "position": {"lat": "x"}}, expect=400)
    assert bad["error"]["code"] == "queue.ticket_invalid"
    assert await services.store["queue_tickets"].count_documents({}) == 0  # refused input wrote nothing

    ticket = await mp.post("/queue/tickets", {"hall": HALL, "category": "A", "door_code": await door_code(services)},
                           expect=201)
    assert ticket["number"] == "A001" and ticket["ahead"] == 0 and ticket["source"] == "mobile"
    held = await mp.post("/queue/tickets", {"hall": HALL, "category": "B", "position": INSIDE}, expect=409)
    assert held["error"]["code"] == "queue.ticket_held" and "A001" in held["error"]["message"]

    other = await resident(client, fake_wechat)
    by_position = await other.post("/queue/tickets", {"hall": HALL, "category": "A", "position": INSIDE}, expect=201)
    assert by_position["number"] == "A002" and by_position["ahead"] == 1
    mine = await other.get("/queue/tickets")
    assert [t["number"] for t in mine["tickets"]] == ["A002"]
    assert (await other.get(f"/queue/tickets/{ticket['id']}", expect=404))["error"]["code"] == "queue.ticket_not_found"

    await mp.post(f"/queue/tickets/{ticket['id']}/cancel")
    assert (await other.get(f"/queue/tickets/{by_position['id']}"))["ahead"] == 0
    again = await mp.post(f"/queue/tickets/{ticket['id']}/cancel", expect=409)
    assert again["error"]["code"] == "queue.not_waiting"


async def test_a_hall_without_coordinates_takes_only_the_door_code(services, client, fake_wechat) -> None:
    await prepare_queue(services)
    mp = await resident(client, fake_wechat)
    body = await mp.post("/queue/tickets", {"hall": "gz-city-center", "category": "A", "position": INSIDE},
                         expect=403)
    assert body["error"]["code"] == "queue.presence_required"


async def test_appointment_slots_have_limits_and_one_per_person_and_day(services, client, fake_wechat) -> None:
    await prepare_queue(services)
    await services.store["queue_halls"].update_one({"_id": HALL}, {"$set": {"appointments.per_slot": 2}})
    for name, number in (LI, WANG, HUANG):
        await people.register_resident(services.store, services.cipher, number, name, demo=True)
    li, wang, huang = [await resident(client, fake_wechat, p) for p in (LI, WANG, HUANG)]
    anonymous = await resident(client, fake_wechat)
    day = next_working_day()
    booking = {"hall": HALL, "category": "A", "day": day, "slot": "09:30"}

    low = await anonymous.post("/queue/appointments", booking, expect=403)
    assert low["error"]["code"] == "auth.level_insufficient"
    first = await li.post("/queue/appointments", booking, expect=201)
    assert first["status"] == "booked" and first["slot"] == "09:30"
    await wang.post("/queue/appointments", booking, expect=201)
    full = await huang.post("/queue/appointments", booking, expect=409)
    assert full["error"]["code"] == "queue.slot_full"
    twice = await li.post("/queue/appointments", {**booking, "slot": "10:00"}, expect=409)
    assert twice["error"]["code"] == "queue.appointment_held"

    slots = await huang.get(f"/queue/halls/{HALL}/slots", category="A", day=day)
    by_time = {s["slot"]: s for s in slots["slots"]}
    assert by_time["09:30"]["remaining"] == 0 and by_time["10:00"]["remaining"] == 2 and by_time["09:00"]["open"]

    await li.post(f"/queue/appointments/{first['id']}/cancel")
    await huang.post("/queue/appointments", booking, expect=201)  # the freed place
    assert (await li.get("/queue/appointments"))["appointments"] == []

    for refused, code in (
        ({**booking, "slot": "09:17"}, "queue.slot_invalid"),
        ({**booking, "day": "2020-01-01"}, "queue.day_out_of_range"),
        ({**booking, "day": "tomorrow"}, "queue.day_invalid"),
        ({**booking, "category": "Z"}, "queue.category_unknown"),
    ):
        body = await li.post("/queue/appointments", refused, expect=(400, 404))
        assert body["error"]["code"] == code
    assert await services.store["queue_appointments"].count_documents({}) == 2


async def test_an_appointment_checked_in_on_the_day_is_a_priority_ticket(services, client, fake_wechat) -> None:
    await prepare_queue(services)
    await people.register_resident(services.store, services.cipher, LI[1], LI[0], demo=True)
    li = await resident(client, fake_wechat, LI)
    await take(services, "A")
    await take(services, "A")
    appointment_id = "f" * 32
    await services.store["queue_appointments"].insert_one({
        "_id": appointment_id, "hall": HALL, "day": hall_queue.today(), "slot": "09:00", "category": "A",
        "category_name": "民生服务", "account_id": li.account["id"], "status": "booked", "slot_key": "x",
        "ticket": None,
    })  # fmt: skip
    ticket = await li.post(f"/queue/appointments/{appointment_id}/check-in", {"position": INSIDE}, expect=201)
    assert ticket["number"] == "A003" and ticket["priority"] == "appointment" and ticket["ahead"] == 0
    used = await li.post(f"/queue/appointments/{appointment_id}/check-in", {"position": INSIDE}, expect=410)
    assert used["error"]["code"] == "queue.appointment_used"


async def test_the_resident_is_told_on_wechat_when_three_are_ahead(services, client, fake_wechat) -> None:
    await prepare_queue(services)
    for _ in range(5):
        await take(services, "A")
    mp = await resident(client, fake_wechat)
    await mp.subscribe(TEMPLATES["queue_near"])
    ticket = await mp.post("/queue/tickets", {"hall": HALL, "category": "A", "door_code": await door_code(services)},
                           expect=201)
    assert ticket["number"] == "A006" and ticket["ahead"] == 5

    def near() -> list[dict]:
        return [m for m in fake_wechat.sent_messages if m["template_id"] == TEMPLATES["queue_near"]]

    await hall_queue.call_next(services, HALL, "A01", CLERK)  # 4 ahead: not yet
    await send_due(services)
    assert near() == []
    await hall_queue.call_next(services, HALL, "A02", CLERK)  # 3 ahead: now
    await send_due(services)
    await eventually(lambda: len(near()) == 1)
    message = near()[0]
    assert message["touser"] == mp.openid
    assert message["data"]["character_string1"]["value"] == "A006"
    assert message["data"]["number3"]["value"] == "3"
    assert message["page"] == f"pages/queue/ticket?id={ticket['id']}"
    await hall_queue.call_next(services, HALL, "A01", CLERK)  # once only
    await send_due(services)
    assert len(near()) == 1
