"""The store owns the MongoDB client, the collection names and the indexes.

It works the same against a real MongoDB (≥ 7) and the embedded mongoeco wire
server. Rules that keep both happy (see docs/embedded-db.md):
string ``_id`` values (numeric ids make the embedded engine scan), unique
indexes on string fields, no change streams, no capped collections.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from yiwang.metrics import listen_to_database

log = logging.getLogger(__name__)

Document = dict[str, Any]

# Every collection, with the indexes it needs. Nothing else creates indexes.
INDEXES: Mapping[str, Sequence[IndexModel]] = {
    "meta": [],
    "audit": [
        IndexModel([("seq", ASCENDING)], unique=True, name="seq_unique"),
        IndexModel([("subject", ASCENDING), ("at", DESCENDING)], name="subject_at"),
        IndexModel([("actor.id", ASCENDING), ("at", DESCENDING)], name="actor_at"),
    ],
    # catalogue
    "departments": [],
    "certificate_types": [],
    "items": [IndexModel([("department", ASCENDING)], name="department")],
    "item_versions": [IndexModel([("code", ASCENDING), ("version", DESCENDING)], name="code_version")],
    "scenarios": [],
    "scenario_drafts": [],
    "scenario_versions": [IndexModel([("code", ASCENDING), ("version", DESCENDING)], name="code_version")],
    "halls": [IndexModel([("city", ASCENDING)], name="city")],
    # people
    "residents": [IndexModel([("number.index", ASCENDING)], unique=True, name="number_index_unique")],
    "companies": [IndexModel([("number.index", ASCENDING)], unique=True, name="number_index_unique")],
    # e-certificates
    "certificates": [
        IndexModel([("holder.index", ASCENDING), ("status", ASCENDING)], name="holder_status"),
        IndexModel([("identifier", ASCENDING)], unique=True, name="identifier_unique"),
        IndexModel([("type", ASCENDING), ("issuer", ASCENDING), ("number", ASCENDING)], name="type_issuer_number"),
        IndexModel([("status", ASCENDING), ("valid_until", ASCENDING)], name="status_valid_until"),
        # one valid certificate per holder for the types the law allows once (yiwang.certificates._store_new)
        IndexModel([("live_slot", ASCENDING)], unique=True, sparse=True, name="live_slot_unique"),
    ],
    "certificate_history": [IndexModel([("certificate_id", ASCENDING), ("version", ASCENDING)], name="cert_version")],
    "certificate_access": [IndexModel([("certificate_id", ASCENDING), ("at", DESCENDING)], name="cert_at")],
    "certificate_copies": [
        IndexModel([("certificate_id", ASCENDING), ("made_at", DESCENDING)], name="cert_made"),
        IndexModel([("made_at", ASCENDING)], name="made_at"),  # console figures
        IndexModel([("holder_index", ASCENDING), ("made_at", DESCENDING)], name="holder_made"),  # 存到手机 wallet
    ],
    "display_codes": [IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=3600, name="expires_ttl")],
    "consent_sessions": [IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=3600, name="expires_ttl")],
    "issuer_nonces": [IndexModel([("at", ASCENDING)], expireAfterSeconds=900, name="at_ttl")],
    "issuer_requests": [],
    "signing_keys": [
        IndexModel([("kid", ASCENDING)], name="kid"),
        IndexModel([("department", ASCENDING)], name="department"),
    ],
    "certificate_serials": [],
    "department_credentials": [IndexModel([("department", ASCENDING)], name="department")],
    # mobile
    "wechat_accounts": [
        IndexModel([("person_index", ASCENDING)], name="person_index"),
        IndexModel([("openid_index", ASCENDING)], unique=True, name="openid_index_unique"),
    ],
    "mobile_tokens": [
        IndexModel([("account_id", ASCENDING)], name="account"),
        IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expires_ttl"),
    ],
    "wechat_access_tokens": [],
    # 改绑码 shown by a kiosk after the ID card was read (yiwang.rebinding); gone an hour after expiry
    "rebind_codes": [
        IndexModel([("person_index", ASCENDING)], name="person_index"),
        IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=3600, name="expires_ttl"),
    ],
    "applications": [
        IndexModel([("applicant.index", ASCENDING), ("updated_at", DESCENDING)], name="applicant_updated"),
        IndexModel([("applicant_index", ASCENDING)], name="applicant_index"),  # the resident's list (flat)
        IndexModel([("item", ASCENDING), ("status", ASCENDING)], name="item_status"),
        IndexModel([("agent", ASCENDING), ("updated_at", DESCENDING)], name="agent_updated"),
        IndexModel([("submitted_at", ASCENDING)], name="submitted_at"),
    ],
    "daily_counts": [],  # per local day, maintained on submission (yiwang.activity); read by _id
    "idempotency_keys": [IndexModel([("created_at", ASCENDING)], expireAfterSeconds=86400, name="created_ttl")],
    "uploads": [IndexModel([("owner", ASCENDING)], name="owner")],
    # blind-index key rotation (yiwang.keyrotation): old index → new, for reading the audit trail across it
    "index_aliases": [],
    # uploads' sealed bytes (yiwang.filestore): read by _id "<files_id>.<n>"; files_id for clean-ups
    "file_chunks": [IndexModel([("files_id", ASCENDING)], name="files_id")],
    "notifications": [IndexModel([("status", ASCENDING), ("next_attempt_at", ASCENDING)], name="due")],
    "expiry_reminders": [],
    "evaluations": [IndexModel([("created_at", ASCENDING)], name="created_at")],  # console figures
    "rectifications": [],
    "complaints": [
        IndexModel([("owner", ASCENDING)], name="owner"),
        IndexModel([("created_at", ASCENDING)], name="created_at"),  # console figures
        IndexModel([("city", ASCENDING), ("created_at", ASCENDING)], name="city_created"),  # figures by place
        IndexModel([("department", ASCENDING), ("created_at", ASCENDING)], name="department_created"),
        IndexModel([("hall", ASCENDING), ("created_at", ASCENDING)], name="hall_created"),
    ],
    "agents": [],
    "authorisations": [IndexModel([("agent", ASCENDING), ("resident_index", ASCENDING)], name="agent_resident")],
    # kiosks and devices
    "devices": [IndexModel([("hall", ASCENDING)], name="hall"), IndexModel([("city", ASCENDING)], name="city")],
    "enrolment_codes": [IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expires_ttl")],
    "device_messages": [
        IndexModel([("created_at", ASCENDING)], name="created_at"),
        IndexModel([("seq", ASCENDING)], unique=True, name="seq_unique"),
        IndexModel([("audience", ASCENDING), ("seq", ASCENDING)], name="audience_seq"),
    ],
    "device_deliveries": [IndexModel([("message_id", ASCENDING)], name="message")],
    "kiosk_sessions": [IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expires_ttl")],
    "kiosk_agent_sign_ins": [
        IndexModel([("token_digest", ASCENDING)], unique=True, name="token_unique"),
        IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=600, name="expires_ttl"),
    ],
    "copy_pickups": [  # 存到手机 (yiwang/copy_pickup.py); expired codes answer 410 for an hour, then go
        IndexModel([("token_digest", ASCENDING)], unique=True, name="token_unique"),
        IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=3600, name="expires_ttl"),
    ],
    "staff_calls": [  # 呼叫工作人员 (yiwang/staff_calls.py); kept a day
        IndexModel([("hall", ASCENDING), ("status", ASCENDING), ("created_at", DESCENDING)], name="hall_status"),
        IndexModel([("device", ASCENDING), ("status", ASCENDING)], name="device_status"),
        IndexModel([("created_at", ASCENDING)], expireAfterSeconds=86400, name="created_ttl"),
    ],
    "kiosk_events": [
        IndexModel([("hall", ASCENDING), ("at", DESCENDING)], name="hall_at"),
        IndexModel([("at", ASCENDING)], name="at"),  # console figures (whole city / province)
    ],
    # console
    "console_users": [IndexModel([("username", ASCENDING)], unique=True, name="username_unique")],
    "console_sessions": [IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expires_ttl")],
    "work_calendars": [],  # entered holiday schedules, one per year (yiwang.workcalendar)
    # images' content-security checks by trace_id → upload, and WeChat's pushed verdicts (yiwang.uploads), 30 days
    "media_checks": [IndexModel([("at", ASCENDING)], expireAfterSeconds=30 * 86400, name="at_ttl")],
    # yiwang.throttle: one counter per (limit, key digest); ended windows expire
    "throttles": [IndexModel([("window_end", ASCENDING)], expireAfterSeconds=0, name="window_end_ttl")],
    "content": [
        IndexModel([("kind", ASCENDING), ("status", ASCENDING)], name="kind_status"),
        IndexModel([("updated_at", DESCENDING)], name="updated_at"),
    ],
    "content_versions": [IndexModel([("content_id", ASCENDING), ("version", DESCENDING)], name="content_version")],
    "content_images": [],  # notice/banner images, re-encoded (yiwang.content_images)
    # 一窗 queue (yiwang.hall_queue)
    "queue_halls": [],
    "queue_counters": [],
    "queue_tickets": [
        IndexModel([("hall", ASCENDING), ("day", ASCENDING), ("status", ASCENDING), ("category", ASCENDING),
                    ("priority", DESCENDING), ("taken_at", ASCENDING)], name="hall_day_status_order"),
        IndexModel([("hall", ASCENDING), ("day", ASCENDING), ("window", ASCENDING), ("status", ASCENDING)],
                   name="hall_day_window"),
        IndexModel([("hall", ASCENDING), ("day", ASCENDING), ("number", ASCENDING)], unique=True,
                   name="hall_day_number_unique"),
        IndexModel([("account_id", ASCENDING), ("day", ASCENDING)], name="account_day"),
        IndexModel([("hall", ASCENDING), ("category", ASCENDING), ("status", ASCENDING), ("done_at", DESCENDING)],
                   name="hall_category_done"),
    ],
    "queue_calls": [
        IndexModel([("hall", ASCENDING), ("seq", DESCENDING)], unique=True, name="hall_seq_unique"),
        IndexModel([("hall", ASCENDING), ("at", ASCENDING)], name="hall_at"),
        IndexModel([("at", ASCENDING)], expireAfterSeconds=30 * 86400, name="at_ttl"),
    ],
    "queue_appointments": [IndexModel([("account_id", ASCENDING), ("day", ASCENDING)], name="account_day")],
    "queue_slots": [],
}

class Store:
    """One database handle shared by the whole process."""

    def __init__(self, client: AsyncMongoClient[Document], db_name: str) -> None:
        self.client = client
        self.db: AsyncDatabase[Document] = client[db_name]

    @classmethod
    def connect(cls, uri: str, db_name: str) -> Store:
        listen_to_database()  # command latency for /metrics: registered before the first client exists
        client: AsyncMongoClient[Document] = AsyncMongoClient(
            uri, tz_aware=True, serverSelectionTimeoutMS=5000, connectTimeoutMS=5000, appname="yiwang"
        )
        return cls(client, db_name)

    def __getitem__(self, name: str) -> AsyncCollection[Document]:
        if name not in INDEXES:
            raise KeyError(f"unknown collection {name!r}: declare it in yiwang.store.INDEXES")
        return self.db[name]

    async def ensure_indexes(self) -> None:
        """Create every declared index; idempotent, safe on every start."""
        for name, models in INDEXES.items():
            if models:
                await self.db[name].create_indexes(list(models))

    async def prepare(self) -> None:
        """Indexes now; the data's migrations are the boot's (``yiwang.migrations``)."""
        await self.ensure_indexes()

    async def ping(self) -> bool:
        try:
            await self.client.admin.command("ping")
        except PyMongoError:
            return False
        return True

    async def close(self) -> None:
        await self.client.close()


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
