"""Issue 15: growth at 1×/10×/100× applications, cached endpoints and 2 processes vs bare Tornado, mixed traffic.

    .venv/bin/python -m bench flat                 # 1,000 / 10,000 / 100,000 applications (minutes: 100,000
                                                   # documents go in over the wire in batches of 1,000)
    .venv/bin/python -m bench flat --quick         # small sizes and short runs: a smoke test, in seconds
    .venv/bin/python -m bench flat --parts growth,cached

The server is ``server.py`` in its own process(es), against an embedded database (SQLite file) the benchmark
starts; the load generator (aiohttp, closed loop) is this process; the bare Tornado JSON handler baseline runs
in its own process(es) too, in the same run. Applications are generated with ``insert_many`` straight into
the database (one resident always has exactly 5 of them, so "a resident's applications" compares like with
like), with the day counts (``daily_counts``) they imply.

Parts (each prints its baseline and ratio; targets from issue 15 in brackets):

* growth: median latency of one request at a time at each size, ratio largest/smallest [≤ 1.5]: kiosk home,
  item detail, a resident's applications (HTTP), the console figures of a city (``figures.dashboard``, in
  this process, over the wire to the same database)
* cached: items list, item detail, published keys, kiosk home vs the bare handler [≥ 0.7× req/s, p99 ≤ 3×]
* processes: item detail and published keys at PROCESSES=2 vs 1, and the bare handler likewise; also the
  time a second start (data present) takes to answer /readyz
* mixed: mini-program traffic (reads, certificate lists, submissions) vs bare [≥ 0.5×, p99 < 500 ms]
* cost: the server's CPU per cached request against the bare handler's (read from /proc, so the load
  generator's own CPU is not counted), and what one request log line costs through ``logging`` with the
  JSON formatter (the path before issue 15) and through the batched request log (now) [< 5 % of a request]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from bench._harness import Load, Process, drive, getter, median_ms, secrets_env, start_bare, start_server
from yiwang import activity, figures
from yiwang.boot import open_services
from yiwang.config import load_config
from yiwang.embedded import EmbeddedMongo
from yiwang.runtime import Services
from yiwang.store import Document, Store

HALL = "gz-th-center"
ITEM = "002001101000"
MOBILE = "/api/mobile/v1"
STATUSES = ("submitted", "accepted", "in_review", "approved", "delivered")
RESIDENT = "bench-resident"


def sizes(text: str) -> list[int]:
    return sorted(int(part) for part in text.split(",") if part.strip())


async def resident_token(services: Services) -> str:
    """A signed-in, real-name resident (an account and a bearer token, as after the WeChat login)."""
    from yiwang import accounts

    account_id = uuid.uuid4().hex
    await services.store["wechat_accounts"].insert_one(
        {
            "_id": account_id, "openid_index": uuid.uuid4().hex,
            "openid": services.cipher.seal(accounts.OPENID_PURPOSE, "o" + uuid.uuid4().hex[:12]),
            "level": 3, "person_index": RESIDENT, "masked_name": "测**", "masked_number": "4401**********0011",
            "number": {"masked": "4401**********0011"}, "subscriptions": {},
        }
    )  # fmt: skip
    issued = await accounts._issue_token(services, account_id, "bench-device", "resident")
    return str(issued["token"])


class Applications:
    """Writes applications in bulk up to a target count, with the day counts they imply, straight into the
    database file: the embedded server is stopped meanwhile, and an in-process mongoeco engine (with Yiwang's
    compatibility layer) takes ``insert_many`` as one bulk write (over the wire, mongoeco 4.11.0 inserts the
    documents of an ``insert`` command one at a time: 20 ms each on this machine, hours for 100,000)."""

    def __init__(self, path: Path, db_name: str, items: list[Document]) -> None:
        self.path = path
        self.db_name = db_name
        self.items = items
        self.count = 0
        self.rng = random.Random(7)
        self.now = dt.datetime.now(dt.UTC)

    def document(self, applicant: str) -> Document:
        item = self.rng.choice(self.items)
        submitted = self.now - dt.timedelta(seconds=self.rng.randrange(365 * 86400))
        return {
            "_id": uuid.uuid4().hex, "tracking_number": uuid.uuid4().hex[:16], "item": item["_id"],
            "item_name": item["name"], "department": item["department"],
            "applicant": {"index": applicant, "number": {"masked": "4401**********0011"}, "masked_name": "测**",
                          "account_id": None},
            "applicant_index": applicant, "agent": None, "authorisation": None,
            "status": self.rng.choice(STATUSES), "form": "", "materials": [], "history": [],
            "created_at": submitted, "updated_at": submitted, "submitted_at": submitted, "completed_at": None,
            "generated": True,
        }  # fmt: skip

    def grow_to(self, target: int) -> float:
        """Call with the embedded server stopped (the file has one writer at a time)."""
        from mongoeco import MongoClient
        from mongoeco.engines.sqlite import SQLiteEngine

        from yiwang import embedded_compat

        embedded_compat.apply()
        started = time.perf_counter()
        client: Any = MongoClient(engine=SQLiteEngine(str(self.path), executor_workers=1))
        try:
            db = client[self.db_name]
            per_day: dict[str, dict[str, int]] = {}
            batch: list[Document] = []
            while self.count < target:
                doc = self.document(RESIDENT if self.count < 5 else f"r{self.count % 20011}")
                batch.append(doc)
                day = per_day.setdefault(activity.day_of(doc["submitted_at"]), {})
                day[doc["item"]] = day.get(doc["item"], 0) + 1
                self.count += 1
                if len(batch) == 1000 or self.count == target:
                    db["applications"].insert_many(batch, ordered=False)
                    batch = []
            for day, counts in per_day.items():
                update: dict[str, Any] = {"submitted": sum(counts.values())}
                update.update({f"items.{code}": n for code, n in counts.items()})
                db[activity.COLLECTION].update_one(
                    {"_id": day}, {"$inc": update, "$setOnInsert": {"day": day}}, upsert=True
                )
        finally:
            try:
                client.close()
            except Exception as exc:  # written and committed: a busy file at close loses no data
                print(f"  (closing the bulk writer: {type(exc).__name__}; the documents are committed)", flush=True)
        return time.perf_counter() - started


async def console_figures_ms(store: Store, samples: int) -> float:
    halls = {h["_id"]: h async for h in store["halls"].find({})}
    departments = {d["_id"]: d async for d in store["departments"].find({})}
    scope = figures.scope_for("city", "440100", halls, departments, {})
    end = dt.datetime.now(dt.UTC)
    period = figures.Period("30d", end - dt.timedelta(days=30), end)
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        await figures.dashboard(store, scope, period)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


class World:
    """The embedded database, the server and this process's own store, restarted around each bulk write."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.keys = secrets_env()
        self.path = tmp / "db" / "yiwang.sqlite"
        self.embedded: EmbeddedMongo | None = None
        self.server: Process | None = None
        self.services: Services | None = None
        self.env: dict[str, str] = {}
        self.database_start = 0.0

    @property
    def store(self) -> Store:
        assert self.services is not None
        return self.services.store

    @property
    def base(self) -> str:
        assert self.server is not None
        return self.server.base

    async def start(self, *, processes: int = 1) -> float:
        """Database, server (its time to /readyz is returned), then this process's services."""
        self.embedded = embedded = EmbeddedMongo(self.path)
        started = time.perf_counter()
        uri = await asyncio.to_thread(lambda: embedded.start(timeout=300))
        self.database_start = time.perf_counter() - started
        self.env = {**self.keys, "MONGODB_URI": uri, "MONGODB_DB": "bench", "DEMO_DATA": "1"}
        started = time.perf_counter()
        self.server = start_server(self.env, self.tmp / "server", processes=processes, log=self.tmp / "server.log")
        ready = time.perf_counter() - started
        config = load_config({**self.keys, "MONGODB_URI": uri, "MONGODB_DB": "bench",
                              "DATA_DIR": str(self.tmp / "bench"), "DEMO_DATA": "0"})  # fmt: skip
        self.services = await open_services(config, store=Store.connect(uri, "bench"))
        return ready

    async def stop(self) -> None:
        if self.services is not None:
            await self.services.close()
            self.services = None
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.stop)
            self.embedded = None

    async def restart_server(self, *, processes: int) -> float:
        assert self.server is not None
        self.server.stop()
        started = time.perf_counter()
        self.server = start_server(self.env, self.tmp / "server", processes=processes, log=self.tmp / "server.log")
        return time.perf_counter() - started


async def growth(args: argparse.Namespace, world: World, token: str, apps: Applications) -> None:
    print("-- growth: median of one request at a time; applications bulk-written into the database file")
    results: dict[str, list[float]] = {}
    for size in args.sizes:
        await world.stop()
        took = await asyncio.to_thread(apps.grow_to, size)
        ready = await world.start()
        base = world.base
        probes = {
            "kiosk home": getter(f"{base}/kiosk/?hall={HALL}"),
            "item detail": getter(f"{base}{MOBILE}/items/{ITEM}"),
            "a resident's applications": getter(
                f"{base}{MOBILE}/applications", {"Authorization": f"Bearer {token}"}
            ),
        }
        line = [f"{size:>8,} applications (+{took:5.1f} s to write; restart: database {world.database_start:.2f} s,"
                f" then server /readyz {ready:.2f} s)"]  # fmt: skip
        for name, probe in probes.items():
            ms = await median_ms(probe, args.samples)
            results.setdefault(name, []).append(ms)
            line.append(f"{name} {ms:7.2f} ms")
        ms = await console_figures_ms(world.store, max(3, args.samples // 10))
        results.setdefault("console figures, city, 30 days", []).append(ms)
        line.append(f"figures {ms:8.1f} ms")
        print("  " + " | ".join(line), flush=True)
    print(f"  ratio at {args.sizes[-1]:,} / at {args.sizes[0]:,} applications (target ≤ 1.5):")
    for name, values in results.items():
        print(f"    {name:<32} {values[-1] / values[0]:6.2f}×")


async def cached(args: argparse.Namespace, base: str) -> None:
    print(f"-- cached endpoints vs a bare Tornado JSON handler ({args.clients} clients, {args.seconds:g} s each)")
    bare = start_bare()
    try:
        await drive(getter(bare.base + "/bare"), 1.0, args.clients)  # warm-up
        baseline = await drive(getter(bare.base + "/bare"), args.seconds, args.clients)
    finally:
        bare.stop()
    print("  " + baseline.line("bare Tornado JSON handler"))
    for name, path in (
        ("items list", f"{MOBILE}/items"),
        ("item detail", f"{MOBILE}/items/{ITEM}"),
        ("published keys", "/api/verify/v1/keys"),
        ("kiosk home (HTML)", f"/kiosk/?hall={HALL}"),
    ):
        await drive(getter(base + path), 1.0, args.clients)
        load = await drive(getter(base + path), args.seconds, args.clients)
        print(
            "  " + load.line(name)
            + f"  → {load.rps / baseline.rps:.2f}× req/s, p99 {load.p(99) / max(baseline.p(99), 0.001):.1f}× bare"
        )  # fmt: skip


async def processes(args: argparse.Namespace, world: World) -> None:
    print(f"-- processes: 2 vs 1 on cached endpoints ({args.clients} clients, {args.seconds:g} s each)")
    paths = {"item detail": f"{MOBILE}/items/{ITEM}", "published keys": "/api/verify/v1/keys"}
    single = {name: await drive(getter(world.base + path), args.seconds, args.clients) for name, path in paths.items()}
    ready = await world.restart_server(processes=2)
    print(f"  PROCESSES=2 start with the data present: /readyz after {ready:.2f} s")
    for name, path in paths.items():
        await drive(getter(world.base + path), 1.0, args.clients)
        load = await drive(getter(world.base + path), args.seconds, args.clients)
        print("  " + single[name].line(f"{name}, 1 process"))
        print("  " + load.line(f"{name}, 2 processes") + f"  → {load.rps / single[name].rps:.2f}×")
    for count in (1, 2):
        bare = start_bare(count)
        try:
            await drive(getter(bare.base + "/bare"), 1.0, args.clients)
            print("  " + (await drive(getter(bare.base + "/bare"), args.seconds, args.clients)).line(
                f"bare Tornado, {count} process{'es' if count > 1 else ''}"))  # fmt: skip
        finally:
            bare.stop()
    ready = await world.restart_server(processes=1)
    print(f"  second start (1 process) with the data present: /readyz after {ready:.2f} s")


async def mixed(args: argparse.Namespace, base: str, services: Services, apps: Applications) -> None:
    from bench import mobile as mobile_bench
    from tests import mobile_support

    async def catalogue_present(_services: Services) -> None:
        return None  # the server seeded the whole demo catalogue

    mobile_support.load_some_catalog = catalogue_present  # type: ignore[assignment]
    users = await mobile_bench.seed(services)
    print(f"-- mixed mini-program traffic with {apps.count:,} applications ({args.clients} clients, "
          f"{args.seconds:g} s): 25% items list, 20% item detail, 25% my applications, 20% certificates, "
          "10% submissions")  # fmt: skip
    rng = random.Random(11)
    by_kind: dict[str, list[float]] = {}

    async def request(session: aiohttp.ClientSession, n: int) -> int:
        user = users[n % len(users)]
        headers = {"Authorization": f"Bearer {user['tokens'][n // len(users) % 10]}"}
        roll = rng.random()
        if roll < 0.10:
            kind = "POST /applications"
            body = {"item": mobile_bench.SS_CARD, "form": user["form"], "materials": user["materials"]}
            headers["Idempotency-Key"] = uuid.uuid4().hex
            call = session.post(base + MOBILE + "/applications", json=body, headers=headers)
        elif roll < 0.30:
            kind, call = "GET /certificates", session.get(base + MOBILE + "/certificates", headers=headers)
        elif roll < 0.55:
            kind, call = "GET /items", session.get(base + MOBILE + "/items")
        elif roll < 0.75:
            kind, call = "GET /items/{code}", session.get(base + MOBILE + f"/items/{mobile_bench.SS_CARD}")
        else:
            kind, call = "GET /applications", session.get(base + MOBILE + "/applications", headers=headers)
        t0 = time.perf_counter()
        async with call as response:
            await response.read()
            by_kind.setdefault(kind, []).append(time.perf_counter() - t0)
            return response.status

    bare = start_bare()
    try:
        await drive(getter(bare.base + "/bare"), 1.0, args.clients)
        baseline = await drive(getter(bare.base + "/bare"), args.seconds, args.clients)
    finally:
        bare.stop()
    load = await drive(request, args.seconds, args.clients)
    print("  " + baseline.line("bare Tornado JSON handler"))
    print("  " + load.line("mini-program mixed") + f"  → {load.rps / baseline.rps:.2f}× req/s")
    for kind, values in sorted(by_kind.items()):
        part = Load(0, values, 0)
        print(f"    {kind:<20} {len(values):6} requests  p50 {part.p(50):7.1f} ms  p99 {part.p(99):7.1f} ms")


def log_line_costs(samples: int = 20000) -> tuple[float, float]:
    """µs per request log line: (logging + JsonFormatter to a file, the batched RequestLines to a file)."""
    import logging

    from yiwang.logs import JsonFormatter, RequestLines

    with tempfile.TemporaryDirectory() as folder, open(Path(folder) / "log", "w", encoding="utf-8") as out:
        logger = logging.getLogger("bench.request-log")
        logger.propagate = False
        handler = logging.StreamHandler(out)
        handler.setFormatter(JsonFormatter())
        logger.handlers[:] = [handler]
        logger.setLevel(logging.INFO)
        fields = {"method": "GET", "route": r"/api/mobile/v1/items/([0-9]{12})", "status": 200,
                  "duration_ms": 0.41, "request_id": uuid.uuid4().hex, "client": "127.0.0.1"}  # fmt: skip
        t0 = time.perf_counter()
        for _ in range(samples):
            logger.info("request", extra={"fields": fields})  # before: a record, a redaction pass, a write
        before = (time.perf_counter() - t0) / samples * 1e6
        lines = RequestLines(out)
        t0 = time.perf_counter()
        for _ in range(samples):
            lines.add(**fields)  # type: ignore[arg-type]
        lines.flush()
        now = (time.perf_counter() - t0) / samples * 1e6
        logger.handlers.clear()
    return before, now


async def cost(args: argparse.Namespace, base: str, server_pid: int) -> None:
    from bench.mobile import process_cpu_seconds

    print(f"-- cost per request: server CPU from /proc ({args.clients} clients, {args.seconds:g} s each)")
    bare = start_bare()
    try:
        targets = [("bare Tornado JSON handler", bare.base + "/bare", bare.process.pid)] + [
            (name, base + path, server_pid)
            for name, path in (("item detail", f"{MOBILE}/items/{ITEM}"), ("published keys", "/api/verify/v1/keys"))
        ]
        per_request: dict[str, float] = {}
        for name, url, pid in targets:
            await drive(getter(url), 1.0, args.clients)
            before = process_cpu_seconds(pid)
            load = await drive(getter(url), args.seconds, args.clients)
            per_request[name] = (process_cpu_seconds(pid) - before) / max(1, len(load.latencies)) * 1e6
            print(f"  {name:<32} {per_request[name]:7.0f} µs of server CPU a request  ({load.rps:.0f} req/s)")
    finally:
        bare.stop()
    before, now = log_line_costs()
    cached_us = per_request["item detail"]
    print(f"  request log line: logging + JsonFormatter {before:.1f} µs, batched RequestLines {now:.1f} µs "
          f"= {100 * now / cached_us:.1f} % of a cached request (was {100 * before / cached_us:.1f} %)")  # fmt: skip


async def run(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="yiwang-bench-flat-"))
    world = World(tmp)
    try:
        ready = await world.start()
        print(f"first start (seeds the demo data): /readyz after {ready:.2f} s", flush=True)
        assert world.services is not None
        token = await resident_token(world.services)
        items = [i async for i in world.store["items"].find({}, {"name": 1, "department": 1})]
        apps = Applications(world.path, "bench", items)
        if "growth" in args.parts:
            await growth(args, world, token, apps)
        else:
            await world.stop()
            await asyncio.to_thread(apps.grow_to, args.sizes[-1])
            await world.start()
        if "cached" in args.parts:
            await cached(args, world.base)
        if "processes" in args.parts:
            await processes(args, world)
        if "cost" in args.parts:
            assert world.server is not None
            await cost(args, world.base, world.server.process.pid)
        if "mixed" in args.parts:
            assert world.services is not None
            await mixed(args, world.base, world.services, apps)
    finally:
        await world.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, short runs (smoke test)")
    parser.add_argument("--sizes", type=sizes, default=None, help="applications, e.g. 1000,10000,100000")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per load run (default 8)")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (default 50)")
    parser.add_argument("--samples", type=int, default=None, help="requests per growth median (default 60)")
    parser.add_argument("--parts", default="growth,cached,processes,cost,mixed", help="which parts, comma-separated")
    args = parser.parse_args()
    args.parts = set(args.parts.split(","))
    if args.quick:
        args.sizes = args.sizes or [20, 200]
        args.seconds = args.seconds or 0.5
        args.samples = args.samples or 3
        args.clients = min(args.clients, 10)
    args.sizes = args.sizes or [1000, 10000, 100000]
    args.seconds = args.seconds or 8.0
    args.samples = args.samples or 60
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
