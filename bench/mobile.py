"""Mobile API under mixed traffic, against a bare Tornado JSON handler measured
in the same run:

* 200 concurrent clients; 70% reads (hot items, item detail, my applications),
  20% certificate list, 10% submissions (form + certificate reference + upload,
  each with its own Idempotency-Key)
* prints throughput (requests/s), its ratio to the bare handler, p50 and p99

    .venv/bin/python -m bench mobile        (or python -m bench.mobile)
    BENCH_SECONDS=20 BENCH_CLIENTS=200 …    to change the run
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import tornado.web
from pymongo import AsyncMongoClient, monitoring
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from web.app import make_app
from yiwang import accounts, certificates, people
from yiwang.boot import open_services
from yiwang.config import load_config
from yiwang.embedded import EmbeddedMongo
from yiwang.identity import OneNumber, number_index, protect_number
from yiwang.runtime import Services
from yiwang.store import Store

CLIENTS = int(os.environ.get("BENCH_CLIENTS", "200"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
PEOPLE = 20
PREFIX = "/api/mobile/v1"
SS_CARD = "002008101001"


class CommandCounter(monitoring.CommandListener):
    """Counts the database commands (round trips) the server sends."""

    def __init__(self) -> None:
        self.count = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.count += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


class Bare(tornado.web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish('{"items":[{"code":"002008101001","name":"社会保障卡申领"}]}')


def serve(app: tornado.web.Application) -> tuple[HTTPServer, str]:
    sock, port = bind_unused_port()
    server = HTTPServer(app)
    server.add_sockets([sock])
    return server, f"http://127.0.0.1:{port}"


Request = Callable[[aiohttp.ClientSession, int], Awaitable[int]]


async def drive(request: Request, seconds: float, clients: int) -> tuple[float, list[float], int]:
    """Closed loop: each client sends its next request when the last one is answered."""
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client(n: int) -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                status = await request(session, n)
                latencies.append(time.perf_counter() - t0)
                if status >= 500:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(client(n) for n in range(clients)))
        elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, latencies, errors


def process_cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process (Linux /proc; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000 if len(values) > 1 else 0.0


async def seed(services: Services) -> list[dict[str, Any]]:
    """PEOPLE residents, each with an e-ID card, a bound account, an upload, 10 device tokens."""
    from tests.fixtures.certs import id_card_body
    from tests.mobile_support import load_some_catalog, ss_form
    from tests.support.miniprogram import jpeg_bytes
    from yiwang.uploads import store_upload

    await load_some_catalog(services)
    rng = random.Random(7)
    users = []
    for n in range(PEOPLE):
        first17 = f"440106199{rng.randrange(0, 9)}0{rng.randrange(1, 9)}1{rng.randrange(0, 9)}{n + 1:03d}"
        from yiwang.identity import id_check_character

        number = first17 + id_check_character(first17)
        name = "测试" + "甲乙丙丁戊己庚辛壬癸"[n % 10] + "子丑寅卯辰巳午未申酉"[n // 10 % 10]
        await people.register_resident(services.store, services.cipher, number, name)
        cert = await certificates.issue(
            services, "gz-psb", id_card_body(number, name), idempotency_key=uuid.uuid4().hex
        )
        one = OneNumber("person", number)
        index = number_index(services.cipher, one)
        account_id = uuid.uuid4().hex
        await services.store["wechat_accounts"].insert_one(
            {
                "_id": account_id,
                "openid_index": secrets.token_hex(16),
                "openid": services.cipher.seal(accounts.OPENID_PURPOSE, "o" + secrets.token_hex(8)),
                "level": 3,
                "person_index": index,
                "masked_name": name[0] + "**",
                "masked_number": one.masked,
                "number": protect_number(services.cipher, one),
                "subscriptions": {},
            }
        )
        tokens = [
            (await accounts._issue_token(services, account_id, f"device-{d}", "resident"))["token"] for d in range(10)
        ]
        from yiwang.audit import Actor

        upload = await store_upload(services, index, Actor("resident", account_id), jpeg_bytes())
        users.append(
            {
                "tokens": tokens,
                "form": ss_form(name, number),
                "materials": [
                    {"material": "applicant_id_card", "certificate": cert.certificate["_id"]},
                    {"material": "photo", "upload": upload["id"]},
                ],
            }
        )
    return users


async def run() -> None:
    embedded = EmbeddedMongo(None)
    uri = await asyncio.to_thread(embedded.start)
    config = load_config(
        {
            "DATA_DIR": "/tmp/yiwang-bench-mobile",
            "PII_KEY": secrets.token_hex(16),
            "BLIND_INDEX_KEY": secrets.token_hex(32),
            "COOKIE_SECRET": secrets.token_hex(16),
            "WECHAT_SECRET": secrets.token_hex(16),
            "WECHAT_API_BASE": "http://127.0.0.1:9",  # nobody subscribes in the bench: never called
            "DEMO_DATA": "0",
        }
    )
    commands = CommandCounter()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True, event_listeners=[commands])
    store = Store(client, "bench_mobile")
    services = await open_services(config, store=store)
    try:
        users = await seed(services)
        bare_server, bare_url = serve(tornado.web.Application([(r"/bare", Bare)]))
        app_server, url = serve(make_app(services))

        async def bare(session: aiohttp.ClientSession, n: int) -> int:
            async with session.get(bare_url + "/bare") as response:
                await response.read()
                return response.status

        rng = random.Random(11)
        by_kind: dict[str, list[float]] = {}

        async def mixed(session: aiohttp.ClientSession, n: int) -> int:
            user = users[n % len(users)]
            headers = {"Authorization": f"Bearer {user['tokens'][n // len(users) % 10]}"}
            roll = rng.random()
            if roll < 0.10:
                kind = "POST /applications"
                body = {"item": SS_CARD, "form": user["form"], "materials": user["materials"]}
                headers["Idempotency-Key"] = uuid.uuid4().hex
                call = session.post(url + PREFIX + "/applications", json=body, headers=headers)
            elif roll < 0.30:
                kind = "GET /certificates"
                call = session.get(url + PREFIX + "/certificates", headers=headers)
            elif roll < 0.55:
                kind = "GET /items"
                call = session.get(url + PREFIX + "/items")
            elif roll < 0.75:
                kind = "GET /items/{code}"
                call = session.get(url + PREFIX + f"/items/{SS_CARD}")
            else:
                kind = "GET /applications"
                call = session.get(url + PREFIX + "/applications", headers=headers)
            t0 = time.perf_counter()
            async with call as response:
                await response.read()
                by_kind.setdefault(kind, []).append(time.perf_counter() - t0)
                return response.status

        await drive(bare, 1.0, CLIENTS)  # warm-up
        base_rps, base_lat, _ = await drive(bare, SECONDS / 2, CLIENTS)
        commands.count = 0
        db_cpu = process_cpu_seconds(embedded.pid)
        rps, lat, errors = await drive(mixed, SECONDS, CLIENTS)
        per_request = commands.count / max(1, len(lat))
        db_ms = (process_cpu_seconds(embedded.pid) - db_cpu) * 1000 / max(1, len(lat))
        bare_server.stop()
        app_server.stop()
        print(f"clients {CLIENTS}, {SECONDS:.0f} s mixed traffic (70% reads, 20% certificates, 10% submissions)")
        base_p50, base_p99 = p(base_lat, 50), p(base_lat, 99)
        print(f"bare Tornado JSON handler: {base_rps:9.1f} req/s  p50 {base_p50:7.1f} ms  p99 {base_p99:7.1f} ms")
        print(f"mobile API mixed:          {rps:9.1f} req/s  p50 {p(lat, 50):7.1f} ms  p99 {p(lat, 99):7.1f} ms")
        print(f"throughput ratio mobile/bare: {rps / base_rps:.3f}   server errors: {errors}")
        print(f"database commands per request: {per_request:.2f} (all kinds, background jobs included)")
        print(f"embedded database CPU per request: {db_ms:.2f} ms (less sensitive to other load than req/s)")
        for kind, values in sorted(by_kind.items()):
            print(f"  {kind:20} {len(values):6} requests  p50 {p(values, 50):7.1f} ms  p99 {p(values, 99):7.1f} ms")
        print(end="", flush=True)
    finally:
        await services.close(close_store=True)
        await asyncio.to_thread(embedded.stop)


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    main()
