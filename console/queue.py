"""排队叫号 in the console: a hall manager sets the hall's categories; a clerk at a window calls
tickets (next / a number / recall / no-show / done / transfer). Domain: ``yiwang.hall_queue``."""

from __future__ import annotations

from typing import Any

import segno

from console.base import ConsoleHandler
from yiwang import console_accounts, hall_queue
from yiwang.console_accounts import hall_place
from yiwang.errors import NotFound, YiwangError

ACTIONS = ("next", "call", "recall", "no_show", "finish", "transfer")
DONE_TEXT = {
    "next": "已叫号", "call": "已叫号", "recall": "已重呼", "no_show": "已标记过号", "finish": "已办结",
    "transfer": "已转移",
}  # fmt: skip


class QueueHalls(ConsoleHandler):
    async def get(self) -> None:
        halls = await self.halls()
        visible = [
            halls[c] for c in console_accounts.visible_halls(self.current, halls)
            if console_accounts.may(self.current, "queue.call", hall_place(c, halls))
        ]  # fmt: skip
        may_configure = console_accounts.role_may(self.current, "queue.configure")
        self.render_page("console/queue.html", halls=visible, may_configure=may_configure)


class QueueSettings(ConsoleHandler):
    async def get(self, hall: str) -> None:
        await self.authorise("queue.configure", hall_place(hall, await self.halls()))
        await self.show(hall, None, None)

    async def post(self, hall: str) -> None:
        await self.authorise("queue.configure", hall_place(hall, await self.halls()))
        raw = self.form_settings()
        try:
            await hall_queue.configure(self.services, hall, raw, self.actor())
        except YiwangError as error:
            self.set_error_status(error)
            await self.show(hall, error, raw)
            return
        self.redirect(f"/console/queue/{hall}/settings?saved=1")

    def form_settings(self) -> dict[str, Any]:
        rows = zip(self.get_body_arguments("cat_code"), self.get_body_arguments("cat_name"),
                   self.get_body_arguments("cat_windows"), strict=False)  # fmt: skip
        raw: dict[str, Any] = {
            "categories": [
                {"code": c, "name": n, "windows": [w.strip() for w in ws.replace("，", ",").split(",") if w.strip()]}
                for c, n, ws in rows
            ],
        }
        for key in ("near_ahead", "lat", "lng", "radius", "slot_minutes", "per_slot", "days_ahead", "hours"):
            raw[key] = self.form(key)
        for key in ("appointment", "elderly", "disabled"):
            raw[f"priority_{key}"] = self.form(f"priority_{key}") == "1"
        return raw

    async def show(self, hall: str, error: YiwangError | None, raw: dict[str, Any] | None) -> None:
        config = await hall_queue.settings(self.services, hall)
        hall_doc = await self.services.catalog.hall(hall)
        form = raw or {
            "categories": config["categories"],
            "near_ahead": config["near_ahead"],
            "lat": (config.get("location") or {}).get("lat", ""),
            "lng": (config.get("location") or {}).get("lng", ""),
            "radius": (config.get("location") or {}).get("radius_m", ""),
            **config["appointments"],
            **{f"priority_{k}": v for k, v in config["priority"].items()},
        }
        door = hall_queue.door_value(config.get("door_code") or "")
        self.render_page(
            "console/queue_settings.html", hall=hall_doc, form=form, error=error,
            door=door, door_qr=segno.make(door, error="m").svg_inline(scale=5) if door else "",
        )  # fmt: skip


class QueueDoorCode(ConsoleHandler):
    async def post(self, hall: str) -> None:
        await self.authorise("queue.configure", hall_place(hall, await self.halls()))
        await hall_queue.renew_door_code(self.services, hall, self.actor())
        self.redirect(f"/console/queue/{hall}/settings?renewed=1")


class QueueWindow(ConsoleHandler):
    """One window's desk: what it called, the queues, the buttons."""

    async def get(self, hall: str, window: str, action: str = "") -> None:
        await self.authorise("queue.call", hall_place(hall, await self.halls()))
        if action:
            self.redirect(f"/console/queue/{hall}/window/{window}")
            return
        await self.show(hall, window, None)

    async def post(self, hall: str, window: str, action: str = "") -> None:
        await self.authorise("queue.call", hall_place(hall, await self.halls()))
        if action not in ACTIONS:
            raise NotFound("queue.action_unknown", "不支持的操作")
        services, by = self.services, self.actor()
        try:
            if action in ("next", "call"):
                ticket = await hall_queue.call_next(services, hall, window, by,
                                                    number=self.form("number") if action == "call" else None)
            elif action == "recall":
                ticket = await hall_queue.recall(services, hall, window, by)
            elif action == "no_show":
                ticket = await hall_queue.no_show(services, hall, window, by)
            elif action == "finish":
                ticket = await hall_queue.finish(services, hall, window, by)
            else:
                ticket = await hall_queue.transfer(services, hall, window, by, to_window=self.form("to_window"),
                                                   to_category=self.form("to_category"))
        except YiwangError as error:
            self.set_error_status(error)
            await self.show(hall, window, error)
            return
        self.redirect(f"/console/queue/{hall}/window/{window}?done={action}&number={ticket['number']}")

    async def show(self, hall: str, window: str, error: YiwangError | None) -> None:
        state = await hall_queue.window_state(self.services, hall, window)
        done = self.get_query_argument("done", "")
        number = self.get_query_argument("number", "")[:8]
        flash = f"{number} {DONE_TEXT[done]}" if done in DONE_TEXT else ""
        self.render_page("console/queue_window.html", state=state, error=error, flash=flash,
                         window_names={str(w["number"]): w.get("name", "") for w in state["hall"].get("windows", [])})


class QueueDesk(ConsoleHandler):
    """Choose the window you sit at (the clerk's start page for a hall)."""

    async def get(self, hall: str) -> None:
        await self.authorise("queue.call", hall_place(hall, await self.halls()))
        state = await hall_queue.window_state(self.services, hall, None)
        figures = await hall_queue.day_figures(self.services.store, hall)
        may_configure = console_accounts.may(self.current, "queue.configure", hall_place(hall, await self.halls()))
        self.render_page("console/queue_desk.html", state=state, figures=figures, may_configure=may_configure)
