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

``python -m yiwang.audit_anchor verify --help`` runs it offline against a database URI.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
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
from yiwang.metrics import AUDIT_CHAIN_OK
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


def read_checkpoints(path: Path, offset: int = 0) -> tuple[list[str], int]:
    """The complete lines from byte ``offset`` on, and the offset after them (-1 when the file
    is now shorter than ``offset``: lines already checked were removed)."""
    try:
        with path.open("rb") as handle:
            if handle.seek(0, os.SEEK_END) < offset:
                return [], -1
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return [], (-1 if offset else 0)
    end = data.rfind(b"\n") + 1  # a line still being written is left for next time
    lines = [line.decode("utf-8", "replace") for line in data[:end].splitlines() if line.strip()]
    return lines, offset + end


def _last_line(handle: Any) -> str | None:
    size = handle.seek(0, os.SEEK_END)
    back = min(size, 4096)
    handle.seek(size - back)
    lines = [line for line in handle.read(back).splitlines() if line.strip()]
    return lines[-1].decode("utf-8", "replace") if lines else None


def append_checkpoint(path: Path, key: bytes, db: str, seq: int, head: str) -> dict[str, Any]:
    """Sign and append one checkpoint (under an exclusive lock, so processes sharing the
    file keep one line chain); the file and its folder are private (0600 / 0700)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "r+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        last = _last_line(handle)
        sign = signer(key)
        cp: dict[str, Any] = {
            "v": CHECKPOINT_VERSION,
            "db": db,
            "seq": seq,
            "head": head,
            "at": utcnow().isoformat(timespec="seconds"),
            "prev": _line_digest(last) if last else audit.GENESIS,
            "kid": key_id(sign.public_key_raw().hex()),
        }
        cp["sig"] = sign.sign(_message(cp)).hex()
        handle.write((json.dumps(cp, sort_keys=True, separators=(",", ":")) + "\n").encode())
        handle.flush()
        os.fsync(handle.fileno())
    return cp


@dataclass(frozen=True)
class Cursor:
    """How far the checkpoint file has been checked: what the next line must link to."""

    offset: int = 0
    prev: str = audit.GENESIS
    last: dict[str, Any] | None = None  # the last checkpoint of this database
    count: int = 0  # checkpoints of this database


@dataclass(frozen=True)
class Checkpoints:
    ok: bool
    problem: str | None  # checkpoint_signature | checkpoint_chain | checkpoint_order
    cursor: Cursor
    anchors: dict[int, str]  # seq → head hash of this database, for the lines read


def check_checkpoints(lines: Sequence[str], public_hex: str, db: str, cursor: Cursor | None = None,
                      offset: int = 0) -> Checkpoints:
    """Each line linked to the one before (SM3), the last one signed by the pinned key (which,
    through the links, vouches for every line before it), heads of one database never going
    back. Continues from ``cursor`` (lines already checked) when given."""
    start = cursor or Cursor()
    prev, last, count = start.prev, start.last, start.count
    anchors: dict[int, str] = {}
    for line in lines:
        try:
            cp = json.loads(line)
            linked = cp["prev"] == prev
            mine = cp["db"] == db
            seq, head = int(cp["seq"]), str(cp["head"])
        except (ValueError, KeyError, TypeError):
            return Checkpoints(False, "checkpoint_signature", start, anchors)
        if not linked:
            return Checkpoints(False, "checkpoint_chain", start, anchors)
        prev = _line_digest(line)
        if not mine:
            continue
        if last is not None and seq < int(last["seq"]):
            return Checkpoints(False, "checkpoint_order", start, anchors)
        anchors[seq] = head
        last, count = cp, count + 1
    if lines:
        try:
            final = json.loads(lines[-1])
            good = sm2_verify(bytes.fromhex(public_hex), _message(final), bytes.fromhex(final["sig"]))
        except (ValueError, KeyError, TypeError):
            good = False
        if not good:
            return Checkpoints(False, "checkpoint_signature", start, anchors)
    return Checkpoints(True, None, Cursor(offset, prev, last, count), anchors)


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
                 public_hex: str | None = None, run: Runner = _to_thread, highest_written: int = 0,
                 cursor: Cursor | None = None) -> tuple[AuditStatus, Cursor | None]:
    """Check the checkpoint file (from ``cursor``, or all of it), then the chain from the last
    checkpoint (or from the start, ``full``) to its head, meeting the checkpoints on the way.
    Returns the status and the cursor to continue from next time (None when broken)."""
    db = store.db.name
    status = AuditStatus(checked_at=utcnow().isoformat(timespec="seconds"))
    if full:
        cursor = None
    lines, offset = await run(read_checkpoints, checkpoint_path, cursor.offset if cursor else 0)
    if offset < 0:
        status.state, status.problem = "broken", "checkpoints_truncated"
        return status, None
    cps = check_checkpoints(lines, public_hex or public_key(key), db, cursor, offset)
    status.checkpoints = cps.cursor.count
    last = cps.cursor.last
    if last is not None:
        status.last_checkpoint_seq = int(last["seq"])
        status.last_checkpoint_at = str(last["at"])
    if not cps.ok:
        status.state, status.problem = "broken", cps.problem
        return status, None
    start = (0, audit.GENESIS)
    if not full and last is not None:
        start = (int(last["seq"]), str(last["head"]))
    anchors = cps.anchors
    result = await audit.walk(store, key, start=start, anchors=anchors)
    if result.intact and start[0] and await store["audit"].estimated_document_count() != result.head_seq:
        # seqs run 1..head with nothing else in the collection, so a count that differs means an
        # entry before the checkpoint was removed (or one added): walk it all to say which
        start = (0, audit.GENESIS)
        result = await audit.walk(store, key, anchors=anchors)
    status.verified_from, status.checked = start[0], result.checked
    status.head_seq = result.head_seq
    if not result.intact:
        status.state, status.problem, status.first_bad = "broken", result.problem, result.first_bad
        return status, None
    known = int(last["seq"]) if last is not None else 0
    if result.head_seq < max(known, highest_written):
        status.state, status.problem, status.first_bad = "broken", "truncated", result.head_seq + 1
        return status, None
    status.state = "intact"
    return status, cps.cursor


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
    _cursor: Cursor | None = None  # how far the checkpoint file is checked (None: from the start)

    async def run_once(self, *, full: bool = False) -> AuditStatus:
        """One verification (from the last checkpoint; the whole chain once a day or when asked)."""
        full = full or time.monotonic() - self._last_full >= self.full_every
        try:
            await audit.retry_unfinished(self.store)
            status, self._cursor = await verify(self.store, self.key, self.checkpoint_path, run=self.run,
                                                full=full, highest_written=audit.highest_written(self.store),
                                                cursor=self._cursor)
            if full:
                self._last_full = time.monotonic()
            if status.state == "intact" and status.head_seq > (status.last_checkpoint_seq or 0):
                head = await self.store["audit"].find_one({"seq": status.head_seq}, projection={"hash": 1})
                if head is not None:
                    cp = await self.run(append_checkpoint, self.checkpoint_path, self.key, self.store.db.name,
                                        status.head_seq, head["hash"])
                    status.checkpoints += 1
                    status.last_checkpoint_seq, status.last_checkpoint_at = cp["seq"], cp["at"]
        except Exception as exc:  # the database is down: say so, keep the last result, try again next time
            log.warning("audit verification could not run", exc_info=True)
            status = dataclasses.replace(self.status, error=type(exc).__name__,
                                         checked_at=utcnow().isoformat(timespec="seconds"))
        if status.state in ("intact", "broken"):
            AUDIT_CHAIN_OK.set(1 if status.state == "intact" else 0)
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
        prog="python -m yiwang.audit_anchor",
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
            status, _ = await verify(store, key, args.checkpoints, full=not args.incremental,
                                     public_hex=args.public_key)
            return status
        finally:
            await store.close()

    status = asyncio.run(run())
    print(json.dumps(status.view(), ensure_ascii=False, indent=2, default=str))
    return 0 if status.state == "intact" else 1


if __name__ == "__main__":
    raise SystemExit(main())
