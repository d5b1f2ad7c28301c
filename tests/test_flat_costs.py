"""Hot paths cost the same database commands whatever the number of applications (issue 15).

Each case seeds the demo catalogue, then 1× and 10× as many applications (bulk inserts, as a hall would have
after days and after months), serves the real app, and records the commands the request sends with PyMongo's
command monitoring. The same request must send the same commands at both sizes, and none to ``applications``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from pymongo import AsyncMongoClient, monitoring
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from web.app import make_app
from yiwang import activity, catalog, versioned
from yiwang.audit_anchor import AuditWatch
from yiwang.boot import open_services
from yiwang.config import Config
from yiwang.devices import DeviceHub
from yiwang.notifications import Sender
from yiwang.runtime import Services
from yiwang.seed import load_demo_data
from yiwang.store import Store

AUTHENTICATION = frozenset({"saslStart", "saslContinue", "authenticate"})


class Commands(monitoring.CommandListener):
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.recording = False
        self.total = 0

    async def settle(self) -> None:
        """Wait until background work started by the seeding (reminders, audit flushes) has gone quiet."""
        for _ in range(50):
            before = self.total
            await asyncio.sleep(0.3)
            if self.total == before:
                return

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.total += 1
        # A new pooled connection authenticates (the embedded database requires SCRAM): set-up, not the request's cost.
        if self.recording and event.command_name not in AUTHENTICATION:
            target = event.command.get(event.command_name)
            self.seen.append((event.command_name, target if isinstance(target, str) else ""))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def seed_applications(store: Store, n: int) -> None:
    items = ["002001101000", "002001102000", "000701201000"]
    now = dt.datetime.now(dt.UTC)
    docs = [
        {
            "_id": f"seed{i:07d}",
            "item": items[i % len(items)],
            "department": "seed",
            "applicant": {"index": f"r{i % 97}"},
            "agent": None,
            "status": "submitted",
            "submitted_at": now - dt.timedelta(hours=i % 700),
            "updated_at": now,
            "created_at": now,
        }
        for i in range(n)
    ]
    for start in range(0, n, 500):
        await store["applications"].insert_many(docs[start : start + 500])
    await activity.backfill(store)


Probe = Callable[[aiohttp.ClientSession, str], Awaitable[None]]


async def commands_for(mongo_uri: str, config: Config, applications: int, probe: Probe) -> list[tuple[str, str]]:
    listener = Commands()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri, tz_aware=True, event_listeners=[listener])
    store = Store(client, "t_" + secrets.token_hex(6))
    await store.prepare()
    services: Services = await open_services(config, store=store)
    # The process's own loops poll the database on their schedule; the request's commands are what is measured.
    for loop in (DeviceHub, Sender, AuditWatch):
        await services.resources.get(loop).aclose()
    http_server = HTTPServer(make_app(services), xheaders=True)
    sock, port = bind_unused_port()
    http_server.add_sockets([sock])
    try:
        await load_demo_data(services)
        await seed_applications(store, applications)
        activity.forget_cached(store)
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            await probe(http, base)  # warm: the catalogue snapshot is loaded once per process
            await listener.settle()
            activity.forget_cached(store)  # the counts' cache expired: the request reads them
            listener.recording = True
            await probe(http, base)
            listener.recording = False
        return listener.seen
    finally:
        http_server.stop()
        await http_server.close_all_connections()
        await services.close(close_store=False)
        await client.drop_database(store.db.name)
        await client.close()


async def get_ok(http: aiohttp.ClientSession, url: str) -> None:
    async with http.get(url) as response:
        assert response.status == 200, url
        await response.read()


@pytest.fixture
def slow_catalogue_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Version checks run in the background once a second; keep them out of the window measured."""
    monkeypatch.setattr(versioned, "REFRESH_SECONDS", 3600.0)


@pytest.mark.parametrize(
    "path",
    [
        "/kiosk/?hall=gz-th-center",
        "/kiosk/items/002001101000?hall=gz-th-center",
        "/api/mobile/v1/items",
        "/api/mobile/v1/items/002001101000",
    ],
)
async def test_the_same_request_sends_the_same_commands_at_ten_times_the_applications(
    mongo_uri: str, config: Config, slow_catalogue_checks: None, path: str
) -> None:
    async def probe(http: aiohttp.ClientSession, base: str) -> None:
        await get_ok(http, base + path)

    small = await commands_for(mongo_uri, config, 60, probe)
    large = await commands_for(mongo_uri, config, 600, probe)
    assert small == large
    assert not [c for c in large if c[1] == "applications"]


async def test_hot_items_follow_the_submissions_counted_per_day(services: Services) -> None:
    await load_demo_data(services)
    store = services.store
    day = dt.datetime.now(dt.UTC)
    for _ in range(3):
        await activity.record_submission(store, "000701201000", day)
    await activity.record_submission(store, "000701201000", day - dt.timedelta(days=40))  # outside the window
    activity.forget_cached(store)
    hot = await catalog.hot_items(store, services.catalog, limit=3)
    assert hot[0]["code"] == "000701201000"
    counts = await activity.recent_item_counts(store)
    assert counts["000701201000"] == 3


async def test_backfill_counts_applications_submitted_before_the_counts_existed(store: Store) -> None:
    await seed_applications(store, 30)
    activity.forget_cached(store)
    counts = await activity.recent_item_counts(store)
    assert sum(counts.values()) == 30


async def test_catalogue_changes_in_another_process_show_without_a_request_waiting(services: Services) -> None:
    await load_demo_data(services)
    first = await services.catalog.snapshot()
    await services.store["meta"].update_one({"_id": catalog.CATALOG_VERSION_ID}, {"$inc": {"version": 1}}, upsert=True)
    served = await services.catalog.snapshot()  # served from memory until the background check has run
    assert served is first
    assert await services.catalog.check()  # what the background task does every versioned.REFRESH_SECONDS
    assert (await services.catalog.snapshot()).version == first.version + 1


async def test_applications_from_before_the_top_level_applicant_index_are_listed_after_the_migration(
    services: Services,
) -> None:
    from yiwang import applications, migrations

    store = services.store
    now = dt.datetime.now(dt.UTC)
    old = {"_id": "old-one", "item": "002001101000", "applicant": {"index": "resident-x"}, "status": "submitted",
           "created_at": now, "updated_at": now}  # fmt: skip
    newer = {**old, "_id": "new-one", "applicant_index": "resident-x", "updated_at": now + dt.timedelta(hours=1)}
    await store["applications"].insert_many([old, newer])
    assert [d["_id"] for d in await applications.list_for_applicant(services, "resident-x")] == ["new-one"]
    await store["meta"].update_one({"_id": "schema_version"}, {"$set": {"version": 3}}, upsert=True)
    await migrations.run(store)
    listed = await applications.list_for_applicant(services, "resident-x")
    assert [d["_id"] for d in listed] == ["new-one", "old-one"]  # most recently changed first
