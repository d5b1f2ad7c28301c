"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Any

from web.base import APIHandler
from yiwang.audit_anchor import AuditWatch
from yiwang.dbwatch import DbWatch


class HealthHandler(APIHandler):
    needs_database = False  # liveness: this process answers, whatever the database does

    def get(self) -> None:
        self.write_json({"status": "ok"})


class ReadyHandler(APIHandler):
    needs_database = False  # it says itself whether the database is there

    async def get(self) -> None:
        watch = self.services.resources.find(AuditWatch)
        # The audit trail's last verification (docs/security.md, "The audit trail"): shown, but a
        # broken trail does not take the instance out of service (that would be a lever for an attacker).
        trail = watch.status.public() if watch is not None else {"state": "unverified"}
        db = self.services.resources.find(DbWatch)
        if db is not None and not db.available:  # the embedded database is being restarted (or gave up)
            self.write_json({"status": "unavailable", "db": db.state, "audit": trail}, status=503)
        elif await self.services.store.ping():
            self.write_json({"status": "ok", "db": "ok", "audit": trail})
        else:
            self.write_json({"status": "unavailable", "db": "unreachable", "audit": trail}, status=503)


def routes() -> list[tuple[str, type, dict[str, Any]] | tuple[str, type]]:
    return [(r"/healthz", HealthHandler), (r"/readyz", ReadyHandler)]
