"""Start-up and shutdown of the process's shared resources, in named steps
that mirror each other: database, store, crypto, offloader, demo data.

``server.py`` and the tests both use :func:`open_services` / ``close``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from yiwang.audit_anchor import AuditWatch, open_watch
from yiwang.blocking import Offloader
from yiwang.catalog import Catalog
from yiwang.config import Config
from yiwang.crypto import FieldCipher
from yiwang.embedded import EmbeddedMongo
from yiwang.store import Store

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Everything a request may need, built once per process."""

    config: Config
    store: Store
    cipher: FieldCipher
    offload: Offloader
    catalog: Catalog
    embedded: EmbeddedMongo | None = None
    audit: AuditWatch | None = None  # verifies the audit trail at start-up and on schedule
    # Per-concept long-lived objects (caches, clients, channels), keyed by concept.
    extras: dict[str, Any] = field(default_factory=dict)

    async def close(self, *, close_store: bool = True) -> None:
        if self.audit is not None:
            await self.audit.aclose()
        await self.catalog.aclose()
        for name, extra in reversed(list(self.extras.items())):
            closer = getattr(extra, "aclose", None)
            if closer is not None:
                try:
                    await closer()
                except Exception:
                    log.exception("close failed", extra={"fields": {"resource": name}})
        if close_store:
            await self.store.close()
        self.offload.shutdown()
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.stop)


def leave_address(config: Config, uri: str) -> None:
    """Where the embedded database listens, for ``python -m yiwang.admin`` while the server runs (0600)."""
    path = config.data_dir / "embedded.uri"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(uri + "\n")


async def open_services(config: Config, *, store: Store | None = None) -> Services:
    embedded = None
    watch: AuditWatch | None = None
    if store is None:
        uri = config.mongodb_uri
        if not uri:
            path = config.data_dir / "yiwang.sqlite" if config.embedded_engine == "sqlite" else None
            embedded = EmbeddedMongo(path)
            uri = await asyncio.to_thread(embedded.start)
            leave_address(config, uri)
            log.info("embedded database started", extra={"fields": {"engine": config.embedded_engine}})
        store = Store.connect(uri, config.mongodb_db)
    try:
        await store.prepare()
        services = Services(
            config=config,
            store=store,
            cipher=FieldCipher(config.pii_key, config.blind_index_key, config.pii_keys_previous),
            offload=Offloader(config.workers),
            catalog=Catalog(store),
            embedded=embedded,
        )
        # Kiosks redeem display codes and hold consent sessions with their device credential.
        from yiwang import devices

        services.extras["redeemer_authenticators"] = [devices.redeemer_authenticator]
        services.audit = watch = await open_watch(
            store, config.audit_key, config.audit_checkpoints, config.audit_verify_seconds, services.offload.run
        )
        # Entered holiday schedules apply before the first deadline is computed.
        from yiwang.workcalendar import CalendarKeeper

        keeper = services.extras["work_calendar"] = CalendarKeeper(store)
        await keeper.start()
        if config.pii_keys_previous:  # a PII key rotation is under way: re-seal in the background
            from yiwang.keyrotation import Resealer

            resealer = services.extras["resealer"] = Resealer(store, services.cipher)
            resealer.start()
        if config.demo_data:
            from yiwang.seed import ensure_demo_data

            await ensure_demo_data(services)
    except BaseException:
        if watch is not None:
            await watch.aclose()
        await store.close()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
        raise
    return services
