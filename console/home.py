"""The console's front page: who you are and what you look after."""

from __future__ import annotations

from console.base import ConsoleHandler
from yiwang import console_accounts, workcalendar
from yiwang.audit_anchor import AuditWatch


class HomeHandler(ConsoleHandler):
    async def get(self) -> None:
        halls = await self.halls()
        visible = console_accounts.visible_halls(self.current, halls)
        watch = self.services.resources.find(AuditWatch)
        may_see = watch is not None and console_accounts.role_may(self.current, "audit.view")  # province, city
        trail = watch.status.view() if watch is not None and may_see else None
        # Deadlines everywhere depend on it: province and city administrators see the gap.
        calendar_warning = workcalendar.warning() if self.current.role in ("province", "city") else None
        self.render_page(
            "console/home.html", halls=[halls[c] for c in visible], calendar_warning=calendar_warning, audit_trail=trail
        )
