"""Console dashboards: time each figures table on generated data.

    python -m bench console                 # small: 7 days × 40 applications/day (embedded DB)
    python -m bench.console --days 365 --per-day 300 --mongodb-uri mongodb://localhost:27017
                                            # a year for a city: use a real MongoDB, the target

Prints each table's time for the city and for one hall, and the ratio against a
baseline measured in the same run (an indexed count of the same period's applications).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import secrets
import time

from console.generate import generate
from yiwang import figures
from yiwang.embedded import EmbeddedMongo
from yiwang.store import Store


async def run(args: argparse.Namespace) -> None:
    embedded = None
    uri = args.mongodb_uri
    if not uri:
        embedded = EmbeddedMongo(None)
        uri = await asyncio.to_thread(embedded.start)
    store = Store.connect(uri, "bench_console_" + secrets.token_hex(4))
    try:
        await store.prepare()
        end = dt.datetime.now(dt.UTC)
        started = time.perf_counter()
        written = await generate(store, days=args.days, per_day=args.per_day, end=end)
        print(f"generated in {time.perf_counter() - started:.1f}s:", ", ".join(f"{k} {v}" for k, v in written.items()))
        halls = {h["_id"]: h async for h in store["halls"].find({})}
        departments = {d["_id"]: d async for d in store["departments"].find({})}
        period = figures.Period(f"{args.days}d", end - dt.timedelta(days=args.days), end)
        t0 = time.perf_counter()
        await store["applications"].count_documents({"submitted_at": {"$gte": period.start, "$lt": period.end}})
        baseline = (time.perf_counter() - t0) * 1000
        print(f"baseline (indexed count of applications): {baseline:.1f} ms")
        for kind, code in (("city", "440100"), ("hall", "gz-th-center")):
            scope = figures.scope_for(kind, code, halls, departments, {})
            data = await figures.dashboard(store, scope, period)
            total = sum(data["timings"].values())
            print(f"{kind} {code}: total {total:.1f} ms ({total / baseline:.1f}× baseline)")
            for name, ms in data["timings"].items():
                print(f"  {name:<13} {ms:8.1f} ms  {ms / baseline:6.1f}×")
    finally:
        await store.client.drop_database(store.db.name)
        await store.close()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--per-day", type=int, default=40)
    parser.add_argument("--mongodb-uri", default="")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
