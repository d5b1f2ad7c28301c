"""A second start with the demo data present does not seed it again (issue 15: start-up stays short as the
data grows); a change to the files in data/ does."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from yiwang import seed
from yiwang.boot import open_services
from yiwang.config import Config
from yiwang.store import Store


async def markers(store: Store) -> dict[str, Any]:
    """What a re-seed would touch: the items' update markers, the catalogue version, the people count."""
    items = {doc["_id"]: doc.get("updated_at") async for doc in store["items"].find({}, {"updated_at": 1})}
    meta = {doc["_id"]: doc async for doc in store["meta"].find({})}
    return {"items": items, "catalog": meta.get("catalog_version"), "seed": meta.get(seed.SEED_VERSION_ID)}


async def test_a_second_start_with_the_data_present_does_not_rewrite_the_seed(config: Config, store: Store) -> None:
    demo = dataclasses.replace(config, demo_data=True)
    first = await open_services(demo, store=store)
    await first.close(close_store=False)
    before = await markers(store)
    assert before["items"] and before["seed"]["version"] == seed.seed_version()

    second = await open_services(demo, store=store)
    await second.close(close_store=False)
    assert await markers(store) == before


async def test_changed_data_files_are_seeded_on_the_next_start(
    config: Config, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    demo = dataclasses.replace(config, demo_data=True)
    first = await open_services(demo, store=store)
    await first.close(close_store=False)
    monkeypatch.setattr(seed, "SEED_FORMAT", seed.SEED_FORMAT + 1)  # as if a loader or a file had changed
    second = await open_services(demo, store=store)
    await second.close(close_store=False)
    assert (await store["meta"].find_one({"_id": seed.SEED_VERSION_ID}))["version"] == seed.seed_version()
