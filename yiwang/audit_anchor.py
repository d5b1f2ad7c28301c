"""Anchoring the audit trail outside the database, and verifying it.

* A **checkpoint** is ``{v, db, seq, head, at, prev, kid, sig}``: the chain's head
  (seq and keyed hash) at a time, signed with SM2. ``prev`` is the SM3 digest of
  the line before, so the checkpoint file is itself a chain.
* The checkpoints live in a JSON-lines file (``AUDIT_CHECKPOINTS``), appended to
  and never rewritten, outside the database: someone who can write the database
  cannot rewrite them. Copy it off the host (it is the export).
* The signing key is derived from ``AUDIT_KEY`` (never stored, never in the
  database); :func:`public_key` is what an outside verifier pins.
* :func:`verify` walks the chain from the last checkpoint (cheap at every start
  and on schedule) or from the start (``full``, the offline command), and tells
  an edited entry, a removed one and a cut tail apart.

``python -m yiwang.audit verify --help`` runs it offline against a database URI.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from yiwang import audit
from yiwang.crypto import SM2Signer, derive_sm2_signer, sm2_verify, sm3_hex
from yiwang.store import Store
from yiwang.timeutil import utcnow

log = logging.getLogger(__name__)

CHECKPOINT_VERSION = 1
FULL_EVERY_SECONDS = 86400.0  # the scheduled check walks the whole chain once a day
_SIGNING_LABEL = b"audit checkpoint signing"


def signer(key: bytes) -> SM2Signer:
    return derive_sm2_signer(key, _SIGNING_LABEL)


def public_key(key: bytes) -> str:
    """The checkpoint verifying key (uncompressed SM2 point, hex) for ``AUDIT_KEY``."""
    return signer(key).public_key_raw().hex()


def key_id(public_hex: str) -> str:
    return sm3_hex(bytes.fromhex(public_hex))[:16]


def _message(cp: dict[str, Any]) -> bytes:
    body = {k: cp[k] for k in ("v", "db", "seq", "head", "at", "prev", "kid")}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _line_digest(line: str) -> str:
    return sm3_hex(line.strip().encode())


# ---- the file (blocking: run through an offloader) ---------------------------------


def read_checkpoints(path: Path) -> list[str]:
    try:
        return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except FileNotFoundError:
        return []


def append_checkpoint(path: Path, key: bytes, db: str, seq: int, head: str) -> dict[str, Any]:
    """Sign and append one checkpoint (under an exclusive lock, so processes sharing the
    file keep one line chain); the file and its folder are private (0600 / 0700)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "r+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        lines = [line for line in handle.read().splitlines() if line.strip()]
        sign = signer(key)
        cp: dict[str, Any] = {
            "v": CHECKPOINT_VERSION,
            "db": db,
            "seq": seq,
            "head": head,
            "at": utcnow().isoformat(timespec="seconds"),
            "prev": _line_digest(lines[-1]) if lines else audit.GENESIS,
            "kid": key_id(sign.public_key_raw().hex()),
        }
        cp["sig"] = sign.sign(_message(cp)).hex()
        handle.write(json.dumps(cp, sort_keys=True, separators=(",", ":")) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return cp


@dataclass(frozen=True)
class Checkpoints:
    ok: bool
    problem: str | None  # checkpoint_signature | checkpoint_chain | checkpoint_order
    anchors: dict[int, str]  # seq → head hash, of this database
    last: dict[str, Any] | None
    count: int


def check_checkpoints(lines: Sequence[str], public_hex: str, db: str) -> Checkpoints:
    """Every line signed by the pinned key, each linked to the one before, heads of one
    database never going back; returns this database's anchors."""
    anchors: dict[int, str] = {}
    last: dict[str, Any] | None = None
    prev = audit.GENESIS
    public = bytes.fromhex(public_hex)
    for line in lines:
        try:
            cp = json.loads(line)
            good = sm2_verify(public, _message(cp), bytes.fromhex(cp["sig"]))
        except (ValueError, KeyError, TypeError):
            good = False
        if not good:
            return Checkpoints(False, "checkpoint_signature", anchors, last, len(anchors))
        if cp["prev"] != prev:
            return Checkpoints(False, "checkpoint_chain", anchors, last, len(anchors))
        prev = _line_digest(line)
        if cp["db"] != db:
            continue
        if last is not None and cp["seq"] < last["seq"]:
            return Checkpoints(False, "checkpoint_order", anchors, last, len(anchors))
        anchors[int(cp["seq"])] = str(cp["head"])
        last = cp
    return Checkpoints(True, None, anchors, last, len(anchors))


# ---- verification ------------------------------------------------------------------


@dataclass
class AuditStatus:
    state: str = "unverified"  # unverified | intact | broken
    problem: str | None = None  # edited | gap | downgrade | truncated | anchor_mismatch | checkpoint_*
    first_bad: int | None = None
    head_seq: int = 0
    checked: int = 0
    verified_from: int = 0
    checkpoints: int = 0
    last_checkpoint_seq: int | None = None
    last_checkpoint_at: str | None = None
    checked_at: str | None = None
    error: str | None = None

    def public(self) -> dict[str, Any]:
        """What ``/readyz`` shows (no entry content)."""
        return {"state": self.state, "checked_at": self.checked_at, "head_seq": self.head_seq,
                "last_checkpoint_seq": self.last_checkpoint_seq}

    def view(self) -> dict[str, Any]:
        return asdict(self)


Runner = Callable[..., Awaitable[Any]]


async def _to_thread(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


async def verify(store: Store, key: bytes, checkpoint_path: Path, *, full: bool = False,
                 public_hex: str | None = None, run: Runner = _to_thread,
                 highest_written: int = 0) -> AuditStatus:
    """Check the checkpoint file, then the chain from the last checkpoint (or from the start,
    ``full``) to its head, meeting every checkpoint on the way."""
    db = store.db.name
    status = AuditStatus(checked_at=utcnow().isoformat(timespec="seconds"))
    lines = await run(read_checkpoints, checkpoint_path)
    cps = check_checkpoints(lines, public_hex or public_key(key), db)
    status.checkpoints = cps.count
    if cps.last is not None:
        status.last_checkpoint_seq = int(cps.last["seq"])
        status.last_checkpoint_at = str(cps.last["at"])
    if not cps.ok:
        status.state, status.problem = "broken", cps.problem
        return status
    start = (0, audit.GENESIS)
    if not full and cps.last is not None:
        start = (int(cps.last["seq"]), str(cps.last["head"]))
    result = await audit.walk(store, key, start=start, anchors=cps.anchors)
    if result.intact and start[0] and await store["audit"].estimated_document_count() != result.head_seq:
        # seqs run 1..head with nothing else in the collection, so a count that differs means an
        # entry before the checkpoint was removed (or one added): walk it all to say which
        start = (0, audit.GENESIS)
        result = await audit.walk(store, key, anchors=cps.anchors)
    status.verified_from, status.checked = start[0], result.checked
    status.head_seq = result.head_seq
    if result.intact:
        known = max(cps.anchors, default=0)
        if result.head_seq < max(known, highest_written):
            status.state, status.problem, status.first_bad = "broken", "truncated", result.head_seq + 1
        else:
            status.state = "intact"
        return status
    status.state, status.problem, status.first_bad = "broken", result.problem, result.first_bad
    return status


@dataclass
class AuditWatch:
    """The process's audit guard: verifies at start-up and on a schedule, writes a checkpoint
    whenever the verified head has moved, and retries entries left pending."""

    store: Store
    key: bytes
    checkpoint_path: Path
    interval: float
    run: Runner
    full_every: float = FULL_EVERY_SECONDS
    status: AuditStatus = field(default_factory=AuditStatus)
    _task: asyncio.Task[None] | None = None
    _last_full: float = field(default_factory=time.monotonic)

    async def run_once(self, *, full: bool = False) -> AuditStatus:
        """One verification (from the last checkpoint; the whole chain once a day or when asked)."""
        full = full or time.monotonic() - self._last_full >= self.full_every
        try:
            await audit.retry_unfinished(self.store)
            status = await verify(self.store, self.key, self.checkpoint_path, run=self.run, full=full,
                                  highest_written=audit.highest_written(self.store))
            if full:
                self._last_full = time.monotonic()
            if status.state == "intact" and status.head_seq > (status.last_checkpoint_seq or 0):
                head = await self.store["audit"].find_one({"seq": status.head_seq}, projection={"hash": 1})
                if head is not None:
                    cp = await self.run(append_checkpoint, self.checkpoint_path, self.key, self.store.db.name,
                                        status.head_seq, head["hash"])
                    status.checkpoints += 1
                    status.last_checkpoint_seq, status.last_checkpoint_at = cp["seq"], cp["at"]
        except Exception as exc:  # the database is down: say so, try again next time
            log.warning("audit verification could not run", exc_info=True)
            status = AuditStatus(checked_at=utcnow().isoformat(timespec="seconds"), error=type(exc).__name__,
                                 state=self.status.state if self.status.state != "unverified" else "unverified")
        if status.state == "broken" and self.status.state != "broken":
            log.critical("audit trail broken", extra={"fields": {"problem": status.problem, "seq": status.first_bad}})
        self.status = status
        return status

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.run_once()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


async def open_watch(store: Store, key: bytes, checkpoint_path: Path, interval: float, run: Runner) -> AuditWatch:
    """Start-up: complete what a crash left pending, key a legacy chain, verify from the last
    checkpoint and anchor the head; then verify on schedule."""
    audit.configure(key)
    await audit.reconcile(store)
    await audit.seal_legacy(store)
    watch = AuditWatch(store, key, checkpoint_path, interval, run)
    await watch.run_once()
    watch.start()
    return watch


# ---- the offline command -------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m yiwang.audit",
        description="Verify a Yiwang audit trail offline: the keyed chain in the database against the signed "
        "checkpoint file. Exit status 0 intact, 1 broken, 2 usage error.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("verify", help="verify the whole chain and every checkpoint")
    check.add_argument("--uri", required=True, help="MongoDB URI of the database to check")
    check.add_argument("--db", default="yiwang", help="database name (default yiwang)")
    check.add_argument("--checkpoints", required=True, type=Path, help="the checkpoint file (JSON lines)")
    check.add_argument("--public-key", help="pinned checkpoint public key (hex); default: derived from AUDIT_KEY")
    check.add_argument("--incremental", action="store_true", help="only from the last checkpoint (default: all)")
    sub.add_parser("public-key", help="print the checkpoint verifying key for AUDIT_KEY")
    args = parser.parse_args(argv)
    raw_key = os.environ.get("AUDIT_KEY", "")
    try:
        key = bytes.fromhex(raw_key)
        if len(key) != 32:
            raise ValueError
    except ValueError:
        print("AUDIT_KEY (hex, 32 bytes) must be set in the environment", file=sys.stderr)
        return 2
    if args.command == "public-key":
        print(public_key(key))
        return 0

    async def run() -> AuditStatus:
        store = Store.connect(args.uri, args.db)
        try:
            return await verify(store, key, args.checkpoints, full=not args.incremental, public_hex=args.public_key)
        finally:
            await store.close()

    status = asyncio.run(run())
    print(json.dumps(status.view(), ensure_ascii=False, indent=2, default=str))
    return 0 if status.state == "intact" else 1
