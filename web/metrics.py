"""``/metrics`` for Prometheus: loopback peers (by socket address, never a header) or a bearer token."""

from __future__ import annotations

import ipaddress
import time
from typing import Any

import tornado.web
from prometheus_client.core import GaugeMetricFamily

from web.base import APIHandler, log_request, route_template
from yiwang import devices, metrics, notifications
from yiwang.crypto import constant_time_equal
from yiwang.errors import Forbidden
from yiwang.store import Store


def observed_log_request(handler: tornado.web.RequestHandler) -> None:
    """The app's log function: one log line and the request metrics."""
    log_request(handler)
    metrics.observe_request(
        route_template(handler), handler.request.method or "", handler.get_status(), handler.request.request_time()
    )


async def database_figures(store: Store) -> list[GaugeMetricFamily]:
    """Figures that live in the database, read by whichever process is scraped."""
    started = time.perf_counter()
    waiting, failed = await notifications.backlog(store)
    by_hall = await devices.online_by_hall(store)
    active = GaugeMetricFamily("yiwang_devices_active", "Enrolled devices not revoked, by hall", labels=["hall"])
    online = GaugeMetricFamily("yiwang_devices_online", "Devices seen online lately, by hall", labels=["hall"])
    for hall, (count, live) in sorted(by_hall.items()):
        active.add_metric([hall], count)
        online.add_metric([hall], live)
    return [
        GaugeMetricFamily("yiwang_notifications_backlog", "Subscribe messages waiting to be sent", value=waiting),
        GaugeMetricFamily("yiwang_notifications_failed", "Subscribe messages that failed for good", value=failed),
        active,
        online,
        GaugeMetricFamily(
            "yiwang_scrape_db_seconds", "Time this scrape spent in the database", value=time.perf_counter() - started
        ),
    ]


class MetricsHandler(APIHandler):
    async def get(self) -> None:
        self._authorise()
        metrics.DEVICES_CONNECTED.set(len(list(devices.online_ids(self.services))))
        figures = await database_figures(self.services.store)
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
