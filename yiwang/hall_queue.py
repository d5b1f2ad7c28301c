"""一窗 queue: tickets by service category of a hall, windows calling them, the hall display,
remote tickets and appointments (see docs/queue.md).

No Tornado here. Collections (declared in ``yiwang.store.INDEXES``):

- ``queue_halls`` — per hall (``_id`` = hall code): categories, priorities, door code,
  coordinates, appointment slots, near-turn threshold. Edited in the console.
- ``queue_counters`` — ticket numbers per hall, day and category (``<hall>:<day>:<cat>``) and
  the call sequence per hall (``calls:<hall>``), each one atomic ``$inc``.
- ``queue_tickets`` — one per ticket; ``status`` waiting → called → done | no_show
  (a transfer puts a called ticket back to waiting, at the front of its new queue).
- ``queue_calls`` — every call and recall with an increasing ``seq`` per hall: what the hall
  display polls (no change streams in the embedded DB).
- ``queue_appointments`` / ``queue_slots`` — booked slots and their counters.

Calling is one conditional ``find_one_and_update`` on a waiting ticket, so two windows calling at
once never get the same ticket. No personal data is stored here: a remote ticket keeps the
mini-program account id (for its subscribe message), an appointment the person's blind index.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import logging
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from yiwang import audit, devices
from yiwang.crypto import constant_time_equal, random_token
from yiwang.errors import Conflict, Forbidden, Gone, InvalidInput, NotFound
from yiwang.notifications import enqueue
from yiwang.timeutil import SHANGHAI, format_local, is_working_day, local_today, utcnow

if TYPE_CHECKING:
    from yiwang.runtime import Services
    from yiwang.store import Document, Store

log = logging.getLogger(__name__)

DEMO_FILE = Path(__file__).resolve().parent.parent / "data" / "demo" / "queue.json"
DISPLAY_GROUP = "display"  # the device group of a hall's display (its agent speaks each call)
DEFAULT_SERVICE_SECONDS = 300.0  # until a category has served anyone
RECENT_SERVED = 20  # service times averaged for the estimate
NEAR_AHEAD_DEFAULT = 3
MAX_CATEGORIES = 12
DOOR_PREFIX = "YWQ1:"
WAITING, CALLED, DONE, NO_SHOW = "waiting", "called", "done", "no_show"
PRIORITY_NORMAL, PRIORITY_PRIORITY, PRIORITY_TRANSFER = 0, 1, 2
PRIORITY_CLAIMS = {"elderly": "老年人优先", "disabled": "残疾人优先"}
STATUS_LABELS = {WAITING: "等候中", CALLED: "已叫号", DONE: "已办结", NO_SHOW: "过号", "cancelled": "已取消"}
_CODE = re.compile(r"^[A-Z]$")
_HOURS = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
_WINDOW = re.compile(r"^[0-9A-Za-z-]{1,16}$")


def today() -> str:
    return local_today().isoformat()


# ---- hall settings ---------------------------------------------------------------


def _default_settings(hall: str) -> Document:
    return {
        "_id": hall,
        "categories": [],
        "priority": {"appointment": True, "elderly": True, "disabled": True},
        "near_ahead": NEAR_AHEAD_DEFAULT,
        "door_code": "",
        "location": None,
        "appointments": {"slot_minutes": 30, "per_slot": 4, "days_ahead": 7, "hours": "09:00-12:00, 13:30-17:00"},
        "version": 0,
    }


async def settings(services: Services, hall: str) -> Document:
    """The hall's queue settings (defaults with no categories when never configured)."""
    await services.catalog.hall(hall)  # NotFound for an unknown hall
    doc = await services.store["queue_halls"].find_one({"_id": hall})
    merged = _default_settings(hall)
    if doc:
        merged.update(doc)
    return merged


def _category(config: Mapping[str, Any], code: Any) -> Mapping[str, Any]:
    for category in config.get("categories", []):
        if category["code"] == code:
            return category  # type: ignore[no-any-return]
    raise NotFound("queue.category_unknown", "该大厅没有这个业务类别")


def _parse_hours(text: Any) -> list[tuple[int, int]]:
    spans = []
    for raw in str(text or "").replace("，", ",").split(","):
        part = raw.strip().replace(" ", "")
        if not part:
            continue
        found = _HOURS.match(part)
        if not found:
            raise ValueError(part)
        h1, m1, h2, m2 = (int(g) for g in found.groups())
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if not (0 <= start < end <= 24 * 60) or m1 > 59 or m2 > 59:
            raise ValueError(part)
        spans.append((start, end))
    return spans


def _number(raw: Any, field: str, low: float, high: float, problems: dict[str, str], *, integer: bool) -> Any:
    try:
        value = int(str(raw).strip()) if integer else float(str(raw).strip())
    except (TypeError, ValueError):
        problems[field] = "必须是数字"
        return None
    if not low <= value <= high:
        problems[field] = f"须在 {low:g}–{high:g} 之间"
        return None
    return value


def validate_settings(raw: Mapping[str, Any], hall_windows: Sequence[str]) -> Document:
    """A form's settings → the stored fields; every problem at once (``fields``)."""
    problems: dict[str, str] = {}
    categories: list[Document] = []
    seen: set[str] = set()
    for n, entry in enumerate(raw.get("categories") or []):
        code = str(entry.get("code", "")).strip().upper()
        name = str(entry.get("name", "")).strip()
        windows = [str(w).strip() for w in entry.get("windows") or [] if str(w).strip()]
        if not code and not name and not windows:
            continue  # an empty row of the form
        if not _CODE.match(code):
            problems[f"categories.{n}.code"] = "编号须为一个大写字母"
        elif code in seen:
            problems[f"categories.{n}.code"] = "编号重复"
        seen.add(code)
        if not 1 <= len(name) <= 20:
            problems[f"categories.{n}.name"] = "名称须为 1–20 个字"
        unknown = [w for w in windows if w not in hall_windows]
        if unknown:
            problems[f"categories.{n}.windows"] = "本大厅没有窗口 " + "、".join(unknown)
        categories.append({"code": code, "name": name, "windows": windows})
    if not categories:
        problems["categories"] = "至少设置一个业务类别"
    if len(categories) > MAX_CATEGORIES:
        problems["categories"] = f"最多 {MAX_CATEGORIES} 个业务类别"
    near = _number(raw.get("near_ahead", NEAR_AHEAD_DEFAULT), "near_ahead", 1, 10, problems, integer=True)
    location = None
    lat, lng, radius = (str(raw.get(k, "") or "").strip() for k in ("lat", "lng", "radius"))
    if lat or lng or radius:
        la = _number(lat, "lat", -90, 90, problems, integer=False)
        lo = _number(lng, "lng", -180, 180, problems, integer=False)
        ra = _number(radius or "300", "radius", 30, 5000, problems, integer=True)
        if la is not None and lo is not None and ra is not None:
            location = {"lat": la, "lng": lo, "radius_m": ra}
    slot_minutes = _number(raw.get("slot_minutes", 30), "slot_minutes", 10, 120, problems, integer=True)
    per_slot = _number(raw.get("per_slot", 4), "per_slot", 1, 100, problems, integer=True)
    days_ahead = _number(raw.get("days_ahead", 7), "days_ahead", 1, 30, problems, integer=True)
    hours = str(raw.get("hours", "") or "").strip()
    try:
        if not _parse_hours(hours):
            problems["hours"] = "请填写可预约时段，如 09:00-12:00, 13:30-17:00"
    except ValueError as bad:
        problems["hours"] = f"时段格式不正确：{bad}"
    if problems:
        raise InvalidInput("queue.settings_invalid", "排队叫号设置有误，请按提示修改", fields=problems)
    return {
        "categories": categories,
        "priority": {k: bool(raw.get(f"priority_{k}")) for k in ("appointment", "elderly", "disabled")},
        "near_ahead": near,
        "location": location,
        "appointments": {"slot_minutes": slot_minutes, "per_slot": per_slot, "days_ahead": days_ahead,
                         "hours": hours},
    }  # fmt: skip


async def configure(services: Services, hall: str, raw: Mapping[str, Any], by: audit.Actor) -> Document:
    """Save the hall's settings (a hall manager in the console); a door code is made the first time."""
    hall_doc = await services.catalog.hall(hall)
    fields = validate_settings(raw, [str(w["number"]) for w in hall_doc.get("windows", [])])
    before = await settings(services, hall)
    door = before.get("door_code") or random_token(16)
    after = await services.store["queue_halls"].find_one_and_update(
        {"_id": hall},
        {"$set": {**fields, "door_code": door, "updated_at": utcnow()}, "$inc": {"version": 1}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
    ) or {}
    await audit.record(services.store, by, "queue.configure", f"hall:{hall}", channel="console",
                       purpose="console change", detail={"before": _public_settings(before),
                                                         "after": _public_settings(after)})
    return dict(after)


async def renew_door_code(services: Services, hall: str, by: audit.Actor) -> str:
    """A new door QR value (the old printout stops working)."""
    await settings(services, hall)
    code = random_token(16)
    await services.store["queue_halls"].update_one({"_id": hall}, {"$set": {"door_code": code}}, upsert=True)
    await audit.record(services.store, by, "queue.door_code_renewed", f"hall:{hall}", channel="console",
                       purpose="console change")
    return door_value(code)


def door_value(code: str) -> str:
    return DOOR_PREFIX + code if code else ""


def _public_settings(doc: Mapping[str, Any]) -> Document:
    return {k: doc.get(k) for k in ("categories", "priority", "near_ahead", "location", "appointments")}


async def load_demo_queue(services: Services) -> int:
    """Demo categories of data/demo/queue.json for halls never configured (idempotent)."""
    if not DEMO_FILE.exists():
        return 0
    loaded = 0
    for entry in json.loads(DEMO_FILE.read_text(encoding="utf-8")).get("halls", []):
        doc = {**_default_settings(entry["hall"]), **{k: v for k, v in entry.items() if k != "hall"},
               "_id": entry["hall"], "version": 1, "door_code": entry.get("door_code") or random_token(16)}
        with contextlib.suppress(DuplicateKeyError):
            await services.store["queue_halls"].insert_one(doc)
            loaded += 1
    return loaded


# ---- views ----------------------------------------------------------------------


def ticket_view(doc: Mapping[str, Any], *, ahead: int | None = None, wait_minutes: int | None = None) -> Document:
    return {
        "id": doc["_id"],
        "hall": doc["hall"],
        "day": doc["day"],
        "number": doc["number"],
        "category": doc["category"],
        "category_name": doc.get("category_name", ""),
        "status": doc["status"],
        "status_label": STATUS_LABELS.get(doc["status"], doc["status"]),
        "priority": doc.get("priority_reason") or None,
        "transferred": bool(doc.get("transfers")),
        "source": doc.get("source", "kiosk"),
        "window": doc.get("window"),
        "taken_at": doc["taken_at"],
        "called_at": doc.get("called_at"),
        "ahead": ahead,
        "wait_minutes": wait_minutes,
    }


def _order_key(doc: Mapping[str, Any]) -> tuple[int, dt.datetime]:
    return (-int(doc.get("priority", 0)), doc["taken_at"])


_CALL_ORDER = [("priority", -1), ("taken_at", 1)]


async def _ahead(store: Store, doc: Mapping[str, Any]) -> int:
    """Waiting tickets of the same queue that will be called before this one."""
    p = int(doc.get("priority", 0))
    query = {
        "hall": doc["hall"], "day": doc["day"], "category": doc["category"], "status": WAITING,
        "_id": {"$ne": doc["_id"]},
        "$or": [{"priority": {"$gt": p}}, {"priority": p, "taken_at": {"$lt": doc["taken_at"]}}],
    }  # fmt: skip
    return int(await store["queue_tickets"].count_documents(query))


async def service_seconds(store: Store, hall: str, category: str) -> float:
    """Average service time of the category's recent tickets (default 5 minutes)."""
    times = [
        d["service_seconds"]
        async for d in store["queue_tickets"].find(
            {"hall": hall, "category": category, "status": DONE},
            {"service_seconds": 1}, sort=[("done_at", -1)], limit=RECENT_SERVED,
        )
        if isinstance(d.get("service_seconds"), (int, float))
    ]  # fmt: skip
    return sum(times) / len(times) if times else DEFAULT_SERVICE_SECONDS


async def _open_windows(store: Store, hall: str, category: Mapping[str, Any]) -> int:
    """Windows that called this category in the last hour (at least one; at most those configured)."""
    since = utcnow() - dt.timedelta(hours=1)
    recent = {
        d.get("window")
        async for d in store["queue_calls"].find(
            {"hall": hall, "at": {"$gte": since}, "category": category["code"]}, {"window": 1}, limit=200
        )
    }
    configured = len(category.get("windows") or []) or max(len(recent), 1)
    return max(1, min(len(recent) or 1, configured))


async def estimate_minutes(store: Store, hall: str, category: Mapping[str, Any], ahead: int) -> int:
    if ahead <= 0:
        return 0
    per = await service_seconds(store, hall, category["code"])
    return math.ceil(ahead * per / await _open_windows(store, hall, category) / 60)


async def _with_estimate(services: Services, doc: Mapping[str, Any]) -> Document:
    if doc["status"] != WAITING:
        return ticket_view(doc)
    config = await settings(services, doc["hall"])
    ahead = await _ahead(services.store, doc)
    try:
        category = _category(config, doc["category"])
    except NotFound:
        category = {"code": doc["category"], "windows": []}
    return ticket_view(doc, ahead=ahead, wait_minutes=await estimate_minutes(services.store, doc["hall"],
                                                                             category, ahead))


async def overview(services: Services, hall: str) -> Document:
    """Categories with how many wait and the estimated wait (kiosk, mini-program, window page)."""
    config = await settings(services, hall)
    hall_doc = await services.catalog.hall(hall)
    day = today()
    categories = []
    for category in config["categories"]:
        waiting = int(await services.store["queue_tickets"].count_documents(
            {"hall": hall, "day": day, "category": category["code"], "status": WAITING}))
        categories.append({
            "code": category["code"], "name": category["name"], "windows": list(category.get("windows") or []),
            "waiting": waiting, "wait_minutes": await estimate_minutes(services.store, hall, category, waiting),
        })  # fmt: skip
    return {
        "hall": hall, "hall_name": hall_doc.get("name", ""), "day": day, "categories": categories,
        "priority": [k for k, on in config["priority"].items() if on and k in PRIORITY_CLAIMS],
        "remote": {"door_code_required": not config.get("location"), "location": config.get("location")},
    }  # fmt: skip


# ---- taking a ticket -----------------------------------------------------------------


async def _next_number(store: Store, hall: str, day: str, category: str) -> int:
    key = f"{hall}:{day}:{category}"
    for _ in range(3):  # two first tickets of the day may both try to create the counter
        try:
            counter = await store["queue_counters"].find_one_and_update(
                {"_id": key}, {"$inc": {"value": 1}}, upsert=True, return_document=ReturnDocument.AFTER
            )
        except DuplicateKeyError:
            continue
        if counter is not None:
            return int(counter["value"])
    raise Conflict("queue.busy", "取号繁忙，请重试")


def _priority(config: Mapping[str, Any], claim: Any, appointment: bool) -> tuple[int, str]:
    if claim not in (None, "", "none") and claim not in PRIORITY_CLAIMS:
        raise InvalidInput("queue.priority_invalid", "优先类别不正确", fields={"priority": "elderly 或 disabled"})
    rules = config.get("priority", {})
    if appointment and rules.get("appointment"):
        return PRIORITY_PRIORITY, "appointment"
    if claim in PRIORITY_CLAIMS and rules.get(claim):
        return PRIORITY_PRIORITY, str(claim)
    return PRIORITY_NORMAL, ""


async def take_ticket(
    services: Services, hall: str, category: Any, *, by: audit.Actor, source: str,
    account_id: str | None = None, priority_claim: Any = None, appointment_id: str | None = None,
) -> Document:
    """A new ticket: the next number of the category today (``A001``…), with people ahead and the wait."""
    config = await settings(services, hall)
    if not isinstance(category, str):
        raise InvalidInput("queue.category_required", "请选择业务类别", fields={"category": "必填"})
    chosen = _category(config, category)
    priority, reason = _priority(config, priority_claim, appointment_id is not None)
    day = today()
    n = await _next_number(services.store, hall, day, chosen["code"])
    now = utcnow()
    doc: Document = {
        "_id": uuid.uuid4().hex, "hall": hall, "day": day, "category": chosen["code"],
        "category_name": chosen["name"], "number": f"{chosen['code']}{n:03d}", "seq": n,
        "status": WAITING, "priority": priority, "priority_reason": reason, "source": source,
        "account_id": account_id, "appointment_id": appointment_id, "taken_at": now,
        "window": None, "target_window": None, "recalls": 0, "near_notified": False,
    }  # fmt: skip
    await services.store["queue_tickets"].insert_one(doc)
    await audit.record(services.store, by, "queue.ticket_taken", f"queue_ticket:{doc['_id']}",
                       channel=source if source != "appointment" else "mobile", purpose="排队取号",
                       detail={"hall": hall, "number": doc["number"], "priority": reason})
    return await _with_estimate(services, doc)


def distance_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance (haversine), metres."""
    r = 6_371_000.0
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(min(1.0, a)))


def check_presence(config: Mapping[str, Any], door_code: Any, position: Any) -> str:
    """A remote ticket needs the hall's door QR value, or (if the hall has coordinates) a position
    inside its area. Returns how presence was shown."""
    stored = str(config.get("door_code") or "")
    if isinstance(door_code, str) and door_code:
        given = door_code.strip()
        given = given[len(DOOR_PREFIX):] if given.startswith(DOOR_PREFIX) else given
        if stored and constant_time_equal(given, stored):
            return "door_code"
        raise Forbidden("queue.door_code_invalid", "大厅门口二维码无效，请重新扫描")
    location = config.get("location")
    if isinstance(position, Mapping) and location:
        try:
            lat, lng = float(position["lat"]), float(position["lng"])
        except (KeyError, TypeError, ValueError):
            raise InvalidInput("queue.position_invalid", "位置信息不正确", fields={"position": "lat、lng"}) from None
        if not (-90 <= lat <= 90 and -180 <= lng <= 180):
            raise InvalidInput("queue.position_invalid", "位置信息不正确", fields={"position": "超出范围"})
        if distance_m(lat, lng, location["lat"], location["lng"]) <= float(location["radius_m"]):
            return "position"
        raise Forbidden("queue.too_far", "您不在大厅附近，请到大厅后再取号")
    if location:
        raise Forbidden("queue.presence_required", "请扫描大厅门口的二维码，或允许获取位置后再取号")
    raise Forbidden("queue.presence_required", "请扫描大厅门口的二维码后再取号")


async def remote_ticket(
    services: Services, account_id: str, actor: audit.Actor, hall: Any, category: Any, *,
    door_code: Any = None, position: Any = None, priority_claim: Any = None,
) -> Document:
    """A ticket from the mini-program: presence shown; one waiting ticket per account and hall."""
    if not isinstance(hall, str) or not hall:
        raise InvalidInput("queue.hall_required", "请选择服务大厅", fields={"hall": "必填"})
    config = await settings(services, hall)
    _category(config, category)
    check_presence(config, door_code, position)
    held = await services.store["queue_tickets"].find_one(
        {"account_id": account_id, "hall": hall, "day": today(), "status": WAITING}, {"number": 1})
    if held:
        raise Conflict("queue.ticket_held", f"您已取号 {held['number']}，请等候叫号")
    return await take_ticket(services, hall, category, by=actor, source="mobile", account_id=account_id,
                             priority_claim=priority_claim)


async def get_ticket(services: Services, ticket_id: str, *, account_id: str | None = None,
                     hall: str | None = None) -> Document:
    query: Document = {"_id": ticket_id}
    if account_id is not None:
        query["account_id"] = account_id
    if hall is not None:
        query["hall"] = hall
    doc = await services.store["queue_tickets"].find_one(query)
    if doc is None:
        raise NotFound("queue.ticket_not_found", "找不到该号票")
    return await _with_estimate(services, doc)


async def my_tickets(services: Services, account_id: str) -> list[Document]:
    docs = [d async for d in services.store["queue_tickets"].find(
        {"account_id": account_id, "day": today()}, sort=[("taken_at", -1)], limit=20)]
    return [await _with_estimate(services, d) for d in docs]


async def cancel_ticket(services: Services, account_id: str, actor: audit.Actor, ticket_id: str) -> Document:
    doc = await services.store["queue_tickets"].find_one_and_update(
        {"_id": ticket_id, "account_id": account_id, "status": WAITING},
        {"$set": {"status": "cancelled", "cancelled_at": utcnow()}}, return_document=ReturnDocument.AFTER)
    if doc is None:
        await get_ticket(services, ticket_id, account_id=account_id)  # 404 when not theirs
        raise Conflict("queue.not_waiting", "该号票已叫号或已结束，不能取消")
    await audit.record(services.store, actor, "queue.ticket_cancelled", f"queue_ticket:{ticket_id}",
                       channel="mobile", purpose="排队取号")
    return ticket_view(doc)


# ---- windows -------------------------------------------------------------------------


def _window_name(hall_doc: Mapping[str, Any], window: str) -> str:
    for w in hall_doc.get("windows", []):
        if str(w.get("number")) == window:
            return str(w.get("name", ""))
    raise NotFound("queue.window_unknown", "本大厅没有这个窗口")


def window_categories(config: Mapping[str, Any], window: str) -> list[str]:
    """The categories a window serves: those that list it, or all when none lists it."""
    named = [c["code"] for c in config["categories"] if window in (c.get("windows") or [])]
    return named or [c["code"] for c in config["categories"]]


async def _current(store: Store, hall: str, window: str) -> Document | None:
    doc: Document | None = await store["queue_tickets"].find_one(
        {"hall": hall, "day": today(), "window": window, "status": CALLED}, sort=[("called_at", -1)])
    return doc


async def _settle(services: Services, current: Mapping[str, Any], status: str, by: audit.Actor) -> Document:
    now = utcnow()
    fields: Document = {"status": status, "done_at": now}
    if status == DONE and current.get("called_at"):
        fields["service_seconds"] = (now - _aware(current["called_at"])).total_seconds()
    doc = await services.store["queue_tickets"].find_one_and_update(
        {"_id": current["_id"], "status": CALLED}, {"$set": fields}, return_document=ReturnDocument.AFTER)
    if doc is None:
        raise Conflict("queue.not_called", "该号票已处理")
    await audit.record(services.store, by, f"queue.{'served' if status == DONE else 'no_show'}",
                       f"queue_ticket:{doc['_id']}", channel="console", purpose="窗口叫号",
                       detail={"number": doc["number"], "window": doc.get("window")})
    return dict(doc)


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


async def call_next(services: Services, hall: str, window: Any, by: audit.Actor, *,
                    number: Any = None) -> Document:
    """Call the next ticket for this window (or the one numbered ``number``); the ticket still called
    there is then served (its service time recorded). If nothing can be called, nothing changes.
    Transferred tickets come first, then priority, then the order taken."""
    hall_doc, config, window = await _window_context(services, hall, window)
    day = today()
    now = utcnow()
    base: Document = {"hall": hall, "day": day, "status": WAITING}
    if number not in (None, ""):
        if not isinstance(number, str) or not re.match(r"^[A-Z]\d{3,4}$", number.strip().upper()):
            raise InvalidInput("queue.number_invalid", "号码格式不正确，如 A012", fields={"number": "如 A012"})
        query: Document = {**base, "number": number.strip().upper()}
    else:
        query = {**base, "$or": [{"target_window": window},
                                 {"category": {"$in": window_categories(config, window)}, "target_window": None}]}
    update = {"$set": {"status": CALLED, "window": window, "called_at": now, "target_window": None,
                       "called_by": by.id},
              "$push": {"calls": {"window": window, "at": now}}}  # fmt: skip
    previous = await _current(services.store, hall, window)
    doc = await services.store["queue_tickets"].find_one_and_update(
        query, update, sort=[("priority", -1), ("taken_at", 1)], return_document=ReturnDocument.AFTER)
    if doc is None:  # nothing changed: the ticket at the window stays as it was
        if number not in (None, ""):
            raise NotFound("queue.number_not_waiting", f"{number} 号不在等候中")
        raise NotFound("queue.empty", "暂无等候的号票")
    if previous is not None:  # the one still called here has been served
        with contextlib.suppress(Conflict):
            await _settle(services, previous, DONE, by)
    if doc.get("wait_seconds") is None:
        await services.store["queue_tickets"].update_one(
            {"_id": doc["_id"]}, {"$set": {"wait_seconds": (now - _aware(doc["taken_at"])).total_seconds()}})
    await audit.record(services.store, by, "queue.call", f"queue_ticket:{doc['_id']}", channel="console",
                       purpose="窗口叫号", detail={"number": doc["number"], "window": window})
    await _announce(services, hall_doc, doc, window, kind="call", by=by)
    await notify_near(services, hall, doc["category"])
    return ticket_view(doc)


async def _window_context(services: Services, hall: str, window: Any) -> tuple[Document, Document, str]:
    if not isinstance(window, str) or not _WINDOW.match(window):
        raise InvalidInput("queue.window_required", "请选择窗口", fields={"window": "必填"})
    hall_doc = await services.catalog.hall(hall)
    _window_name(hall_doc, window)
    config = await settings(services, hall)
    if not config["categories"]:
        raise NotFound("queue.not_configured", "本大厅尚未设置排队叫号")
    return hall_doc, config, window


async def _called_here(services: Services, hall: str, window: str) -> Document:
    current = await _current(services.store, hall, window)
    if current is None:
        raise NotFound("queue.none_called", "本窗口当前没有已叫的号")
    return current


async def recall(services: Services, hall: str, window: Any, by: audit.Actor) -> Document:
    """Call the ticket at this window again (display and speaker)."""
    hall_doc, _config, window = await _window_context(services, hall, window)
    current = await _called_here(services, hall, window)
    doc = await services.store["queue_tickets"].find_one_and_update(
        {"_id": current["_id"], "status": CALLED}, {"$inc": {"recalls": 1}}, return_document=ReturnDocument.AFTER)
    if doc is None:
        raise Conflict("queue.not_called", "该号票已处理")
    await audit.record(services.store, by, "queue.recall", f"queue_ticket:{doc['_id']}", channel="console",
                       purpose="窗口叫号", detail={"number": doc["number"], "window": window})
    await _announce(services, hall_doc, doc, window, kind="recall", by=by)
    return ticket_view(doc)


async def no_show(services: Services, hall: str, window: Any, by: audit.Actor) -> Document:
    _hall_doc, _config, window = await _window_context(services, hall, window)
    return ticket_view(await _settle(services, await _called_here(services, hall, window), NO_SHOW, by))


async def finish(services: Services, hall: str, window: Any, by: audit.Actor) -> Document:
    _hall_doc, _config, window = await _window_context(services, hall, window)
    return ticket_view(await _settle(services, await _called_here(services, hall, window), DONE, by))


async def transfer(services: Services, hall: str, window: Any, by: audit.Actor, *,
                   to_window: Any = None, to_category: Any = None) -> Document:
    """The ticket at this window goes to another window or category, first in that queue (same number)."""
    hall_doc, config, window = await _window_context(services, hall, window)
    to_window = to_window or None
    to_category = to_category or None
    if to_window is None and to_category is None:
        raise InvalidInput("queue.transfer_target", "请选择转到的窗口或业务类别",
                           fields={"to_window": "二选一", "to_category": "二选一"})
    fields: Document = {"status": WAITING, "priority": PRIORITY_TRANSFER, "window": None}
    if to_window is not None:
        if not isinstance(to_window, str) or to_window == window:
            raise InvalidInput("queue.transfer_target", "请选择其他窗口", fields={"to_window": "不能是本窗口"})
        _window_name(hall_doc, to_window)
        fields["target_window"] = to_window
    if to_category is not None:
        chosen = _category(config, to_category)
        fields.update(category=chosen["code"], category_name=chosen["name"])
    current = await _called_here(services, hall, window)
    doc = await services.store["queue_tickets"].find_one_and_update(
        {"_id": current["_id"], "status": CALLED},
        {"$set": fields, "$push": {"transfers": {"from": window, "to_window": to_window,
                                                 "to_category": to_category, "at": utcnow()}}},
        return_document=ReturnDocument.AFTER)
    if doc is None:
        raise Conflict("queue.not_called", "该号票已处理")
    await audit.record(services.store, by, "queue.transfer", f"queue_ticket:{doc['_id']}", channel="console",
                       purpose="窗口叫号", detail={"number": doc["number"], "from": window, "to_window": to_window,
                                                   "to_category": to_category})
    return ticket_view(doc)


async def window_state(services: Services, hall: str, window: str | None) -> Document:
    """What a window's page shows: the ticket it called, the queues, the latest calls."""
    hall_doc = await services.catalog.hall(hall)
    if window:
        _window_name(hall_doc, window)
    config = await settings(services, hall)
    current = await _current(services.store, hall, window) if window else None
    board = await latest_calls(services.store, hall)
    waiting = [
        await _with_estimate(services, d)
        async for d in services.store["queue_tickets"].find(
            {"hall": hall, "day": today(), "status": WAITING}, sort=_CALL_ORDER, limit=30)
    ]  # fmt: skip
    return {
        "hall": hall_doc, "config": config, "window": window,
        "serves": window_categories(config, window) if window and config["categories"] else [],
        "current": ticket_view(current) if current else None, "waiting": waiting,
        "overview": await overview(services, hall), "calls": board["calls"],
    }  # fmt: skip


# ---- calls: the hall display and the speaker ------------------------------------------


class CallBoard:
    """Wakes this process's display long-polls at once when a call is made here
    (other processes' calls are seen by the poll of ``queue_calls``)."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def event(self, hall: str) -> asyncio.Event:
        return self._events.setdefault(hall, asyncio.Event())

    def wake(self, hall: str) -> None:
        event = self._events.pop(hall, None)
        if event is not None:
            event.set()

    async def aclose(self) -> None:
        for event in self._events.values():
            event.set()
        self._events.clear()


def board_of(services: Services) -> CallBoard:
    """The process's board of calls (a resource started at boot)."""
    return services.resources.get(CallBoard)


def call_text(number: str, window: str) -> str:
    return f"请 {number} 号到 {window} 号窗口办理"


async def _announce(services: Services, hall_doc: Mapping[str, Any], ticket: Mapping[str, Any], window: str, *,
                    kind: str, by: audit.Actor) -> None:
    hall = str(hall_doc["code"])
    counter = await services.store["queue_counters"].find_one_and_update(
        {"_id": f"calls:{hall}"}, {"$inc": {"value": 1}}, upsert=True, return_document=ReturnDocument.AFTER)
    seq = int(counter["value"]) if counter else 0
    await services.store["queue_calls"].insert_one({
        "_id": uuid.uuid4().hex, "hall": hall, "seq": seq, "kind": kind, "ticket": ticket["_id"],
        "number": ticket["number"], "category": ticket["category"], "window": window,
        "window_name": _window_name(hall_doc, window), "at": utcnow(),
    })  # fmt: skip
    board_of(services).wake(hall)
    # The hall display's agent says it (``topic: call`` → its speaker) and shows it.

    try:
        await devices.push(services, {"scope": "group", "hall": hall, "group": DISPLAY_GROUP},
                           {"topic": "call", "number": ticket["number"], "window": window}, by=by)
    except Exception:  # the display is a nicety: the call stands without it
        log.warning("queue call not pushed to the display", exc_info=True)


def _call_view(doc: Mapping[str, Any]) -> Document:
    return {"seq": doc["seq"], "number": doc["number"], "window": doc["window"],
            "window_name": doc.get("window_name", ""), "kind": doc.get("kind", "call"),
            "at": doc["at"], "text": call_text(doc["number"], doc["window"])}  # fmt: skip


async def latest_calls(store: Store, hall: str, limit: int = 10) -> Document:
    calls = [_call_view(d) async for d in store["queue_calls"].find({"hall": hall}, sort=[("seq", -1)], limit=limit)]
    return {"seq": calls[0]["seq"] if calls else 0, "calls": calls}


async def wait_for_calls(services: Services, hall: str, since: int, seconds: float = 20.0) -> Document:
    """Long-poll: answer as soon as a call after ``since`` exists (woken in-process, polled every 0.5 s)."""
    await services.catalog.hall(hall)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(0.0, min(seconds, 25.0))
    board = board_of(services)
    while True:
        event = board.event(hall)
        latest = await latest_calls(services.store, hall)
        remaining = deadline - loop.time()
        if latest["seq"] > since or remaining <= 0:
            return latest
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout=min(0.5, remaining))


# ---- the near-turn notice -----------------------------------------------------------


async def notify_near(services: Services, hall: str, category: str) -> int:
    """Remote tickets now at most ``near_ahead`` from their turn get one subscribe message."""

    config = await settings(services, hall)
    near = int(config.get("near_ahead") or NEAR_AHEAD_DEFAULT)
    front = [d async for d in services.store["queue_tickets"].find(
        {"hall": hall, "day": today(), "category": category, "status": WAITING}, sort=_CALL_ORDER, limit=near + 1)]
    hall_name = str((await services.catalog.hall(hall)).get("name", ""))
    sent = 0
    for ahead, doc in enumerate(front):
        if ahead > near or not doc.get("account_id") or doc.get("near_notified"):
            continue
        claimed = await services.store["queue_tickets"].find_one_and_update(
            {"_id": doc["_id"], "near_notified": False}, {"$set": {"near_notified": True}})
        if claimed is None:
            continue
        try:
            if await enqueue(services, doc["account_id"], "queue_near",
                             {"number": doc["number"], "hall": hall_name, "ahead": ahead,
                              "hint": "快到您了，请留意叫号"},
                             f"pages/queue/ticket?id={doc['_id']}", f"queue_ticket:{doc['_id']}"):
                sent += 1
        except Exception:
            log.exception("near-turn notice not queued", extra={"fields": {"ticket": doc["_id"]}})
    return sent


# ---- appointments --------------------------------------------------------------------


def _slot_times(config: Mapping[str, Any]) -> list[str]:
    rules = config["appointments"]
    step = int(rules["slot_minutes"])
    out = []
    for start, end in _parse_hours(rules["hours"]):
        t = start
        while t + step <= end:
            out.append(f"{t // 60:02d}:{t % 60:02d}")
            t += step
    return out


def _parse_day(raw: Any, config: Mapping[str, Any]) -> dt.date:
    try:
        day = dt.date.fromisoformat(str(raw))
    except ValueError:
        raise InvalidInput("queue.day_invalid", "日期格式不正确，如 2026-12-03", fields={"day": "YYYY-MM-DD"}) from None
    first = local_today()
    last = first + dt.timedelta(days=int(config["appointments"]["days_ahead"]))
    if not first <= day <= last:
        raise InvalidInput("queue.day_out_of_range", f"只能预约今天起 {config['appointments']['days_ahead']} 天内",
                           fields={"day": "超出可预约范围"})
    if not is_working_day(day):
        raise InvalidInput("queue.day_closed", "该日不是工作日，大厅不办公", fields={"day": "非工作日"})
    return day


def _slot_start(day: dt.date, slot: str) -> dt.datetime:
    hour, minute = (int(x) for x in slot.split(":"))
    return dt.datetime.combine(day, dt.time(hour, minute), SHANGHAI).astimezone(dt.UTC)


async def slots(services: Services, hall: str, category: Any, day: Any) -> Document:
    config = await settings(services, hall)
    chosen = _category(config, category)
    when = _parse_day(day, config)
    limit = int(config["appointments"]["per_slot"])
    now = utcnow()
    keys = {f"{hall}:{when.isoformat()}:{chosen['code']}:{s}": s for s in _slot_times(config)}
    taken = {d["_id"]: int(d.get("taken", 0)) async for d in services.store["queue_slots"].find(
        {"_id": {"$in": list(keys)}})}
    out = [{"slot": s, "limit": limit, "remaining": max(0, limit - taken.get(k, 0)),
            "open": _slot_start(when, s) > now} for k, s in keys.items()]  # fmt: skip
    return {"hall": hall, "category": chosen["code"], "day": when.isoformat(), "slots": out}


def _appointment_id(person_index: str, hall: str, day: str) -> str:
    """One appointment per person, hall and day: the id is made from them (no personal data)."""
    return hashlib.sha256(f"appt|{person_index}|{hall}|{day}".encode()).hexdigest()[:32]


async def book(  # noqa: PLR0917 (the person, then what they book)
    services: Services, person_index: str, account_id: str, actor: audit.Actor, hall: Any, category: Any,
    day: Any, slot: Any,
) -> Document:
    """Book a slot: refused when full (``queue.slot_full``), past, or the person already holds one that day."""
    if not isinstance(hall, str) or not hall:
        raise InvalidInput("queue.hall_required", "请选择服务大厅", fields={"hall": "必填"})
    config = await settings(services, hall)
    chosen = _category(config, category)
    when = _parse_day(day, config)
    if not isinstance(slot, str) or slot not in _slot_times(config):
        raise InvalidInput("queue.slot_invalid", "预约时段不正确", fields={"slot": "请选择列出的时段"})
    if _slot_start(when, slot) <= utcnow():
        raise InvalidInput("queue.slot_past", "该时段已过", fields={"slot": "已过"})
    day_s = when.isoformat()
    appointment_id = _appointment_id(person_index, hall, day_s)
    if await services.store["queue_appointments"].find_one({"_id": appointment_id}, {"_id": 1}):
        raise Conflict("queue.appointment_held", "您当天在该大厅已有预约")
    key = f"{hall}:{day_s}:{chosen['code']}:{slot}"
    limit = int(config["appointments"]["per_slot"])
    with contextlib.suppress(DuplicateKeyError):
        await services.store["queue_slots"].update_one({"_id": key}, {"$setOnInsert": {"taken": 0}}, upsert=True)
    counted = await services.store["queue_slots"].find_one_and_update(
        {"_id": key, "taken": {"$lt": limit}}, {"$inc": {"taken": 1}})
    if counted is None:
        raise Conflict("queue.slot_full", "该时段已约满，请选择其他时段")
    doc: Document = {
        "_id": appointment_id, "hall": hall, "day": day_s, "slot": slot, "category": chosen["code"],
        "category_name": chosen["name"], "account_id": account_id, "status": "booked",
        "slot_key": key, "created_at": utcnow(), "ticket": None,
    }  # fmt: skip
    try:
        await services.store["queue_appointments"].insert_one(doc)
    except DuplicateKeyError:
        await services.store["queue_slots"].update_one({"_id": key}, {"$inc": {"taken": -1}})
        raise Conflict("queue.appointment_held", "您当天在该大厅已有预约") from None
    await audit.record(services.store, actor, "queue.appointment_booked", f"queue_appointment:{appointment_id}",
                       channel="mobile", purpose="预约取号", detail={"hall": hall, "day": day_s, "slot": slot})
    return appointment_view(doc)


def appointment_view(doc: Mapping[str, Any]) -> Document:
    return {k: doc.get(k) for k in ("hall", "day", "slot", "category", "category_name", "status", "ticket")} | {
        "id": doc["_id"]}


async def my_appointments(services: Services, account_id: str) -> list[Document]:
    return [appointment_view(d) async for d in services.store["queue_appointments"].find(
        {"account_id": account_id, "day": {"$gte": today()}}, sort=[("day", 1), ("slot", 1)], limit=50)]


async def cancel_appointment(services: Services, account_id: str, actor: audit.Actor, appointment_id: str) -> None:
    doc = await services.store["queue_appointments"].find_one_and_delete(
        {"_id": appointment_id, "account_id": account_id, "status": "booked"})
    if doc is None:
        raise NotFound("queue.appointment_not_found", "找不到可取消的预约")
    await services.store["queue_slots"].update_one({"_id": doc["slot_key"]}, {"$inc": {"taken": -1}})
    await audit.record(services.store, actor, "queue.appointment_cancelled", f"queue_appointment:{appointment_id}",
                       channel="mobile", purpose="预约取号")


async def check_in(
    services: Services, account_id: str, actor: audit.Actor, appointment_id: str, *,
    door_code: Any = None, position: Any = None,
) -> Document:
    """On the day, at the hall: the appointment becomes a ticket (priority if the hall gives it)."""
    doc = await services.store["queue_appointments"].find_one({"_id": appointment_id, "account_id": account_id})
    if doc is None:
        raise NotFound("queue.appointment_not_found", "找不到该预约")
    if doc["day"] != today():
        raise Conflict("queue.not_today", "只能在预约当天签到取号")
    if doc["status"] != "booked":
        raise Gone("queue.appointment_used", "该预约已签到取号")
    check_presence(await settings(services, doc["hall"]), door_code, position)
    claimed = await services.store["queue_appointments"].find_one_and_update(
        {"_id": appointment_id, "status": "booked"}, {"$set": {"status": "checked_in", "checked_in_at": utcnow()}})
    if claimed is None:
        raise Gone("queue.appointment_used", "该预约已签到取号")
    ticket = await take_ticket(services, doc["hall"], doc["category"], by=actor, source="appointment",
                               account_id=account_id, appointment_id=appointment_id)
    await services.store["queue_appointments"].update_one({"_id": appointment_id}, {"$set": {"ticket": ticket["id"]}})
    return ticket


# ---- figures ---------------------------------------------------------------------------


async def day_figures(store: Store, hall: str, day: str | None = None) -> Document:
    """Tickets, served, no-shows, average wait and service minutes of a hall's day, by category."""
    by: dict[str, Document] = {}
    async for d in store["queue_tickets"].find({"hall": hall, "day": day or today()}):
        row = by.setdefault(d["category"], {"category": d["category"], "tickets": 0, "served": 0, "no_show": 0,
                                            "_wait": [], "_service": []})
        row["tickets"] += 1
        row["served"] += d["status"] == DONE
        row["no_show"] += d["status"] == NO_SHOW
        if isinstance(d.get("wait_seconds"), (int, float)):
            row["_wait"].append(d["wait_seconds"])
        if isinstance(d.get("service_seconds"), (int, float)):
            row["_service"].append(d["service_seconds"])
    rows = []
    for row in sorted(by.values(), key=lambda r: r["category"]):
        wait, service = row.pop("_wait"), row.pop("_service")
        row["avg_wait_minutes"] = round(sum(wait) / len(wait) / 60, 1) if wait else None
        row["avg_service_minutes"] = round(sum(service) / len(service) / 60, 1) if service else None
        rows.append(row)
    return {"hall": hall, "day": day or today(), "rows": rows}


def local_time(moment: dt.datetime | None) -> str:
    return format_local(moment, "%H:%M") if moment else ""
