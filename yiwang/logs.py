"""Structured JSON logs, one object per line, with no personal data.

Callers pass structured values through ``extra={"fields": {...}}``; the
formatter refuses nothing but redacts anything shaped like a one-number or a
mobile phone number, as a last line of defence.
"""

from __future__ import annotations

import atexit
import json
import logging
import re
import sys
import threading
import time
from typing import Any

_PII_PATTERNS = (
    re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])"),  # citizen ID number
    re.compile(r"(?<![0-9A-Za-z])[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}(?![0-9A-Za-z])"),  # credit code
    re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)"),  # mainland mobile number
)


def redact(text: str) -> str:
    for pattern in _PII_PATTERNS:
        text = pattern.sub("[redacted]", text)
    return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line. A record logged with ``extra={"safe_fields": True}`` (the request log: a
    route pattern, numbers, a request id, an address) skips the redaction pass; every other line gets it."""

    converter = time.gmtime  # type: ignore[assignment]
    _second = -1
    _stamp = ""

    def _timestamp(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:  # strftime once a second, not once a line
            self._second, self._stamp = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self._timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        line = json.dumps(entry, ensure_ascii=False, default=str)
        if getattr(record, "safe_fields", False) and record.exc_info is None:
            return line
        return redact(line)


class RequestLines:
    """The request log's fast path (one line per request is the most frequent thing a server writes).

    The line is the one ``JsonFormatter`` would write for the same record, built with one f-string from
    fields that are safe by construction (no redaction pass, no ``LogRecord``), kept in memory and written
    in batches: when ``MAX_LINES`` are waiting, every ``INTERVAL`` seconds (a daemon thread), before any
    other log line (so the stream keeps its order) and at exit."""

    INTERVAL = 0.5
    MAX_LINES = 256

    def __init__(self, stream: Any, logger: str = "yiwang.http") -> None:
        self.stream = stream
        self.logger = logger
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._quoted: dict[str, str] = {}
        self._second = -1
        self._stamp = ""
        threading.Thread(target=self._flush_periodically, name="request-log", daemon=True).start()
        atexit.register(self.flush)

    def add(self, *, method: str, route: str, status: int, duration_ms: float, request_id: str, client: str) -> None:
        """One ``info`` line ``request`` (``request_id`` and ``client`` are plain tokens: ``web.input.request_id``,
        an address); the method and the route pattern are JSON-quoted (cached: there are few of them)."""
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second, self._stamp = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        quoted, verb = self._quoted.get(route), self._quoted.get(method)
        if quoted is None:
            quoted = self._quoted[route] = json.dumps(route, ensure_ascii=False)
        if verb is None:
            verb = self._quoted[method] = json.dumps(method, ensure_ascii=False)
        line = (
            f'{{"ts": "{self._stamp}.{int((now - second) * 1000):03d}Z", "level": "info", '
            f'"logger": "{self.logger}", "msg": "request", "method": {verb}, "route": {quoted}, '
            f'"status": {status}, "duration_ms": {duration_ms}, "request_id": "{request_id}", '
            f'"client": "{client}"}}\n'
        )
        with self._lock:
            self._lines.append(line)
            full = len(self._lines) >= self.MAX_LINES
        if full:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            lines, self._lines = self._lines, []
        if lines:
            try:
                self.stream.write("".join(lines))
                self.stream.flush()
            except (OSError, ValueError):  # a closed stream at exit: nothing left to tell
                pass

    def _flush_periodically(self) -> None:
        while True:
            time.sleep(self.INTERVAL)
            self.flush()


_request_lines: dict[str, RequestLines] = {}


def flush_request_lines() -> None:
    """Write the waiting request lines now (a forked worker leaves through ``os._exit``: no atexit)."""
    lines = _request_lines.get("active")
    if lines is not None:
        lines.flush()


def request_lines() -> RequestLines | None:
    """The fast request log, when ``configure_logging`` set one up (not under pytest's log capture)."""
    return _request_lines.get("active")


class _OrderedHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes the waiting request lines first, so the stream stays in time order."""

    def emit(self, record: logging.LogRecord) -> None:
        lines = _request_lines.get("active")
        if lines is not None:
            lines.flush()
        super().emit(record)


def configure_logging(level: str = "INFO") -> None:
    handler = _OrderedHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    if "active" not in _request_lines:
        _request_lines["active"] = RequestLines(sys.stderr)
    # Tornado's own access log is replaced by ours (web.base.log_request).
    logging.getLogger("tornado.access").disabled = True
    logging.getLogger("pymongo").setLevel(logging.WARNING)
