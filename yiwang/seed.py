"""Demo data: loaded from readable files in data/ on start, idempotent.

A start with the demo data already in place does not load it again: :func:`ensure_demo_data` compares the
seed version stored in ``meta`` (a digest of the files in data/ and of ``SEED_FORMAT``) with the files', and
runs the loaders (which only add what is missing and keep what the console edited) when they differ.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from yiwang.agents import load_demo_agents
from yiwang.catalog import load_catalog_files
from yiwang.certificates import load_demo_certificates
from yiwang.console_accounts import load_demo_console_users
from yiwang.hall_queue import load_demo_queue
from yiwang.people import load_demo_people

if TYPE_CHECKING:
    from yiwang.runtime import Services

log = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
SEED_VERSION_ID = "seed_version"
SEED_FORMAT = 1  # raise when a loader starts writing something new from the same files


def seed_version(data_dir: Path = DATA_DIR) -> str:
    """What the demo data would be loaded from: a digest of every file under data/ and of the loaders' format."""
    digest = hashlib.sha256(f"format {SEED_FORMAT}\n".encode())
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(data_dir)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


async def ensure_demo_data(services: Services) -> bool:
    """Load the demo data unless this version of it is already in the database; True when it loaded."""
    meta = services.store["meta"]
    wanted = seed_version()
    present = await meta.find_one({"_id": SEED_VERSION_ID})
    if present is not None and present.get("version") == wanted:
        log.info("demo data present", extra={"fields": {"seed_version": wanted[:12]}})
        return False
    await load_demo_data(services)
    await meta.replace_one({"_id": SEED_VERSION_ID}, {"_id": SEED_VERSION_ID, "version": wanted}, upsert=True)
    return True


async def load_demo_data(services: Services) -> None:
    """Each concept loads its own demo files; every loader upserts by code."""
    await load_catalog_files(services.store)
    await load_demo_people(services.store, services.cipher)
    services.catalog.invalidate()
    await load_demo_certificates(services)
    await load_demo_agents(services)
    await load_demo_console_users(services)
    await load_demo_queue(services)
    log.info("demo data loaded")
