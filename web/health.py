"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Any

from web.base import APIHandler


class HealthHandler(APIHandler):
    def get(self) -> None:
        self.write_json({"status": "ok"})


class ReadyHandler(APIHandler):
    async def get(self) -> None:
        if await self.services.store.ping():
            self.write_json({"status": "ok", "db": "ok"})
        else:
            self.write_json({"status": "unavailable", "db": "unreachable"}, status=503)


def routes() -> list[tuple[str, type, dict[str, Any]] | tuple[str, type]]:
    return [(r"/healthz", HealthHandler), (r"/readyz", ReadyHandler)]
