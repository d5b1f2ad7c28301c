"""The embedded database's costs against collection size: single inserts, indexed reads, short finds.

    python -m bench embedded [--sizes 1000,100000] [--samples 200] [--engine sqlite|memory]

Builds one collection to each size with bulk inserts (the generator), then times single-document inserts
with string ids (what the application does), `find_one` by an indexed field and a `find` of the 5 documents
sharing a value of that field (the multi-document read path, which opens a reader). The baseline is the smallest size,
measured in the same run; the bar is insert cost at the largest size ≤ 2× the smallest.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from yiwang.embedded import EmbeddedMongo


def _doc(i: int) -> dict[str, Any]:
    # `resident` matches 5 documents at any size, so a short find returns the same amount of data.
    return {"_id": f"a{i:08d}", "item": f"item{i % 50}", "resident": f"r{i // 5}", "state": "submitted", "n": i}


async def _median_ms(samples: int, op: Any) -> float:
    times = []
    for k in range(samples):
        t0 = time.perf_counter()
        await op(k)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


async def _run(uri: str, sizes: list[int], samples: int) -> list[tuple[int, float, float, float]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    coll = client["bench_embedded"]["apps"]
    await coll.drop()
    await coll.create_index("resident")
    rows = []
    count = 0
    extra = 0
    for size in sizes:
        while count < size:
            batch = [_doc(i) for i in range(count, min(size, count + 2000))]
            await coll.insert_many(batch, ordered=False)
            count += len(batch)

        async def insert(k: int) -> None:
            nonlocal extra
            extra += 1
            await coll.insert_one({"_id": "x" + secrets.token_hex(8), "item": "itemx", "resident": "rx", "n": -extra})

        async def find_one(k: int) -> None:
            await coll.find_one({"resident": f"r{(k * 7) % 200}"})

        async def find_few(k: int) -> None:
            await coll.find({"resident": f"r{(k * 11) % 200}"}).to_list()

        await insert(0)  # warm the path
        ins = await _median_ms(samples, insert)
        one = await _median_ms(samples, find_one)
        rows.append((size, ins, one, await _median_ms(samples, find_few)))
        await coll.delete_many({"item": "itemx"})
    await client.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench embedded", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,100000", help="collection sizes, comma-separated, ascending")
    parser.add_argument("--samples", type=int, default=200, help="operations timed at each size")
    parser.add_argument("--engine", choices=("sqlite", "memory"), default="sqlite")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        embedded = EmbeddedMongo(Path(tmp) / "bench.sqlite" if args.engine == "sqlite" else None)
        uri = embedded.start()
        try:
            rows = asyncio.run(_run(uri, sizes, args.samples))
        finally:
            embedded.stop()
    base = rows[0]
    print(f"engine {args.engine}; medians of {args.samples} operations; baseline = {base[0]:,} documents")
    print(f"{'documents':>10} {'insert ms':>10} {'×':>6} {'find_one ms':>12} {'×':>6} {'find 5 ms':>10} {'×':>6}")
    for size, ins, one, few in rows:
        print(f"{size:>10,} {ins:>10.2f} {ins / base[1]:>6.2f} {one:>12.2f} {one / base[2]:>6.2f}", end="")
        print(f" {few:>10.2f} {few / base[3]:>6.2f}")
    ratio = rows[-1][1] / base[1]
    print(f"insert at {rows[-1][0]:,} / at {base[0]:,}: {ratio:.2f}× (bar ≤ 2×: {'pass' if ratio <= 2 else 'FAIL'})")


if __name__ == "__main__":
    main()
