"""What any client sees of the server: probes, the error shape, no 500s."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from pymongo import AsyncMongoClient
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from tests.conftest import Client
from web.app import make_app
from web.base import APIHandler
from yiwang.store import Store


async def test_health_and_readiness(client: Client) -> None:
    status, body, _ = await client.get("/healthz")
    assert (status, body) == (200, {"status": "ok"})
    status, body, _ = await client.get("/readyz")
    assert (status, body["status"], body["db"]) == (200, "ok", "ok")
    assert body["audit"]["state"] == "intact"  # verified at start-up


@pytest.mark.parametrize("path", ["/nope", "/api/mobile/v9/whatever", "/kiosk/../../etc/passwd"])
async def test_unknown_paths_get_the_error_shape(client: Client, path: str) -> None:
    status, body, _ = await client.get(path)
    assert status == 404
    assert body["error"]["code"] == "not_found"
    assert body["error"]["message"]


async def test_wrong_method_gets_the_error_shape(client: Client) -> None:
    status, body, _ = await client.request("DELETE", "/readyz")
    assert status == 405
    assert body["error"]["code"] == "request.method_not_allowed"
    assert body["error"]["allowed"] == ["GET"]


async def test_browsers_get_a_readable_error_page(client: Client) -> None:
    status, body, response = await client.get("/no-such-page", headers={"Accept": "text/html"})
    assert status == 404
    assert response.content_type == "text/html"
    assert "找不到" in body.decode()


async def test_readiness_fails_when_the_database_is_gone(services, client: Client) -> None:
    from tests.conftest import free_port

    working = services.store
    services.store = Store(AsyncMongoClient(f"mongodb://127.0.0.1:{free_port()}", serverSelectionTimeoutMS=300), "x")
    try:
        status, body, _ = await client.get("/readyz")
    finally:
        await services.store.close()
        services.store = working
    assert status == 503
    assert body["db"] == "unreachable"


class EchoHandler(APIHandler):
    async def post(self) -> None:
        self.write_json({"received": self.json_body()})


@pytest.fixture
async def echo_client(services) -> AsyncIterator[Client]:
    app = make_app(services, extra_routes=[(r"/api/echo", EchoHandler)])
    sock, port = bind_unused_port()
    http = HTTPServer(app)
    http.add_sockets([sock])
    async with aiohttp.ClientSession() as session:
        yield Client(f"http://127.0.0.1:{port}", session)
    http.stop()
    await http.close_all_connections()


@pytest.mark.parametrize(
    ("body", "content_type", "code"),
    [
        (b"{not json", "application/json", "request.malformed_json"),
        (b"[1, 2]", "application/json", "request.malformed_json"),
        (b"\xff\xfe", "application/json", "request.malformed_json"),
        (b"a=1", "application/x-www-form-urlencoded", "request.content_type"),
    ],
)
async def test_malformed_json_gets_a_clear_400(echo_client: Client, body: bytes, content_type: str, code: str) -> None:
    status, answer, _ = await echo_client.post("/api/echo", data=body, headers={"Content-Type": content_type})
    assert status == 400
    assert answer["error"]["code"] == code
    assert answer["error"]["message"]


async def test_well_formed_json_passes(echo_client: Client) -> None:
    status, answer, _ = await echo_client.post("/api/echo", json={"名字": "值"})
    assert (status, answer) == (200, {"received": {"名字": "值"}})
