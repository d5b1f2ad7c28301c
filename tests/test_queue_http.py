"""The queue's small HTTP surfaces: the hall display's long-poll and the kiosk ticket pages
refuse bad input with the JSON error shape and serve only their own hall."""

from __future__ import annotations

import asyncio

from tests.kiosk_support import enrolled_kiosk
from tests.queue_support import CLERK, HALL, prepare_queue, take
from yiwang import hall_queue


async def test_the_display_long_poll_answers_at_once_when_a_call_is_made(services, client) -> None:
    await prepare_queue(services)
    await take(services, "A")
    status, body, _ = await client.get(f"/hall-display/api/calls?hall={HALL}&since=0&wait=0")
    assert status == 200 and body["seq"] == 0 and body["calls"] == []
    waiting = asyncio.ensure_future(client.get(f"/hall-display/api/calls?hall={HALL}&since=0&wait=20"))
    await asyncio.sleep(0)  # the poll is in flight before the call
    await hall_queue.call_next(services, HALL, "A01", CLERK)
    status, body, _ = await asyncio.wait_for(waiting, 10)
    assert status == 200 and body["seq"] == 1 and body["calls"][0]["number"] == "A001"
    assert body["calls"][0]["text"] == "请 A001 号到 A01 号窗口办理"
    status, page, _ = await client.get(f"/hall-display/?hall={HALL}", headers={"Accept": "text/html"})
    assert status == 200 and "A001" in page.decode()


async def test_the_display_refuses_bad_input(services, client) -> None:
    await prepare_queue(services)
    for path, expected, code in (
        ("/hall-display/api/calls", 400, "queue.hall_required"),
        (f"/hall-display/api/calls?hall={HALL}&since=x", 400, "request.query_invalid"),
        ("/hall-display/api/calls?hall=nowhere", 404, "catalog.hall_not_found"),
    ):
        status, body, _ = await client.get(path)
        assert status == expected and body["error"]["code"] == code and body["error"]["message"]


async def test_kiosk_tickets_need_the_kiosk_and_stay_in_its_hall(services, client) -> None:
    await prepare_queue(services)
    status, _, _ = await client.post("/kiosk/queue", data={"category": "A"}, headers={"Accept": "application/json"})
    assert status == 401
    kiosk = await enrolled_kiosk(services, client)
    status, body, _ = await kiosk.post("/kiosk/queue", data={"category": "Q"})
    assert status == 404 and body.decode().count("该大厅没有这个业务类别") == 1
    assert await services.store["queue_tickets"].count_documents({}) == 0
    status, _, response = await kiosk.post("/kiosk/queue", data={"category": "A"}, allow_redirects=False)
    assert status == 302
    ticket_id = response.headers["Location"].split("/")[-1].split("?")[0]
    status, pdf, _ = await kiosk.get(f"/kiosk/queue/tickets/{ticket_id}.pdf")
    assert status == 200 and pdf.startswith(b"%PDF")
    elsewhere = await enrolled_kiosk(services, client, hall="gz-yx-center", label="越秀 1 号机")
    status, _, _ = await elsewhere.get(f"/kiosk/queue/tickets/{ticket_id}")
    assert status == 404
