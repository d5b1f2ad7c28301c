"""Kiosk devices: registry, enrolment, credentials, and the message outbox.

* **Enrolment**: the console creates a one-time code for a hall; the device
  agent trades it (once) for its own device id and credential. Codes and
  credentials are stored as SM3 digests only.
* **Outbox and fan-out**: :func:`push` appends to ``device_messages`` with an
  increasing ``seq`` (a counter in ``meta``). Every server process runs a
  :class:`DeviceHub` that polls ``device_messages`` by ``seq`` (no change
  streams: the embedded DB has none) and sends each message to the devices
  connected *to that process* whose audience matches. A push made by any
  process therefore reaches devices on all of them.
* **No loss across reconnects**: messages carry their ``seq``; the device
  acknowledges each and, when it reconnects, says the highest seq it has
  processed; the hub replays everything after it (with a small overlap; the
  agent drops duplicates by message id). Device → server messages are
  numbered by the device and acknowledged the same way.
* The embedded DB is slow, so acknowledgements, heartbeats and online flags
  are buffered in memory and written in batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pymongo import ReturnDocument, UpdateOne
from pymongo.errors import PyMongoError

from yiwang import audit
from yiwang.certificates import Redeemer
from yiwang.crypto import constant_time_equal, random_token, token_digest
from yiwang.errors import Forbidden, InvalidInput, NotAuthenticated, NotFound
from yiwang.store import Document, Store
from yiwang.timeutil import as_utc, utcnow

if TYPE_CHECKING:
    from yiwang.runtime import Services

log = logging.getLogger(__name__)

ENROLMENT_TTL_HOURS = 24
MESSAGE_TTL = dt.timedelta(days=7)
MAX_MESSAGE_BYTES = 64 * 1024
REPLAY_OVERLAP = 20  # seqs re-sent on reconnect in case of a late commit by another process
COMMANDS = ("reload", "clear_cache", "report_status", "rotate_credential")
MACHINE_HEADER = "X-Device-Machine"  # the agent's hash of /etc/machine-id, sent with every request
PERIPHERAL_STATES = {
    "printer": ("ready", "paper_low", "toner_low", "paper_out", "jammed", "door_open", "offline", "absent"),
    "camera": ("ready", "offline", "absent"),
    "id_reader": ("ready", "offline", "absent"),
    "scanner": ("ready", "offline", "absent"),
    "speaker": ("ready", "speaking", "offline", "absent"),
}
SEQ_COUNTER_ID = "device_message_seq"
LAST_SEEN_WRITE_SECONDS = 120.0
FLUSH_CHUNK = 100
_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I


# ---- the device -----------------------------------------------------------


@dataclass(frozen=True)
class Device:
    id: str
    hall: str
    city: str
    label: str
    location: str = ""
    group: str | None = None

    @property
    def audience(self) -> list[str]:
        keys = ["all", f"city:{self.city}", f"hall:{self.hall}", f"device:{self.id}"]
        if self.group:
            keys.append(f"group:{self.hall}:{self.group}")
        return keys

    @property
    def actor(self) -> audit.Actor:
        return audit.Actor("device", self.id, self.label)


def _device(doc: Mapping[str, Any]) -> Device:
    return Device(doc["_id"], doc["hall"], doc.get("city", ""), doc.get("label", ""), doc.get("location", ""),
                  doc.get("group"))


def redeemer_for(device: Device) -> Any:
    """The certificate module's Redeemer for this kiosk (kind ``kiosk``)."""

    return Redeemer(kind="kiosk", id=device.id, label=device.label)


async def redeemer_authenticator(services: Services, header: str) -> Any:
    """One of the :class:`~yiwang.certificates.RedeemerAuthenticators` (certs_api): a kiosk's
    ``Authorization: Device <id>:<credential>`` as a Redeemer; None for other schemes."""
    if not header.startswith("Device "):
        return None
    device_id, credential = parse_credential_header(header)
    return redeemer_for(await authenticate(services, device_id, credential))


def _valid_alerts(raw: list[Any]) -> list[dict[str, str]]:
    """Peripheral alerts from a device's status (e.g. printer.jammed): at most 10, short strings only."""
    alerts: list[dict[str, str]] = []
    for item in raw[:10]:
        if not isinstance(item, dict):
            continue
        code, severity, message = item.get("code"), item.get("severity"), item.get("message", "")
        if (isinstance(code, str) and len(code) <= 64 and severity in ("error", "warning")
                and isinstance(message, str) and len(message) <= 120):
            alerts.append({"code": code, "severity": severity, "message": message})
    return alerts


def public_view(doc: Mapping[str, Any], *, online: bool | None = None) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "label": doc.get("label", ""),
        "hall": doc["hall"],
        "city": doc.get("city", ""),
        "location": doc.get("location", ""),
        "group": doc.get("group"),
        "status": doc.get("status", "active"),
        "online": bool(doc.get("online")) if online is None else online,
        "last_seen": doc.get("last_seen"),
        "software_version": doc.get("software_version", ""),
        "peripherals": doc.get("peripherals", {}),
        "alerts": doc.get("alerts", []),
        "enrolled_at": doc.get("enrolled_at"),
    }


# ---- enrolment ------------------------------------------------------------


def _new_code() -> str:
    raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(12))
    return "-".join(raw[i : i + 4] for i in range(0, 12, 4))


def _normalise_code(raw: Any) -> str:
    if not isinstance(raw, str):
        raise InvalidInput("device.enrolment_code_invalid", "注册码格式不正确")
    clean = raw.strip().upper().replace("-", "").replace(" ", "")
    if len(clean) != 12 or any(c not in _CODE_ALPHABET for c in clean):
        raise InvalidInput("device.enrolment_code_invalid", "注册码格式不正确")
    return "-".join(clean[i : i + 4] for i in range(0, 12, 4))


def _clean_label(raw: Any, name: str, *, required: bool, limit: int = 40) -> str:
    if raw is None or raw == "":
        if required:
            raise InvalidInput(f"device.{name}_required", "请填写设备名称", fields={name: "必填"})
        return ""
    if not isinstance(raw, str) or len(raw.strip()) > limit:
        raise InvalidInput(f"device.{name}_invalid", f"{name} 不能超过 {limit} 个字", fields={name: "过长"})
    return raw.strip()


async def create_enrolment_code(
    services: Services,
    hall: str,
    label: str,
    *,
    location: str = "",
    group: str | None = None,
    by: audit.Actor = audit.SYSTEM,
    ttl_hours: int = ENROLMENT_TTL_HOURS,
    machine: str | None = None,
) -> dict[str, Any]:
    """A one-time code for one kiosk in ``hall``; only its digest is stored. With ``machine``
    (the agent's hash of that kiosk's /etc/machine-id) only that machine can use it."""
    clean_label = _clean_label(label, "label", required=True)
    clean_location = _clean_label(location, "location", required=False, limit=80)
    clean_group = _clean_label(group, "group", required=False) or None
    hall_doc = await services.catalog.hall(hall)  # NotFound for unknown halls
    code = _new_code()
    expires_at = utcnow() + dt.timedelta(hours=ttl_hours)
    bound = _clean_machine(machine) if machine is not None else None
    if machine is not None and bound is None:
        raise InvalidInput("device.machine_invalid", "机器标识格式不正确", fields={"machine": "64 位十六进制"})
    await services.store["enrolment_codes"].insert_one(
        {
            "_id": token_digest(code),
            "machine": bound,
            "hall": hall,
            "city": hall_doc.get("city", ""),
            "label": clean_label,
            "location": clean_location,
            "group": clean_group,
            "created_by": by.id,
            "created_at": utcnow(),
            "expires_at": expires_at,
            "used": False,
        }
    )
    await audit.record(services.store, by, "device.enrolment_code_created", f"hall:{hall}",
                       channel="console" if by.kind == "console_user" else "system", detail={"label": clean_label})
    return {"code": code, "hall": hall, "label": clean_label, "location": clean_location, "expires_at": expires_at}


def _clean_machine(raw: Any) -> str | None:
    if isinstance(raw, str) and len(raw) == 64 and all(c in "0123456789abcdef" for c in raw):
        return raw
    return None


async def enrol(services: Services, raw_code: Any, *, software_version: Any = "",
                machine: Any = None) -> tuple[Device, str]:
    """Trade a one-time code for a device id and credential (returned once).

    ``machine`` (the agent's hash of /etc/machine-id) binds the device to that machine:
    its credential is refused from any other (a copied credential file is useless)."""
    code = _normalise_code(raw_code)
    version = _clean_label(software_version, "software_version", required=False)
    bound = _clean_machine(machine)
    now = utcnow()
    pending = await services.store["enrolment_codes"].find_one({"_id": token_digest(code)}, {"machine": 1})
    if pending is not None and pending.get("machine") and pending["machine"] != bound:
        raise Forbidden("device.machine_mismatch", "此注册码只能用于指定的终端机器")
    entry = await services.store["enrolment_codes"].find_one_and_update(
        {"_id": token_digest(code), "used": False, "expires_at": {"$gt": now}},
        {"$set": {"used": True, "used_at": now}},
        return_document=ReturnDocument.AFTER,
    )
    if entry is None:
        raise NotAuthenticated("device.enrolment_code_unknown", "注册码无效、已使用或已过期")
    credential = random_token(32)
    device_id = uuid.uuid4().hex
    doc: Document = {
        "_id": device_id,
        "credential": token_digest(credential),
        "hall": entry["hall"],
        "city": entry.get("city", ""),
        "label": entry["label"],
        "location": entry.get("location", ""),
        "group": entry.get("group"),
        "status": "active",
        "online": False,
        "software_version": version,
        "peripherals": {},
        "enrolled_at": now,
        "last_seen": None,
        "machine": bound,
    }
    await services.store["devices"].insert_one(doc)
    await services.store["enrolment_codes"].update_one({"_id": entry["_id"]}, {"$set": {"device": device_id}})
    device = _device(doc)
    await audit.record(services.store, device.actor, "device.enrolled", f"device:{device_id}", channel="device",
                       detail={"hall": device.hall})
    return device, credential


def parse_credential_header(value: str | None) -> tuple[str, str]:
    """``Device <id>:<credential>`` → (id, credential)."""
    if not value or not value.startswith("Device "):
        raise NotAuthenticated("device.credential_missing", "设备未认证")
    device_id, sep, credential = value[len("Device ") :].strip().partition(":")
    if not sep or not device_id or not credential or len(device_id) > 64 or len(credential) > 128:
        raise NotAuthenticated("device.credential_invalid", "设备凭据格式不正确")
    return device_id, credential


_AUTH_CACHE_SECONDS = 10.0
_AUTH_CACHE_MAX = 20_000  # devices per process; entries older than _AUTH_CACHE_SECONDS are never used


async def authenticate(services: Services, device_id: str, credential: str, machine: str | None = None) -> Device:
    """The device whose credential this is; cached briefly per process (revocation seen within 10 s).

    A device bound to a machine must say it is that machine (``X-Device-Machine``). During a
    rotation the new credential is accepted too, and its first use retires the old one."""
    cache = services.resources.get(CredentialCache)
    digest = token_digest(credential)
    hit = cache.get(device_id)
    if hit is not None and time.monotonic() - hit[0] < _AUTH_CACHE_SECONDS and constant_time_equal(hit[1], digest):
        _check_machine(hit[3], machine)
        return hit[2]
    doc = await services.store["devices"].find_one({"_id": device_id})
    if doc is None:
        raise NotAuthenticated("device.credential_invalid", "设备凭据无效")
    if not constant_time_equal(doc.get("credential", ""), digest):
        if not doc.get("credential_next") or not constant_time_equal(doc["credential_next"], digest):
            raise NotAuthenticated("device.credential_invalid", "设备凭据无效")
        _check_machine(doc.get("machine"), machine)
        await services.store["devices"].update_one({"_id": device_id, "credential_next": digest},
                                                   {"$set": {"credential": digest}, "$unset": {"credential_next": ""}})
        cache.pop(device_id, None)
    if doc.get("status") != "active":
        raise Forbidden("device.revoked", "该设备已停用")
    _check_machine(doc.get("machine"), machine)
    device = _device(doc)
    now = time.monotonic()
    if len(cache) >= _AUTH_CACHE_MAX:  # bounded: drop what has expired, and if still full, everything
        for stale in [k for k, v in cache.items() if now - v[0] >= _AUTH_CACHE_SECONDS]:
            del cache[stale]
        if len(cache) >= _AUTH_CACHE_MAX:
            cache.clear()
    cache[device_id] = (now, digest, device, doc.get("machine"))
    return device


def _check_machine(bound: str | None, machine: str | None) -> None:
    if bound and not (machine and constant_time_equal(bound, machine)):
        raise Forbidden("device.machine_mismatch", "设备凭据与本机不符，请重新注册")


async def rotate_credential(services: Services, device: Device) -> str:
    """A new credential for an authenticated device (returned once). The old one keeps working
    until the device first uses the new one, so a lost answer locks nobody out."""
    credential = random_token(32)
    await services.store["devices"].update_one({"_id": device.id},
                                               {"$set": {"credential_next": token_digest(credential)}})
    await audit.record(services.store, device.actor, "device.credential_rotated", f"device:{device.id}",
                       channel="device")
    return credential


async def request_credential_rotation(services: Services, device_id: str, *, by: audit.Actor) -> str:
    """Ask a device (over its channel) to rotate its credential; returns the command's message id."""
    await get_device(services, device_id)
    return await send_command(services, {"scope": "device", "device": device_id}, "rotate_credential", by=by)


class CredentialCache(dict[str, tuple[float, str, "Device", str | None]]):
    """Recently checked device credentials, per process (bounded: ``_AUTH_CACHE_MAX``)."""

    async def aclose(self) -> None:
        self.clear()


async def get_device(services: Services, device_id: str) -> dict[str, Any]:
    doc = await services.store["devices"].find_one({"_id": device_id}, {"credential": 0, "credential_next": 0})
    if doc is None:
        raise NotFound("device.not_found", "找不到该设备")
    return public_view(doc)


async def device_hall(services: Services, device_id: str) -> str | None:
    doc = await services.store["devices"].find_one({"_id": device_id, "status": "active"}, {"hall": 1})
    return str(doc["hall"]) if doc else None


async def list_devices(services: Services, *, hall: str | None = None, city: str | None = None) -> list[dict[str, Any]]:
    query: dict[str, Any] = {}
    if hall:
        query["hall"] = hall
    if city:
        query["city"] = city
    cursor = services.store["devices"].find(query, {"credential": 0, "credential_next": 0}, sort=[("enrolled_at", -1)])
    return [public_view(doc) async for doc in cursor]


async def revoke_device(services: Services, device_id: str, *, by: audit.Actor) -> None:
    result = await services.store["devices"].update_one(
        {"_id": device_id}, {"$set": {"status": "revoked", "revoked_at": utcnow()}}
    )
    if result.matched_count == 0:
        raise NotFound("device.not_found", "找不到该设备")
    services.resources.get(CredentialCache).pop(device_id, None)
    await hub_of(services).disconnect(device_id)
    await audit.record(services.store, by, "device.revoked", f"device:{device_id}",
                       channel="console" if by.kind == "console_user" else "system")


# ---- outbox ---------------------------------------------------------------


def audience_key(target: Any) -> str:
    if not isinstance(target, Mapping):
        raise InvalidInput("device.target_invalid", "推送目标格式不正确")
    scope = target.get("scope")
    value = {"city": target.get("city"), "hall": target.get("hall"), "device": target.get("device")}
    if scope == "all":
        return "all"
    if scope in ("city", "hall", "device"):
        v = value[scope]
        if not isinstance(v, str) or not v or len(v) > 64:
            raise InvalidInput("device.target_invalid", "推送目标缺少编码", fields={scope: "必填"})
        return f"{scope}:{v}"
    if scope == "group":
        hall, group = target.get("hall"), target.get("group")
        if not isinstance(hall, str) or not hall or not isinstance(group, str) or not group:
            raise InvalidInput("device.target_invalid", "设备分组推送须指定大厅和分组")
        return f"group:{hall}:{group}"
    raise InvalidInput("device.target_invalid", "推送范围只能是 all、city、hall、group 或 device")


async def _check_target_exists(services: Services, target: Mapping[str, Any]) -> None:
    scope = target.get("scope")
    if scope in ("hall", "group"):
        await services.catalog.hall(str(target.get("hall")))
    elif scope == "device" and await services.store["devices"].find_one({"_id": target.get("device")}) is None:
        raise NotFound("device.not_found", "找不到该设备")


async def _next_seq(services: Services) -> int:
    counter = await services.store["meta"].find_one_and_update(
        {"_id": SEQ_COUNTER_ID}, {"$inc": {"value": 1}}, upsert=True, return_document=ReturnDocument.AFTER
    )
    if counter is None:
        raise RuntimeError("sequence counter missing")
    return int(counter["value"])


async def _enqueue(
    services: Services, target: Mapping[str, Any], kind: str, body: Mapping[str, Any], by: audit.Actor
) -> str:
    key = audience_key(target)
    if len(json.dumps(body, ensure_ascii=False, default=str).encode()) > MAX_MESSAGE_BYTES:
        raise InvalidInput("device.message_too_large", "推送内容不能超过 64 KB")
    await _check_target_exists(services, target)
    now = utcnow()
    message_id = uuid.uuid4().hex
    doc: Document = {
        "_id": message_id,
        "seq": await _next_seq(services),
        "kind": kind,
        "target": dict(target),
        "audience": key,
        "body": dict(body),
        "created_at": now,
        "expires_at": now + MESSAGE_TTL,
        "by": by.id,
    }
    await services.store["device_messages"].insert_one(doc)
    hub_of(services).wake()
    await audit.record(services.store, by, f"device.{kind}_pushed", f"device_message:{message_id}",
                       channel="console" if by.kind == "console_user" else "system",
                       detail={"audience": key, "topic": str(body.get("topic") or body.get("command") or "")})
    return message_id


async def push(
    services: Services, target: Mapping[str, Any], message: Mapping[str, Any], *, by: audit.Actor = audit.SYSTEM
) -> str:
    """Queue a content push to the targeted devices; returns the message id."""
    if not isinstance(message, Mapping):
        raise InvalidInput("device.message_invalid", "推送内容必须是 JSON 对象")
    return await _enqueue(services, target, "content", message, by)


async def send_command(
    services: Services,
    target: Mapping[str, Any],
    command: str,
    *,
    args: Mapping[str, Any] | None = None,
    by: audit.Actor = audit.SYSTEM,
) -> str:
    if command not in COMMANDS:
        raise InvalidInput("device.command_unknown", "不支持的设备指令", fields={"command": "、".join(COMMANDS)})
    return await _enqueue(services, target, "command", {"command": command, "args": dict(args or {})}, by)


async def delivery_status(services: Services, message_id: str) -> dict[str, Any]:
    message = await services.store["device_messages"].find_one({"_id": message_id})
    if message is None:
        raise NotFound("device.message_not_found", "找不到该推送")
    await hub_of(services).flush()
    target = message["target"]
    query: dict[str, Any] = {"status": "active", "enrolled_at": {"$lte": message["created_at"]}}
    scope = target.get("scope")
    if scope == "city":
        query["city"] = target["city"]
    elif scope in ("hall", "group"):
        query["hall"] = target["hall"]
        if scope == "group":
            query["group"] = target["group"]
    elif scope == "device":
        query = {"_id": target["device"]}
    targeted = [d["_id"] async for d in services.store["devices"].find(query, {"_id": 1})]
    acks: list[dict[str, Any]] = []
    acked: set[str] = set()
    async for batch in services.store["device_deliveries"].find({"message_id": message_id}, sort=[("at", 1)]):
        for row in batch["acks"]:
            if row["device"] not in acked:  # a replayed message may be acknowledged twice
                acked.add(row["device"])
                acks.append({"device": row["device"], "at": row["at"], "result": row.get("result")})
    return {
        "message_id": message_id,
        "kind": message["kind"],
        "target": target,
        "created_at": message["created_at"],
        "targeted": len(targeted),
        "acknowledged": len(acked),
        "pending": [d for d in targeted if d not in acked],
        "acks": acks,
    }


def message_frame(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "message", "seq": doc["seq"], "id": doc["_id"], "kind": doc["kind"], "body": doc["body"]}


# ---- the hub: connected devices of this process ---------------------------

# Starts sending at once and returns an awaitable that completes when flushed
# (Tornado's write_message); must not be a coroutine function.
Send = Callable[[str], Awaitable[None]]


@dataclass
class Connection:
    device: Device
    send: Send
    close: Callable[[], None]
    sent: set[int] = field(default_factory=set)
    ready: bool = False
    upstream_seq: int = 0  # highest upstream seq applied on this connection
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class DeviceHub:
    """Holds this process's device connections; polls the outbox; batches writes."""

    def __init__(self, services: Services, *, poll_interval: float = 0.1, flush_interval: float = 1.0) -> None:
        self.services = services
        self.poll_interval = poll_interval
        self.flush_interval = flush_interval
        self.connections: dict[str, Connection] = {}
        self._cursor = 0
        self._pending_gaps: dict[int, float] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._acks: list[Document] = []
        self._device_updates: dict[str, dict[str, Any]] = {}
        self._flush_lock = asyncio.Lock()
        self._last_seen_written: dict[str, float] = {}
        self.ack_listeners: list[Callable[[str, str], None]] = []  # tests and the benchmark watch acks
        self.on_upstream: list[Callable[[Device, Mapping[str, Any]], Awaitable[None]]] = []

    async def start(self) -> None:
        last = await self.services.store["device_messages"].find_one({}, sort=[("seq", -1)], projection={"seq": 1})
        self._cursor = int(last["seq"]) if last else 0
        self._tasks = [asyncio.create_task(self._poll_loop()), asyncio.create_task(self._flush_loop())]

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for conn in list(self.connections.values()):
            with contextlib.suppress(Exception):
                conn.close()
        self.connections.clear()
        with contextlib.suppress(Exception):
            await self.flush()

    def wake(self) -> None:
        self._wake.set()

    # ---- connections ---------------------------------------------------------

    async def attach(self, device: Device, send: Send, close: Callable[[], None], last_seq: int) -> Connection:
        """Register a connection and replay what the device has not processed."""
        old = self.connections.pop(device.id, None)
        if old is not None:
            with contextlib.suppress(Exception):
                old.close()
        conn = Connection(device, send, close)
        self.connections[device.id] = conn
        self._update_device(device.id, {"online": True, "last_seen": utcnow()})
        self._last_seen_written[device.id] = time.monotonic()
        async with conn.lock:
            conn.ready = True  # from here the poller queues behind this lock
            cursor = self.services.store["device_messages"].find(
                {"audience": {"$in": device.audience}, "seq": {"$gt": max(0, last_seq - REPLAY_OVERLAP)},
                 "expires_at": {"$gt": utcnow()}},
                sort=[("seq", 1)],
            )
            async for message in cursor:
                await self._send_message(conn, message)
        return conn

    def detach(self, conn: Connection) -> None:
        if self.connections.get(conn.device.id) is conn:
            del self.connections[conn.device.id]
            self._update_device(conn.device.id, {"online": False, "last_seen": utcnow()})

    async def disconnect(self, device_id: str) -> None:
        conn = self.connections.pop(device_id, None)
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    async def _send_message(self, conn: Connection, message: Mapping[str, Any], text: str | None = None) -> None:
        pending = self._start_send(conn, message, text)
        if pending is not None:
            try:
                await pending
            except Exception:  # closed under us: the device gets it on reconnect
                conn.sent.discard(int(message["seq"]))

    def _start_send(self, conn: Connection, message: Mapping[str, Any], text: str | None = None) -> Any:
        """Start writing at once (no await), so a fan-out to thousands is one pass."""
        seq = int(message["seq"])
        if seq in conn.sent:
            return None
        conn.sent.add(seq)
        if len(conn.sent) > 5000:
            floor = sorted(conn.sent)[-2000]
            conn.sent = {s for s in conn.sent if s >= floor}
        try:
            return conn.send(text or json.dumps(message_frame(message), ensure_ascii=False, default=str))
        except Exception:
            conn.sent.discard(seq)
            return None

    # ---- from the device -----------------------------------------------------

    async def handle_frame(self, conn: Connection, raw: str | bytes) -> None:
        """One frame from a device: ack, heartbeat, or a numbered upstream message."""
        try:
            frame = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise InvalidInput("device.frame_invalid", "消息格式不正确") from None
        if not isinstance(frame, dict):
            raise InvalidInput("device.frame_invalid", "消息格式不正确")
        kind = frame.get("type")
        if kind == "ack":
            self._record_ack(conn, frame)
        elif kind == "heartbeat":
            self._touch(conn.device.id)
            await conn.send(json.dumps({"type": "heartbeat_ack", "at": utcnow().isoformat()}))
        elif kind == "upstream":
            seq = frame.get("seq")
            if not isinstance(seq, int) or seq < 1:
                raise InvalidInput("device.frame_invalid", "上行消息缺少序号")
            if seq > conn.upstream_seq:  # per connection: upstream bodies are idempotent snapshots
                await self._apply_upstream(conn, frame.get("body") or {})
                conn.upstream_seq = seq
                self._touch(conn.device.id)
            await conn.send(json.dumps({"type": "upstream_ack", "seq": seq}))
        else:
            raise InvalidInput("device.frame_invalid", "未知的消息类型")

    def _record_ack(self, conn: Connection, frame: Mapping[str, Any]) -> None:
        message_id, seq = frame.get("id"), frame.get("seq")
        if not isinstance(message_id, str) or not isinstance(seq, int) or len(message_id) > 64:
            raise InvalidInput("device.frame_invalid", "确认消息格式不正确")
        result = frame.get("result")
        self._acks.append({
            "device": conn.device.id,
            "message_id": message_id,
            "at": utcnow(),
            "result": result if isinstance(result, (str, dict)) else None,
        })
        self._touch(conn.device.id)
        for callback in self.ack_listeners:
            callback(conn.device.id, message_id)

    async def _apply_upstream(self, conn: Connection, body: Mapping[str, Any]) -> None:
        if body.get("kind") == "status":
            peripherals = {}
            for name, allowed in PERIPHERAL_STATES.items():
                state = (body.get("peripherals") or {}).get(name)
                if state in allowed:
                    peripherals[name] = state
            update: dict[str, Any] = {"peripherals": peripherals}
            if isinstance(body.get("alerts"), list):
                update["alerts"] = _valid_alerts(body["alerts"])
            version = body.get("software_version")
            if isinstance(version, str) and len(version) <= 40:
                update["software_version"] = version
            self._update_device(conn.device.id, update)
        for listener in self.on_upstream:
            await listener(conn.device, body)

    def _touch(self, device_id: str) -> None:
        """last_seen, written at most once per LAST_SEEN_WRITE_SECONDS per device (heartbeats come in floods)."""
        now = time.monotonic()
        if now - self._last_seen_written.get(device_id, 0.0) >= LAST_SEEN_WRITE_SECONDS:
            self._last_seen_written[device_id] = now
            self._update_device(device_id, {"last_seen": utcnow()})

    def _update_device(self, device_id: str, fields: Mapping[str, Any]) -> None:
        self._device_updates.setdefault(device_id, {}).update(fields)

    # ---- batched writes ------------------------------------------------------

    async def flush(self) -> None:
        async with self._flush_lock:
            acks, self._acks = self._acks, []
            updates, self._device_updates = self._device_updates, {}
            if acks:
                # one document per message per flush (thousands of acks → a handful of writes)
                by_message: dict[str, list[dict[str, Any]]] = {}
                for ack in acks:
                    by_message.setdefault(ack.pop("message_id"), []).append(ack)
                batch = [{"_id": uuid.uuid4().hex, "message_id": mid, "acks": rows, "at": utcnow()}
                         for mid, rows in by_message.items()]
                try:
                    await self.services.store["device_deliveries"].insert_many(batch, ordered=False)
                except PyMongoError:
                    log.warning("device ack flush failed", exc_info=True)
            ops = []
            for device_id, fields in updates.items():
                change: dict[str, Any] = {}
                if fields:
                    change["$set"] = dict(fields)
                if change:
                    ops.append(UpdateOne({"_id": device_id}, change))
            for start in range(0, len(ops), FLUSH_CHUNK):  # small chunks: the outbox poll gets a turn
                try:
                    await self.services.store["devices"].bulk_write(ops[start : start + FLUSH_CHUNK], ordered=False)
                except PyMongoError:
                    log.warning("device status flush failed", exc_info=True)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            try:
                await self.flush()
            except Exception:
                log.exception("device flush failed")

    # ---- polling the outbox ----------------------------------------------------

    async def _poll_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            self._wake.clear()
            try:
                await self.poll_once()
            except PyMongoError:
                log.warning("device outbox poll failed", exc_info=True)
            except Exception:
                log.exception("device outbox poll failed")

    async def poll_once(self) -> None:
        """Deliver messages after the cursor. A gap in seq (allocated by another
        process, not yet committed) holds the cursor back for up to 5 s."""
        floor = min([self._cursor, *(s - 1 for s in self._pending_gaps)])
        cursor = self.services.store["device_messages"].find({"seq": {"$gt": floor}}, sort=[("seq", 1)], limit=1000)
        messages = [m async for m in cursor]
        seen = {int(m["seq"]) for m in messages}
        now = time.monotonic()
        for seq in list(self._pending_gaps):
            if seq in seen or now - self._pending_gaps[seq] > 5.0:
                del self._pending_gaps[seq]
        expected = self._cursor + 1
        for message in messages:
            seq = int(message["seq"])
            if seq > self._cursor:
                for missing in range(expected, seq):
                    self._pending_gaps.setdefault(missing, now)
                expected = seq + 1
                self._cursor = seq
            await self._fan_out(message)

    async def _fan_out(self, message: Mapping[str, Any]) -> None:
        key = message["audience"]
        targets = [c for c in self.connections.values() if c.ready and key in c.device.audience]
        if not targets:
            return
        text = json.dumps(message_frame(message), ensure_ascii=False, default=str)  # once, not per device

        async def after_replay(conn: Connection) -> None:
            async with conn.lock:
                await self._send_message(conn, message, text)

        pending: list[Any] = []
        for conn in targets:
            if conn.lock.locked():  # replaying to this device right now: queue behind it
                pending.append(after_replay(conn))
            else:
                started = self._start_send(conn, message, text)
                if started is not None:
                    pending.append(started)
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


def hub_of(services: Services) -> DeviceHub:
    """The process's hub (started at boot, ``yiwang.boot``)."""
    return services.resources.get(DeviceHub)


async def online_by_hall(store: Store) -> dict[str, tuple[int, int]]:
    """Per hall: active devices, and those online (flag set and seen within twice the write interval).
    The fleet is bounded by hardware (thousands, not millions), so one projected read is fine."""
    stale = utcnow() - dt.timedelta(seconds=2 * LAST_SEEN_WRITE_SECONDS + 30)
    counts: dict[str, tuple[int, int]] = {}
    async for doc in store["devices"].find({"status": "active"}, {"hall": 1, "online": 1, "last_seen": 1}):
        seen = doc.get("last_seen")
        live = bool(doc.get("online")) and seen is not None and as_utc(seen) >= stale
        active, online = counts.get(doc["hall"], (0, 0))
        counts[doc["hall"]] = (active + 1, online + int(live))
    return counts


def online_ids(services: Services) -> Iterable[str]:
    return list(hub_of(services).connections)


async def dev_enrolment_code(services: Services) -> str:
    """Development only: a fresh code for the demo hall (the device agent's --dev mode)."""
    if services.config.production:
        raise Forbidden("device.dev_only", "仅限开发环境")
    created = await create_enrolment_code(services, "gz-th-center", "开发用自助终端", location="开发机")
    return str(created["code"])

