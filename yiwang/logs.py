"""Structured JSON logs, one object per line, with no personal data.

Callers pass structured values through ``extra={"fields": {...}}``; the
formatter refuses nothing but redacts anything shaped like a one-number or a
mobile phone number, as a last line of defence.
"""

from __future__ import annotations

import json
import logging
import re
import sys
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


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Tornado's own access log is replaced by ours (web.base.log_request).
    logging.getLogger("tornado.access").disabled = True
    logging.getLogger("pymongo").setLevel(logging.WARNING)
