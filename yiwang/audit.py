"""The one audit function: who did what to what, when, through which channel,
for which purpose. Entries form a keyed chain (HMAC-SM3 under ``AUDIT_KEY``,
a key that is not in the database), so an entry changed, removed or re-hashed
by someone with only database access shows when the chain is verified; signed
checkpoints outside the database (``yiwang.audit_anchor``) catch a cut tail.

A state change and its entry are one unit: the change is written together with
a *pending* entry on the changed document (:func:`intent`, one atomic write);
:func:`complete` appends it and clears the marker, and :func:`reconcile` does
the same at start-up for whatever a crash left pending.

Entries never hold personal data in clear: subjects are ids, people are
referred to by blind index or masked form.

``python -m yiwang.audit_anchor --help``: verify a trail offline.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from pymongo.errors import BulkWriteError

from yiwang.crypto import constant_time_equal, hmac_sm3, sm3_hex
from yiwang.store import Document, Store
from yiwang.timeutil import utcnow

log = logging.getLogger(__name__)

GENESIS = "0" * 64
# Version 2 entries are keyed (HMAC-SM3 over the whole entry, ``_id`` included). Entries
# without ``v`` are the unkeyed SM3 chain written before; they are accepted only before
# the first keyed entry, which binds their head (see docs/security.md, "The audit trail").
CHAIN_VERSION = 2
PENDING_FIELD = "audit_pending"
# Collections whose documents may carry pending audit entries (the state changes that
# must never lack their entry); :func:`reconcile` looks at these.
PENDING_COLLECTIONS = ("applications", "certificates", "authorisations")
CHANNELS = frozenset({"kiosk", "mobile", "window", "console", "agent", "issuer", "device", "system", "public"})


@dataclass(frozen=True)
class Actor:
    kind: str  # resident, agent, device, department, console_user, system
    id: str
    label: str = ""  # non-personal display label, e.g. "天河政务中心 1 号机"


SYSTEM = Actor("system", "system", "系统")
DUPLICATE_KEY = 11000

# The chain's head per database as this process last wrote or read it, so an
# entry costs no extra read. Another process appending first shows up as a
# duplicate seq; the head is then re-read from the database.
_heads: dict[str, tuple[int, str]] = {}
# Group commit: entries waiting to be chained, per database, and the one task per
# database that appends them. Under load, many requests' entries go out in one
# ``insert_many`` (one round trip) instead of queueing one insert each behind a lock.
_queues: dict[str, list[tuple[Document, asyncio.Future[Document]]]] = {}
_flushers: dict[str, asyncio.Task[None]] = {}
MAX_BATCH = 100
# The highest seq this process has written or seen per database: a tail cut below it shows
# even before the next checkpoint.
_highest: dict[str, int] = {}
# Pending entries this process failed to complete (database trouble), retried on schedule.
_unfinished: dict[str, dict[tuple[str, str, str], Document]] = {}


class _Key:
    value: bytes | None = None


def configure(key: bytes) -> None:
    """Set the chain key (``AUDIT_KEY``) for this process; done once at start-up."""
    if len(key) < 16:
        raise ValueError("audit key too short")
    _Key.value = key


def chain_key() -> bytes:
    if _Key.value is None:
        raise RuntimeError("audit key not configured (yiwang.audit.configure)")
    return _Key.value


def _as_utc(value: Any) -> Any:
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def entry_digest(entry: Mapping[str, Any], key: bytes) -> str:
    """The hash an entry must carry: keyed for version 2, plain SM3 for the legacy chain."""
    keyed = entry.get("v") == CHAIN_VERSION
    skip = ("hash",) if keyed else ("_id", "hash")
    body = {k: v for k, v in entry.items() if k not in skip}
    body["at"] = _as_utc(body["at"]).isoformat()
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str).encode()
    return hmac_sm3(key, canonical).hex() if keyed else sm3_hex(canonical)


def _head_key(store: Store) -> str:
    return f"{id(store.client)}:{store.db.name}"


def highest_written(store: Store) -> int:
    return _highest.get(_head_key(store), 0)


def _millis(moment: dt.datetime) -> dt.datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)  # MongoDB keeps ms


async def record(
    store: Store,
    actor: Actor,
    action: str,
    subject: str,
    *,
    channel: str,
    purpose: str = "",
    on_behalf_of: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> Document:
    """Append one entry to the chain and return it once it is written."""
    return await _append(store, intent(actor, action, subject, channel=channel, purpose=purpose,
                                       on_behalf_of=on_behalf_of, detail=detail))


def intent(
    actor: Actor,
    action: str,
    subject: str,
    *,
    channel: str,
    purpose: str = "",
    on_behalf_of: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> Document:
    """An entry to be written with a state change: store it on the changed document in the
    same write (``{PENDING_FIELD: [intent]}`` or ``$push``), then :func:`complete` it."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown audit channel {channel!r}")
    return {
        "id": uuid.uuid4().hex,
        "at": _millis(utcnow()),
        "actor": asdict(actor),
        "action": action,
        "subject": subject,
        "channel": channel,
        "purpose": purpose,
        "on_behalf_of": on_behalf_of,
        "detail": dict(detail or {}),
    }


def pending_push(pending: Document) -> dict[str, Any]:
    """The ``$push`` part that stores a pending entry with an update."""
    return {PENDING_FIELD: pending}


async def complete(store: Store, collection: str, doc_id: str, pending: Document) -> bool:
    """Append the pending entry and clear its marker. The change is already durable, so a
    failure here is logged, not raised: the schedule (or the next start-up) finishes it."""
    try:
        await _append(store, pending)
        await store[collection].update_one({"_id": doc_id}, {"$pull": {PENDING_FIELD: {"id": pending["id"]}}})
    except Exception:
        fields = {"collection": collection, "action": pending["action"]}
        log.warning("audit entry left pending", extra={"fields": fields})
        _unfinished.setdefault(_head_key(store), {})[(collection, doc_id, pending["id"])] = pending
        return False
    _unfinished.get(_head_key(store), {}).pop((collection, doc_id, pending["id"]), None)
    return True


async def settle(store: Store, collection: str, doc: Document, pending: Document) -> bool:
    """:func:`complete` for a document just written or returned, which then loses the marker
    in memory too (what the caller goes on to show)."""
    done = await complete(store, collection, doc["_id"], pending)
    left = [p for p in doc.get(PENDING_FIELD) or [] if p.get("id") != pending["id"]]
    if left:
        doc[PENDING_FIELD] = left
    else:
        doc.pop(PENDING_FIELD, None)
    return done


async def retry_unfinished(store: Store) -> int:
    """Complete the pending entries this process could not (cheap: no scan)."""
    left = _unfinished.get(_head_key(store), {})
    done = 0
    for (collection, doc_id, _), pending in list(left.items()):
        done += await complete(store, collection, doc_id, pending)
    return done


async def reconcile(store: Store) -> int:
    """Append every entry a crash left pending and clear the markers (start-up; idempotent:
    an entry already in the chain is not written twice). Returns how many were completed."""
    done = 0
    for name in PENDING_COLLECTIONS:
        cursor = store[name].find({f"{PENDING_FIELD}.id": {"$exists": True}}, projection={PENDING_FIELD: 1})
        async for doc in cursor:
            for pending in doc.get(PENDING_FIELD) or []:
                done += await complete(store, name, doc["_id"], pending)
    if done:
        log.info("audit entries completed", extra={"fields": {"count": done}})
    return done


async def _append(store: Store, pending: Mapping[str, Any]) -> Document:
    """Chain one entry (its id and time come from ``pending``) and return it once written."""
    entry: Document = {"_id": pending["id"], **{k: v for k, v in pending.items() if k != "id"}}
    entry["at"] = _as_utc(entry["at"])
    head_key = _head_key(store)
    loop = asyncio.get_running_loop()
    queue_key = f"{id(loop)}:{head_key}"
    written: asyncio.Future[Document] = loop.create_future()
    _queues.setdefault(queue_key, []).append((entry, written))
    flusher = _flushers.get(queue_key)
    if flusher is None or flusher.done():
        _flushers[queue_key] = asyncio.create_task(_flush(store, head_key, queue_key))
    # shield: a cancelled caller's entry is still written (never lost once accepted)
    return await asyncio.shield(written)


def _chain(batch: list[tuple[Document, asyncio.Future[Document]]], head: tuple[int, str]) -> list[Document]:
    """Number and link the entries onto ``head`` (in the order they were recorded)."""
    chained: list[Document] = []
    seq, prev = head
    key = chain_key()
    for entry, _ in batch:
        ordered: Document = {"_id": entry["_id"], "v": CHAIN_VERSION, "seq": seq + 1,
                             **{k: v for k, v in entry.items() if k != "_id"}}
        ordered["prev"] = prev
        ordered["hash"] = entry_digest(ordered, key)
        chained.append(ordered)
        seq, prev = ordered["seq"], ordered["hash"]
    return chained


async def _flush(store: Store, head_key: str, queue_key: str) -> None:
    """Append everything queued for this database, a batch per round trip, until the queue is empty."""
    entries = store["audit"]
    queue = _queues.setdefault(queue_key, [])
    while queue:
        batch = queue[:MAX_BATCH]
        del queue[: len(batch)]
        try:
            while batch:
                head = _heads.get(head_key)
                if head is None:
                    last = await entries.find_one({}, sort=[("seq", -1)], projection={"seq": 1, "hash": 1})
                    head = (last["seq"], last["hash"]) if last else (0, GENESIS)
                chained = _chain(batch, head)
                try:
                    await entries.insert_many(chained, ordered=True)
                    done = len(chained)
                except BulkWriteError as exc:
                    errors = exc.details.get("writeErrors") or []
                    if not errors or errors[0].get("code") != DUPLICATE_KEY:
                        raise
                    done = int(exc.details.get("nInserted", errors[0].get("index", 0)))
                for (_, written), stored in zip(batch[:done], chained[:done], strict=True):
                    if not written.done():
                        written.set_result(stored)
                if done:
                    _highest[head_key] = max(_highest.get(head_key, 0), chained[done - 1]["seq"])
                if done == len(chained):
                    _heads[head_key] = (chained[-1]["seq"], chained[-1]["hash"])
                    batch = []
                else:
                    _heads.pop(head_key, None)
                    entry, written = batch[done]
                    already = await entries.find_one({"_id": entry["_id"]})
                    if already is not None:  # this entry is in the chain already (a completed intent)
                        if not written.done():
                            written.set_result(already)
                        done += 1
                    batch = batch[done:]  # else another process appended first: chain the rest onto its entry
        except BaseException as exc:  # the database failed (or the loop is ending): those callers see it
            _heads.pop(head_key, None)
            for _, written in batch + ([] if isinstance(exc, Exception) else queue):
                if not written.done():
                    written.set_exception(exc)
            if not isinstance(exc, Exception):
                queue.clear()
                raise


@dataclass(frozen=True)
class Walk:
    """What a walk over (part of) the chain found."""

    intact: bool
    first_bad: int | None  # the first seq that does not hold (or the first missing one)
    problem: str | None  # edited | gap | downgrade | anchor_mismatch
    head_seq: int
    head_hash: str
    checked: int  # entries looked at


async def walk(store: Store, key: bytes, *, start: tuple[int, str] = (0, GENESIS),
               anchors: Mapping[int, str] | None = None) -> Walk:
    """Check the chain from ``start`` (seq, hash of an entry known good, e.g. a checkpoint's)
    to its head: each entry's keyed hash, its link to the one before, no seq missing, no
    unkeyed entry after a keyed one, and each anchor (seq → hash) met on the way."""
    seq, prev = start
    anchors = dict(anchors or {})
    if seq:
        anchors.setdefault(seq, prev)
    keyed = False
    checked = 0
    query: dict[str, Any] = {"seq": {"$gte": seq}} if seq else {}
    async for entry in store["audit"].find(query, sort=[("seq", 1)]):
        checked += 1
        number: Any = entry.get("seq")
        problem, bad = None, number
        if not isinstance(number, int):
            problem, bad = "edited", seq + 1
        elif start[0] and checked == 1:  # the anchored entry itself
            if number != seq:
                problem, bad = "gap", seq  # it is gone
            elif not constant_time_equal(str(entry.get("hash")), prev):
                problem = "anchor_mismatch"
        elif number != seq + 1:
            problem, bad = "gap", seq + 1
        elif entry.get("prev") != prev:
            problem = "edited"
        if problem is None:
            version = entry.get("v")
            if version == CHAIN_VERSION:
                keyed = True
            elif version is not None:
                problem = "edited"
            elif keyed:  # an unkeyed entry after a keyed one: someone wrote it without the key
                problem = "downgrade"
            if problem is None:
                try:
                    good = constant_time_equal(entry_digest(entry, key), str(entry.get("hash")))
                except (KeyError, AttributeError, TypeError, ValueError):
                    good = False
                if not good:
                    problem = "edited"
        if problem is None and number in anchors and not constant_time_equal(anchors[number], str(entry["hash"])):
            problem = "anchor_mismatch"
        if problem is not None:
            return Walk(False, bad, problem, seq, prev, checked)
        seq, prev = number, entry["hash"]
    if start[0] and checked == 0:  # the anchored entry is gone: the tail was cut below it
        return Walk(False, start[0], "truncated", 0, GENESIS, 0)
    return Walk(True, None, None, seq, prev, checked)


async def verify_chain(store: Store, key: bytes | None = None) -> tuple[bool, int | None]:
    """Walk the whole chain; returns (intact, first bad seq)."""
    result = await walk(store, key or chain_key())
    return result.intact, result.first_bad


async def seal_legacy(store: Store) -> Document | None:
    """If the chain's head is an unkeyed (pre-version-2) entry, append the keyed entry that
    binds it; from here on only keyed entries are accepted. Idempotent."""
    head = await store["audit"].find_one({}, sort=[("seq", -1)], projection={"seq": 1, "hash": 1, "v": 1})
    if head is None or head.get("v") == CHAIN_VERSION:
        return None
    return await record(store, SYSTEM, "audit.chain_keyed", "audit", channel="system",
                        detail={"legacy_head_seq": head["seq"], "legacy_head": head["hash"]})


async def history(store: Store, subject: str, limit: int = 100) -> list[Document]:
    cursor = store["audit"].find({"subject": subject}, sort=[("seq", -1)], limit=limit)
    return [entry async for entry in cursor]
