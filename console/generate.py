"""Synthetic figures data for one city: kiosk events, applications, evaluations,
complaints and certificate copies over a period, written in batches (insert_many).

    python -m console.generate --city 440100 --days 365 --per-day 300      # a year (use a real MongoDB)
    python -m console.generate --days 30 --per-day 50                     # small, fine on the embedded DB

MONGODB_URI / MONGODB_DB as for the server. Documents carry ``generated: true``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import uuid
from collections.abc import Mapping
from typing import Any

from yiwang.catalog import load_catalog_files
from yiwang.evaluations import REASONS
from yiwang.store import Document, Store
from yiwang.timeutil import add_working_days

BATCH = 200  # the embedded DB takes ~4 ms a document: keep each round trip well under its 5 s timeout
KIOSK_KINDS = ("session_start", "scenario_view", "scenario_checklist", "print", "item_view")
STATUSES = ("submitted", "accepted", "in_review", "approved", "delivered", "refused", "returned")


async def _flush(store: Store, name: str, batch: list[Document]) -> int:
    if batch:
        await store[name].insert_many(batch, ordered=False)
    n = len(batch)
    batch.clear()
    return n


async def generate(
    store: Store, *, city: str = "440100", days: int = 365, per_day: int = 300, seed: int = 7,
    end: dt.datetime | None = None,
) -> dict[str, int]:
    """Write the data; returns documents written per collection."""
    rng = random.Random(seed)
    if await store["halls"].count_documents({}) == 0:
        await load_catalog_files(store)
    halls = [h async for h in store["halls"].find({"city": city})]
    departments = [d["_id"] async for d in store["departments"].find({}) if str(d.get("region", ""))[:4] == city[:4]]
    items = [i async for i in store["items"].find({"department": {"$in": departments}})]
    if not halls or not items:
        raise SystemExit(f"no halls or items for city {city}")
    devices = {h["_id"]: [f"gen-{h['_id']}-{n}" for n in range(3)] for h in halls}
    end = end or dt.datetime.now(dt.UTC)
    start = end - dt.timedelta(days=days)
    written = {k: 0 for k in ("kiosk_events", "applications", "evaluations", "complaints", "certificate_copies")}
    batches: dict[str, list[Document]] = {k: [] for k in written}

    async def add(name: str, doc: Document) -> None:
        batches[name].append(doc)
        if len(batches[name]) >= BATCH:
            written[name] += await _flush(store, name, batches[name])

    for day in range(days):
        base = start + dt.timedelta(days=day)
        for _ in range(per_day * 3):  # kiosk events are the most frequent
            hall = rng.choice(halls)
            at = base + dt.timedelta(seconds=rng.randrange(86400))
            await add("kiosk_events", {"_id": uuid.uuid4().hex, "hall": hall["_id"], "kind": rng.choice(KIOSK_KINDS),
                                       "mode": None, "detail": {}, "at": at, "generated": True})  # fmt: skip
        for _ in range(per_day // 3):
            hall = rng.choice(halls)
            device = rng.choice(devices[hall["_id"]])
            await add("certificate_copies", {
                "_id": uuid.uuid4().hex, "certificate_id": uuid.uuid4().hex, "identifier": "generated",
                "holder_index": "generated", "made_at": base + dt.timedelta(seconds=rng.randrange(86400)),
                "made_by": {"kind": "kiosk", "id": device, "label": "generated"}, "purpose": "办事",
                "via": "display_code", "generated": True,
            })  # fmt: skip
        for _ in range(per_day):
            item = rng.choice(items)
            submitted = base + dt.timedelta(seconds=rng.randrange(86400))
            status = rng.choices(STATUSES, weights=(5, 8, 6, 6, 60, 5, 3))[0]
            accepted_on = (submitted + dt.timedelta(hours=8)).date()
            promised = int(item.get("promised_days") or item.get("legal_days") or 5)
            deadline: Mapping[str, Any] | None = None
            if status not in ("submitted", "returned"):
                deadline = {"date": add_working_days(accepted_on, promised).isoformat(), "working_days": promised,
                            "accepted_on": accepted_on.isoformat()}  # fmt: skip
            completed = None
            if status in ("delivered", "refused"):
                completed = submitted + dt.timedelta(days=rng.uniform(0.2, promised * 1.6 + 1))
                if completed > end:  # not finished yet
                    completed, status = None, "in_review"
            app_id = uuid.uuid4().hex
            await add("applications", {
                "_id": app_id, "item": item["_id"], "item_name": item["name"], "department": item["department"],
                "applicant": {"index": "generated"}, "applicant_index": "generated", "agent": None, "status": status,
                "deadline": deadline,
                "created_at": submitted, "updated_at": completed or submitted, "submitted_at": submitted,
                "completed_at": completed, "generated": True,
            })  # fmt: skip
            if completed is not None and rng.random() < 0.4:
                level = rng.choices((5, 4, 3, 2, 1), weights=(60, 20, 10, 6, 4))[0]
                reasons = rng.sample(REASONS, k=rng.randint(1, 2)) if level <= 2 else []
                await add("evaluations", {
                    "_id": app_id, "application": app_id, "item": item["_id"], "department": item["department"],
                    "level": level, "reasons": reasons, "indicators": {}, "comment": "", "channel": "mobile",
                    "created_at": completed, "generated": True,
                })  # fmt: skip
            if rng.random() < 0.01:
                answered = rng.random() < 0.8
                await add("complaints", {
                    "_id": uuid.uuid4().hex, "owner": "generated", "kind": "complaint", "subject": "generated",
                    "application": app_id, "city": city, "department": item["department"],
                    "status": "answered" if answered else "open",
                    "answer_due": add_working_days(submitted.date(), 10).isoformat(), "created_at": submitted,
                    "generated": True,
                })  # fmt: skip
    for name, batch in batches.items():
        written[name] += await _flush(store, name, batch)
    return written


async def _main(args: argparse.Namespace) -> None:
    from yiwang.config import load_config
    from yiwang.embedded import EmbeddedMongo

    config = load_config()
    embedded = None
    uri = config.mongodb_uri
    if not uri:
        embedded = EmbeddedMongo(config.data_dir / "yiwang.sqlite" if config.embedded_engine == "sqlite" else None)
        uri = await asyncio.to_thread(embedded.start)
    store = Store.connect(uri, config.mongodb_db)
    try:
        await store.prepare()
        written = await generate(store, city=args.city, days=args.days, per_day=args.per_day, seed=args.seed)
        print("written:", ", ".join(f"{k} {v}" for k, v in written.items()))
    finally:
        await store.close()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--city", default="440100")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--per-day", type=int, default=300, help="applications per day (kiosk events ×3)")
    parser.add_argument("--seed", type=int, default=7)
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
