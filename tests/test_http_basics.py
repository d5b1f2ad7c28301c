"""What any client sees of the server: probes, the error shape, no 500s."""

from __future__ import annotations

import pytest
from pymongo import AsyncMongoClient

from tests.conftest import Client
from yiwang.store import Store


async def test_health_and_readiness(client: Client) -> None:
    status, body, _ = await client.get("/healthz")
    assert (status, body) == (200, {"status": "ok"})
    status, body, _ = await client.get("/readyz")
    assert (status, body) == (200, {"status": "ok", "db": "ok"})


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
