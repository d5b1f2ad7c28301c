"""排队取号 at the kiosk: choose a category → a ticket (number, people ahead, estimated wait),
printed through the kiosk's agent (``static/kiosk/queue.js``, as the checklist is printed).
Domain: ``yiwang.hall_queue``; the ticket PDF: ``yiwang.queue_print``."""

from __future__ import annotations

from kiosk.handlers import KioskPage
from yiwang import hall_queue, queue_print
from yiwang.errors import NotFound, YiwangError
from yiwang.timeutil import format_local


class QueuePage(KioskPage):
    async def get(self) -> None:
        await self.show(None)

    async def post(self) -> None:
        device = self.require_device()
        try:
            ticket = await hall_queue.take_ticket(
                self.services, device.hall, self.get_body_argument("category", None), by=device.actor,
                source="kiosk", priority_claim=self.get_body_argument("priority", None),
            )
        except YiwangError as error:
            self.set_error_status(error)
            await self.show(error)
            return
        self.redirect(f"/kiosk/queue/tickets/{ticket['id']}?new=1")

    async def show(self, error: YiwangError | None) -> None:
        overview = await hall_queue.overview(self.services, self.hall.get("code", ""))
        self.render_page("kiosk/queue.html", overview=overview, error=error)


class TicketPage(KioskPage):
    async def get(self, ticket_id: str) -> None:
        device = self.require_device()
        ticket = await hall_queue.get_ticket(self.services, ticket_id, hall=device.hall)
        self.set_header("Cache-Control", "no-store")
        self.render_page("kiosk/queue_ticket.html", ticket=ticket, taken_at=format_local(ticket["taken_at"]),
                         new=self.get_query_argument("new", "") == "1")


class TicketPdf(KioskPage):
    async def get(self, ticket_id: str) -> None:
        device = self.require_device()
        ticket = await hall_queue.get_ticket(self.services, ticket_id, hall=device.hall)
        if ticket["status"] != hall_queue.WAITING:
            raise NotFound("queue.ticket_not_waiting", "该号票已叫号或已结束")
        pdf = await self.services.offload.run(queue_print.render_ticket_pdf, ticket, self.hall.get("name", ""),
                                              format_local(ticket["taken_at"]))
        self.set_header("Content-Type", "application/pdf")
        self.set_header("Cache-Control", "no-store")
        self.finish(pdf)
