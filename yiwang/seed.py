"""Demo data: loaded from readable files in data/ on start, idempotent."""

from __future__ import annotations

import logging
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
