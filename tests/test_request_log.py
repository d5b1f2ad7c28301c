"""The request log: one line per request with the route's pattern (never the ids in the path), no personal
data even when a client sends it as its request id, and other lines still redacted."""

from __future__ import annotations

import json
import logging

import pytest

from tests.conftest import Client
from yiwang.logs import JsonFormatter

ID_NUMBER = "44010619900101123X"


def lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    formatter = JsonFormatter()
    return [json.loads(formatter.format(r)) for r in caplog.records if r.name == "yiwang.http"]


async def test_a_request_is_logged_once_with_its_route_pattern(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="yiwang.http")
    status, _, response = await client.get("/api/verify/v1/check?c=nothing")
    logged = [line for line in lines(caplog) if line["msg"] == "request"]
    assert len(logged) == 1
    line = logged[0]
    assert line["route"] == "/api/verify/v1/check" and line["status"] == status and line["method"] == "GET"
    assert line["request_id"] == response.headers["X-Request-Id"] and line["client"] == "127.0.0.1"


async def test_a_request_id_shaped_like_an_id_number_is_replaced(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="yiwang.http")
    _, _, response = await client.get("/api/verify/v1/keys", headers={"X-Request-Id": ID_NUMBER})
    assert response.headers["X-Request-Id"] != ID_NUMBER
    assert all(ID_NUMBER not in json.dumps(line) for line in lines(caplog))
    _, _, response = await client.get("/api/verify/v1/keys", headers={"X-Request-Id": "kiosk-7.req-1"})
    assert response.headers["X-Request-Id"] == "kiosk-7.req-1"


def test_other_lines_are_still_redacted() -> None:
    record = logging.LogRecord("yiwang.x", logging.INFO, __file__, 1, f"looked up {ID_NUMBER}", None, None)
    assert ID_NUMBER not in JsonFormatter().format(record)


def test_the_fast_request_line_is_the_line_the_formatter_writes() -> None:
    import io

    from yiwang.logs import RequestLines

    stream = io.StringIO()
    lines = RequestLines(stream)
    fields = {"method": "GET", "route": r"/api/mobile/v1/items/([0-9]{12})", "status": 200, "duration_ms": 0.41,
              "request_id": "abc-1.2", "client": "::1"}  # fmt: skip
    lines.add(**fields)  # type: ignore[arg-type]
    assert stream.getvalue() == ""  # batched
    lines.flush()
    fast = json.loads(stream.getvalue())
    record = logging.LogRecord("yiwang.http", logging.INFO, __file__, 1, "request", None, None)
    record.fields = fields
    slow = json.loads(JsonFormatter().format(record))
    assert fast.keys() == slow.keys()
    assert {k: v for k, v in fast.items() if k != "ts"} == {k: v for k, v in slow.items() if k != "ts"}
    assert fast["ts"].endswith("Z") and len(fast["ts"]) == len(slow["ts"])
