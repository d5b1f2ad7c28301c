"""节假日安排: a province administrator enters the State Council's schedule for a year."""

from __future__ import annotations

from typing import Any

from console.base import ConsoleHandler
from yiwang import workcalendar
from yiwang.console_accounts import Place
from yiwang.errors import InvalidInput
from yiwang.timeutil import local_today


class CalendarPage(ConsoleHandler):
    async def get(self) -> None:
        await self.authorise("calendar.edit", Place.province())
        await self.render_calendar(None, {})

    async def post(self) -> None:
        await self.authorise("calendar.edit", Place.province())
        raw = {k: self.form(k) for k in ("year", "holidays", "workdays")}
        try:
            schedule = workcalendar.validate(raw["year"], raw["holidays"], raw["workdays"])
            await self.keeper.set_year(schedule, self.actor())
        except InvalidInput as error:
            self.set_error_status(error)
            await self.render_calendar(error, raw)
            return
        self.redirect(f"/console/calendar?saved={schedule.year}")

    @property
    def keeper(self) -> workcalendar.CalendarKeeper:
        keeper: workcalendar.CalendarKeeper = self.services.resources.get(workcalendar.CalendarKeeper)
        return keeper

    async def render_calendar(self, error: InvalidInput | None, form: dict[str, Any]) -> None:
        today = local_today()
        entered = await workcalendar.entered(self.services.store)
        if not form:  # the year to enter next, with what is already entered for it
            year = today.year + 1
            current = next((e for e in entered if e["_id"] == year), None)
            form = {
                "year": str(year),
                "holidays": "\n".join(current["holidays"]) if current else "",
                "workdays": "\n".join(current["workdays"]) if current else "",
            }
        years = [
            {"year": y, "source": workcalendar.source(y)} for y in range(today.year - 1, today.year + 3)
        ]
        self.render_page(
            "console/calendar.html",
            years=years,
            entered=entered,
            warning=workcalendar.warning(today),
            error=error,
            form=form,
        )
