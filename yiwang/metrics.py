"""What the operators watch, in the Prometheus format (``prometheus-client``).

* Counters and histograms are updated where things happen: requests (by the
  web layer), database commands (a PyMongo command listener, registered once
  before any client is made), throttles hit.
* Figures that live in the database (outbox backlogs, open matters past their
  deadline) are read when Prometheus scrapes, by whichever process answers,
  with indexed counts; figures that live in one process (connected devices)
  are sampled by each process.
* With several server processes, set ``PROMETHEUS_MULTIPROC_DIR`` (an empty
  folder, the same for all of them, emptied at boot) before they start: each
  process writes its own files and any process's ``/metrics`` adds them up.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from pymongo import monitoring

CONTENT_TYPE = CONTENT_TYPE_LATEST
_MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

REQUESTS = Counter("yiwang_http_requests", "HTTP requests answered", ["route", "method", "status"])
REQUEST_SECONDS = Histogram(
    "yiwang_http_request_duration_seconds", "Time to answer a request", ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)  # fmt: skip
DB_SECONDS = Histogram(
    "yiwang_db_command_duration_seconds", "Database command latency", ["command", "outcome"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)  # fmt: skip
THROTTLED = Counter("yiwang_throttled", "Requests refused by a rate limit", ["limit"])
DEVICES_CONNECTED = Gauge(
    "yiwang_devices_connected", "Device agents with a live channel to this process", multiprocess_mode="livesum"
)
AUDIT_CHAIN_OK = Gauge(
    "yiwang_audit_chain_ok", "1 when the last verification of the audit chain passed, 0 when it found it broken",
    multiprocess_mode="livemin",
)
_COMMANDS = frozenset({"find", "insert", "update", "delete", "aggregate", "findAndModify", "count", "getMore",
                       "distinct", "createIndexes", "ping", "hello", "isMaster"})  # fmt: skip


class CommandTimer(monitoring.CommandListener):
    """Database command latency, by command name (never the filter: it may hold blind indexes)."""

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        return None

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        DB_SECONDS.labels(_command(event.command_name), "ok").observe(event.duration_micros / 1e6)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        DB_SECONDS.labels(_command(event.command_name), "failed").observe(event.duration_micros / 1e6)


def _command(name: str) -> str:
    return name if name in _COMMANDS else "other"


@functools.cache
def listen_to_database() -> None:
    """Time every database command of clients made from now on (once per process)."""
    monitoring.register(CommandTimer())


_request_series: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    key = (route, method, status)
    series = _request_series.get(key)
    if series is None:  # labels() once per route, method and status, not once per request
        series = (REQUESTS.labels(route, method, str(status)), REQUEST_SECONDS.labels(route, method))
        _request_series[key] = series
    series[0].inc()
    series[1].observe(seconds)


class _Figures:
    """Metric families read at scrape time."""

    def __init__(self, families: list[GaugeMetricFamily]) -> None:
        self.families = families

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from self.families


def render(extra: list[GaugeMetricFamily] | None = None) -> bytes:
    """The exposition text: this process's metrics (or all processes' in multiprocess mode), plus ``extra``."""
    registry: Any
    if _MULTIPROCESS:
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        from prometheus_client import REGISTRY

        registry = REGISTRY
    text = generate_latest(registry)
    if extra:
        scraped = CollectorRegistry()
        scraped.register(_Figures(extra))
        text += generate_latest(scraped)
    return bytes(text)
