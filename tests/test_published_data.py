"""Versioned data served from memory (issue 15): the catalogue, scenarios, halls, published keys and kiosk
notices reach the database once per version, not once per request; a change made in another process shows
after the background version check; each cached answer carries an ETag and a matching If-None-Match gets 304."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from pymongo import AsyncMongoClient, monitoring
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from web.app import make_app
from yiwang import catalog, content, departments, versioned
from yiwang.boot import open_services
from yiwang.config import Config
from yiwang.runtime import Services
from yiwang.seed import load_demo_data
from yiwang.store import Store

ITEM = "002001101000"


class Commands(monitoring.CommandListener):
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        target = event.command.get(event.command_name)
        self.seen.append((event.command_name, target if isinstance(target, str) else ""))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


class App:
    """The real app on a real port, with its database commands recorded, and a second process's view of the
    same database (``other``: its own client, as the console or an admin command in another process)."""

    def __init__(self, base: str, services: Services, commands: Commands, other: Store) -> None:
        self.base = base
        self.services = services
        self.commands = commands
        self.other = other


@pytest_asyncio.fixture
async def app(mongo_uri: str, config: Config, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[App]:
    monkeypatch.setattr(versioned, "REFRESH_SECONDS", 0.05)
    commands = Commands()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri, tz_aware=True, event_listeners=[commands])
    other_client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri, tz_aware=True)
    name = "t_" + secrets.token_hex(6)
    store = Store(client, name)
    services = await open_services(config, store=store)
    await load_demo_data(services)
    http_server = HTTPServer(make_app(services))
    sock, port = bind_unused_port()
    http_server.add_sockets([sock])
    try:
        yield App(f"http://127.0.0.1:{port}", services, commands, Store(other_client, name))
    finally:
        http_server.stop()
        await http_server.close_all_connections()
        await services.close(close_store=False)
        await client.drop_database(name)
        await client.close()
        await other_client.close()


async def fetch(http: aiohttp.ClientSession, url: str, **headers: str) -> tuple[int, bytes, str]:
    async with http.get(url, headers=headers) as response:
        return response.status, await response.read(), response.headers.get("ETag", "")


async def until(condition: Any, seconds: float = 10.0) -> None:
    """Wait for the background check to have happened (polls; fails after ``seconds``)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "the change never showed"
        await asyncio.sleep(0.05)


async def test_a_catalogue_change_made_in_another_process_shows_after_the_background_check(app: App) -> None:
    url = f"{app.base}/api/mobile/v1/items/{ITEM}"
    async with aiohttp.ClientSession() as http:
        status, before, etag = await fetch(http, url)
        assert status == 200 and "新名称" not in before.decode()
        await app.other["items"].update_one({"_id": ITEM}, {"$set": {"name": "新名称的事项"}})
        await versioned.bump(app.other, catalog.CATALOG_VERSION_ID)  # the other process's client: no local drop

        async def renamed() -> bool:
            return "新名称的事项" in (await fetch(http, url))[1].decode()

        await until(renamed)
        status, _, fresh_etag = await fetch(http, url, **{"If-None-Match": etag})
        assert status == 200 and fresh_etag != etag  # the old copy is not confirmed once the data moved


async def test_a_client_holding_the_current_version_gets_304_without_a_body(app: App) -> None:
    async with aiohttp.ClientSession() as http:
        for path in ("/api/mobile/v1/items", f"/api/mobile/v1/items/{ITEM}", "/api/mobile/v1/scenarios",
                     "/api/verify/v1/keys"):  # fmt: skip
            status, body, etag = await fetch(http, app.base + path)
            assert status == 200 and body and etag.startswith('W/"'), path
            status, body, again = await fetch(http, app.base + path, **{"If-None-Match": etag})
            assert (status, body, again) == (304, b"", etag), path
            status, _, _ = await fetch(http, app.base + path, **{"If-None-Match": '"something-else"'})
            assert status == 200, path


async def test_an_unknown_item_is_still_a_404_and_not_cached_as_an_answer(app: App) -> None:
    async with aiohttp.ClientSession() as http:
        status, body, etag = await fetch(http, f"{app.base}/api/mobile/v1/items/999999999999")
        assert status == 404 and b"catalog.item_not_found" in body and not etag


async def test_the_published_keys_are_served_without_a_database_query_per_request(app: App) -> None:
    url = f"{app.base}/api/verify/v1/keys"
    async with aiohttp.ClientSession() as http:
        status, first, _ = await fetch(http, url)
        assert status == 200 and b'"keys":[{' in first
        versioned_checks = {("find", "meta")}  # the background check, a lookup by _id about every 50 ms here
        app.commands.seen.clear()
        for _ in range(30):
            status, body, _ = await fetch(http, url)
            assert status == 200 and body == first
        per_request = [c for c in app.commands.seen if c not in versioned_checks]
        assert not [c for c in per_request if c[1] in {"signing_keys", "departments"}]
        assert len(per_request) < 3, per_request  # background jobs of the app, never one per request


async def test_a_new_signing_key_made_in_another_process_is_published_after_the_check(
    app: App, config: Config
) -> None:
    url = f"{app.base}/api/verify/v1/keys"
    async with aiohttp.ClientSession() as http:
        assert (await fetch(http, url))[0] == 200  # the keys are in memory now
        # Another server process signs for a department that had no key yet.
        other = await open_services(config, store=app.other)
        try:
            known = {k["department"]["code"] for k in await departments.published_keys(app.other)}
            fresh = next(code for code in departments.load_departments() if code not in known)
            await departments.signer_for(other, fresh)
        finally:
            await other.close(close_store=False)

        async def published() -> bool:
            return f'"code":"{fresh}"'.encode() in (await fetch(http, url))[1]

        await until(published)


async def test_a_notice_published_in_another_process_reaches_the_kiosk_home(app: App) -> None:
    url = f"{app.base}/kiosk/?hall=gz-th-center"
    async with aiohttp.ClientSession() as http:
        status, page, _ = await fetch(http, url)
        assert status == 200 and "系统维护通知测试" not in page.decode()
        fields = {"title": "系统维护通知测试", "body_html": "<p>今晚维护</p>", "level": "urgent",
                  "target": {"scope": "all"}}  # fmt: skip
        created = await content.create_draft(app.other, "notice", fields, by="console-admin")
        await content.publish(app.other, created["_id"], by="console-admin")

        async def shown() -> bool:
            return "系统维护通知测试" in (await fetch(http, url))[1].decode()

        await until(shown)
