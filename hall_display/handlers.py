"""Hall display handlers: parse → one domain call → render."""

from __future__ import annotations

import asyncio
from typing import Any

from web.base import APIHandler, HTMLHandler
from yiwang import hall_queue
from yiwang.errors import InvalidInput
from yiwang.timeutil import format_local, utcnow

MAX_WAIT_SECONDS = 25


def _hall_argument(handler: Any) -> str:
    hall = handler.get_query_argument("hall", "")
    if not hall or len(hall) > 64:
        raise InvalidInput("queue.hall_required", "请在地址中指定大厅：?hall=大厅编码", fields={"hall": "必填"})
    return str(hall)


class DisplayPage(HTMLHandler):
    async def get(self) -> None:
        hall = _hall_argument(self)
        overview = await hall_queue.overview(self.services, hall)
        board = await hall_queue.latest_calls(self.services.store, hall)
        self.set_header("Cache-Control", "no-store")
        self.render_page("hall_display/display.html", overview=overview, board=board,
                         now=format_local(utcnow(), "%Y-%m-%d %H:%M"))


class CallsHandler(APIHandler):
    """Long-poll (≤ 25 s): the latest calls once there is one after ``since`` (or when time is up)."""

    _waiting: asyncio.Future[dict[str, Any]] | None = None

    async def get(self) -> None:
        hall = _hall_argument(self)
        try:
            since = int(self.get_query_argument("since", "0"))
            wait = float(self.get_query_argument("wait", str(MAX_WAIT_SECONDS)))
        except ValueError:
            raise InvalidInput("request.query_invalid", "参数 since、wait 必须是数字") from None
        self.set_header("Cache-Control", "no-store")
        self._waiting = asyncio.ensure_future(
            hall_queue.wait_for_calls(self.services, hall, since, min(max(wait, 0.0), MAX_WAIT_SECONDS)))
        try:
            board = await self._waiting
        except asyncio.CancelledError:  # the page went away
            return
        overview = await hall_queue.overview(self.services, hall)
        self.write_json({**board, "categories": overview["categories"]})

    def on_connection_close(self) -> None:
        super().on_connection_close()
        if self._waiting is not None:
            self._waiting.cancel()
