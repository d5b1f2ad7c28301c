"""终端呼叫: the calls of the halls this account may see, live (polled every second), acknowledged
by a member of staff; the kiosk says someone is coming at once (yiwang.staff_calls)."""

from __future__ import annotations

from typing import Any

from console.base import ConsoleHandler
from yiwang import console_accounts, staff_calls
from yiwang.console_accounts import hall_place
from yiwang.timeutil import format_local


class CallsBase(ConsoleHandler):
    async def visible(self) -> tuple[list[str], dict[str, Any]]:
        halls = await self.halls()
        visible = console_accounts.visible_halls(self.current, halls)
        if not console_accounts.role_may(self.current, "fleet.view"):
            await self.authorise("fleet.view", hall_place("", halls))
        return visible, halls

    async def rows(self) -> list[dict[str, Any]]:
        visible, halls = await self.visible()
        rows = []
        for call in await staff_calls.open_calls(self.services, visible):
            rows.append({**call, "hall_name": halls.get(call["hall"], {}).get("name", call["hall"]),
                         "at": format_local(call["created_at"], "%H:%M:%S"),
                         "acknowledged_at": format_local(call["acknowledged_at"], "%H:%M:%S")
                         if call.get("acknowledged_at") else None,
                         "created_at": None})
        return rows


class CallsPage(CallsBase):
    async def get(self) -> None:
        self.render_page("console/calls.html", rows=await self.rows())


class CallsAPI(CallsBase):
    async def get(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.write_json({"calls": await self.rows()})


class AcknowledgeHandler(CallsBase):
    async def post(self, call_id: str) -> None:
        call = await staff_calls.get(self.services, call_id)
        await self.authorise("fleet.view", hall_place(call["hall"], await self.halls()))
        await staff_calls.acknowledge(self.services, call_id, by=self.actor())  # audited there
        if self.is_api:
            self.write_json({"acknowledged": True})
        else:
            self.redirect("/console/calls", status=303)
