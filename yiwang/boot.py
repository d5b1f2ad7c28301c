"""Start-up and shutdown of a process, at the edge above the domain: the database (the
embedded one when no URI is set), the store and its migrations, then every long-lived
resource and background job, in the order they depend on each other. ``Services.close``
stops them in reverse.

``server.py``, ``python -m yiwang.admin`` and the tests all start a process with
:func:`open_services`; nothing starts on first use, so a process that serves no phone
still sends its notifications and reminders.
"""

from __future__ import annotations

import asyncio
import logging

from yiwang import devices, migrations
from yiwang.audit_anchor import AuditWatch, open_watch
from yiwang.blocking import Offloader
from yiwang.catalog import Catalog, HotLists
from yiwang.certificates import RedeemerAuthenticators
from yiwang.config import Config
from yiwang.content import PublishedContent
from yiwang.crypto import FieldCipher
from yiwang.dbwatch import DbWatch
from yiwang.departments import KeyRing, PublishedKeys
from yiwang.embedded import EmbeddedMongo
from yiwang.evaluations import send_due_invitations
from yiwang.files import private_dir, write_private
from yiwang.hall_queue import CallBoard
from yiwang.identity_verification import IdentityVerifier, build_verifier
from yiwang.keyrotation import Reindexer, Resealer
from yiwang.kiosk_events import EventRecorder
from yiwang.migrations import MigrationContext
from yiwang.notifications import Sender
from yiwang.reminders import push_expiry_reminders
from yiwang.runtime import Services
from yiwang.seed import ensure_demo_data
from yiwang.store import Store
from yiwang.wakeups import WakeUpBoard
from yiwang.wechat import WeChatGateway
from yiwang.workcalendar import CalendarKeeper

log = logging.getLogger(__name__)


def leave_address(config: Config, uri: str) -> None:
    """Where the embedded database listens, for ``python -m yiwang.admin`` while the server runs (0600)."""
    write_private(config.data_dir / "embedded.uri", uri + "\n")  # it holds the database's credentials


async def _open_store(config: Config) -> tuple[Store, EmbeddedMongo | None]:
    if config.mongodb_uri:
        return Store.connect(config.mongodb_uri, config.mongodb_db), None
    path = config.data_dir / "yiwang.sqlite" if config.embedded_engine == "sqlite" else None
    embedded = EmbeddedMongo(path)
    uri = await asyncio.to_thread(embedded.start)
    leave_address(config, uri)
    log.info("embedded database started", extra={"fields": {"engine": config.embedded_engine}})
    return Store.connect(uri, config.mongodb_db), embedded


async def start_resources(services: Services) -> None:
    """Every long-lived object of the process, started in dependency order."""
    config, store, add = services.config, services.store, services.resources.add
    if services.embedded is not None:  # restarts the embedded database's process if it dies
        add(DbWatch(services.embedded)).start()
    add(await open_watch(store, config.audit_key, config.audit_checkpoints, config.audit_verify_seconds,
                         services.offload.run), AuditWatch)  # fmt: skip
    # Entered holiday schedules apply before the first deadline is computed.
    await add(CalendarKeeper(store)).start()
    # Chosen by IDENTITY_VERIFIER, so a provider that cannot load stops the start, by name.
    add(build_verifier(config.identity_verifier, production=config.production), IdentityVerifier)
    add(KeyRing())
    add(PublishedKeys(store))
    add(PublishedContent(store))
    # Kiosks redeem display codes and hold consent sessions with their device credential.
    add(RedeemerAuthenticators([devices.redeemer_authenticator]))
    add(HotLists())
    add(WakeUpBoard())
    add(CallBoard())
    add(WeChatGateway(services))
    # After the gateway it sends through, so it stops first; its periodic jobs queue messages.
    add(Sender(services, jobs=(send_due_invitations, push_expiry_reminders))).start()
    add(EventRecorder(services))
    add(devices.CredentialCache())
    await add(devices.DeviceHub(services)).start()
    if config.pii_keys_previous:  # a PII key rotation is under way: re-seal in the background
        add(Resealer(store, services.cipher)).start()
    if config.blind_index_keys_previous:  # a blind-index key rotation is under way: re-index in the background
        add(Reindexer(store, services.cipher)).start()


async def open_services(config: Config, *, store: Store | None = None) -> Services:
    embedded = None
    private_dir(config.data_dir)
    if store is None:
        store, embedded = await _open_store(config)
    cipher = FieldCipher(
        config.pii_key, config.blind_index_key, config.pii_keys_previous, config.blind_index_keys_previous
    )
    services = Services(
        config=config, store=store, cipher=cipher, offload=Offloader(config.workers), catalog=Catalog(store),
        embedded=embedded,
    )
    try:
        await store.prepare()
        await migrations.run(store, MigrationContext(config.data_dir, cipher))
        await start_resources(services)
        if config.demo_data and not config.production:  # never in production (config refuses DEMO_DATA=1 too)
            await ensure_demo_data(services)
    except BaseException:
        await services.close()
        raise
    return services
