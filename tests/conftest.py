"""Shared fixtures: one embedded DB server for the session, a fresh database
per test, the app served on a real port, a fake WeChat API on loopback."""

from __future__ import annotations

import secrets
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from tests.support.fake_wechat import FakeWeChat
from web.app import make_app
from web.base import SERVER_LIMITS
from yiwang import audit, migrations
from yiwang.boot import open_services
from yiwang.config import Config, load_config
from yiwang.embedded import EmbeddedMongo
from yiwang.runtime import Services
from yiwang.store import Store

ROOT = Path(__file__).resolve().parent.parent
SECURITY_HEADERS = ("X-Content-Type-Options", "X-Request-Id", "Referrer-Policy")


@pytest.fixture(scope="session")
def mongo_uri() -> Iterator[str]:
    """The embedded mongoeco wire server (in memory), shared by the whole suite."""
    embedded = EmbeddedMongo(None)
    uri = embedded.start()
    yield uri
    embedded.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest_asyncio.fixture
async def fake_wechat() -> AsyncIterator[FakeWeChat]:
    fake = FakeWeChat(appid="wxtest0000000001", secret=secrets.token_hex(16))
    runner = web.AppRunner(fake.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.url = f"http://127.0.0.1:{port}"
    yield fake
    await runner.cleanup()


@pytest.fixture
def config(tmp_path: Any, fake_wechat: FakeWeChat) -> Config:
    return load_config(
        {
            "DATA_DIR": str(tmp_path),
            "PII_KEY": secrets.token_hex(16),
            "BLIND_INDEX_KEY": secrets.token_hex(32),
            "COOKIE_SECRET": secrets.token_hex(16),
            "WECHAT_APPID": fake_wechat.appid,
            "WECHAT_SECRET": fake_wechat.secret,
            "WECHAT_API_BASE": fake_wechat.url,
            "DEMO_DATA": "0",
            "WORKERS": "2",
        }
    )


@pytest_asyncio.fixture
async def store(mongo_uri: str) -> AsyncIterator[Store]:
    """A fresh database per test, over the wire, indexes and migrations applied."""
    db_name = "t_" + secrets.token_hex(6)
    audit.configure(secrets.token_bytes(32))  # the services fixture sets its config's AUDIT_KEY
    store = Store.connect(mongo_uri, db_name)
    await store.prepare()
    await migrations.run(store)  # as at boot, without this host's files: file migrations wait
    yield store
    await store.client.drop_database(db_name)
    await store.close()


@pytest_asyncio.fixture
async def services(config: Config, store: Store) -> AsyncIterator[Services]:
    services = await open_services(config, store=store)
    yield services
    await services.close(close_store=False)  # the store fixture drops and closes


class Client:
    """HTTP client for the app under test; checks security headers on every response."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession) -> None:
        self.base_url = base_url
        self.session = session

    async def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
        async with self.session.request(method, self.base_url + path, **kwargs) as response:
            for header in SECURITY_HEADERS:
                assert header in response.headers, f"{header} missing on {method} {path}"
            raw = await response.read()
            if response.content_type == "application/json":
                body: Any = await response.json()
            else:
                body = raw
            return response.status, body, response

    async def get(self, path: str, **kwargs: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
        return await self.request("POST", path, **kwargs)


@pytest_asyncio.fixture
async def server(services: Services) -> AsyncIterator[str]:
    """The real application on a real port; yields its base URL."""
    app = make_app(services)
    sock, port = bind_unused_port()
    http_server = HTTPServer(app, xheaders=True, **SERVER_LIMITS)
    http_server.add_sockets([sock])
    yield f"http://127.0.0.1:{port}"
    http_server.stop()
    await http_server.close_all_connections()


@pytest_asyncio.fixture
async def client(server: str) -> AsyncIterator[Client]:
    async with aiohttp.ClientSession() as session:
        yield Client(server, session)


pytest_plugins = ("tests.support.browser",)
