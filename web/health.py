"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Any

from web.base import APIHandler
from yiwang.audit_anchor import AuditWatch


class HealthHandler(APIHandler):
    def get(self) -> None:
        self.write_json({"status": "ok"})


class ReadyHandler(APIHandler):
    async def get(self) -> None:
        watch = self.services.resources.find(AuditWatch)
        # The audit trail's last verification (docs/security.md, "The audit trail"): shown, but a
        # broken trail does not take the instance out of service (that would be a lever for an attacker).
        trail = watch.status.public() if watch is not None else {"state": "unverified"}
        if await self.services.store.ping():
            self.write_json({"status": "ok", "db": "ok", "audit": trail})
        else:
            self.write_json({"status": "unavailable", "db": "unreachable", "audit": trail}, status=503)


def routes() -> list[tuple[str, type, dict[str, Any]] | tuple[str, type]]:
    return [(r"/healthz", HealthHandler), (r"/readyz", ReadyHandler)]
