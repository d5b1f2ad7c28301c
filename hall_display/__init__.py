"""The hall display (大厅叫号屏): a full-screen page per hall at /hall-display/?hall=…, and the
long-poll it updates from. Domain: ``yiwang.hall_queue`` (calls in ``queue_calls``, by seq)."""

from __future__ import annotations

from typing import Any

from hall_display import handlers as h


def routes() -> list[Any]:
    return [
        (r"/hall-display/?", h.DisplayPage),
        (r"/hall-display/api/calls", h.CallsHandler),
    ]
