"""``/metrics`` for Prometheus: loopback peers (by socket address, never a header) or a bearer token."""

from __future__ import annotations

import ipaddress
from typing import Any

import tornado.web

from web.base import APIHandler, log_request, route_template
from yiwang import devices, metrics
from yiwang.crypto import constant_time_equal
from yiwang.errors import Forbidden


def observed_log_request(handler: tornado.web.RequestHandler) -> None:
    """The app's log function: one log line and the request metrics."""
    log_request(handler)
    metrics.observe_request(
        route_template(handler), handler.request.method or "", handler.get_status(), handler.request.request_time()
    )


class MetricsHandler(APIHandler):
    async def get(self) -> None:
        self._authorise()
        metrics.DEVICES_CONNECTED.set(len(list(devices.online_ids(self.services))))
        figures = await metrics.database_figures(self.services.store)
        self.set_header("Content-Type", metrics.CONTENT_TYPE)
        self.set_header("Cache-Control", "no-store")
        self.finish(metrics.render(figures))

    def _authorise(self) -> None:
        context = getattr(self.request.connection, "context", None)
        peer = getattr(context, "address", None)  # the socket's peer: X-Real-IP and friends do not count here
        host = peer[0] if isinstance(peer, tuple) and peer else ""
        if not allowed(host, self.request.headers.get("Authorization", ""), self.services.config.metrics_token):
            raise Forbidden("metrics.forbidden", "监控指标仅对本机或持有令牌的采集端开放")


def allowed(peer_host: str, authorization: str, token: str) -> bool:
    """A loopback peer, or anyone presenting the configured bearer token."""
    if token and constant_time_equal(authorization, "Bearer " + token):
        return True
    try:
        return ipaddress.ip_address(peer_host).is_loopback
    except ValueError:
        return False


def routes() -> list[tuple[str, type, dict[str, Any]] | tuple[str, type]]:
    return [(r"/metrics", MetricsHandler)]
