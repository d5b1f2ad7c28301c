"""The console's figures: aggregation pipelines per place and period.

Every pipeline starts with a ``$match`` on an indexed field (a time field, plus
the place) so it stays fast with a year of data; the rest of the work is a
``$group``. Collections or fields that are not there yet simply count as zero.

Place filter (:class:`Scope`): kiosk usage by hall; certificate copies by the
kiosks that made them; applications, evaluations by department (a city's
departments are those whose region lies in it) and, for a hall, by the items its
windows handle; complaints by the place they concern (``yiwang.complaints``):
``hall`` for a hall, ``department`` for a department, ``city`` for a city —
each with ``created_at`` in a compound index.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from yiwang.errors import InvalidInput
from yiwang.store import Document, Store
from yiwang.timeutil import local_today, utcnow

PERIODS = {"7d": 7, "30d": 30, "90d": 90, "365d": 365}
BEIJING = dt.timedelta(hours=8)
SESSION_KINDS = ("session_start", "session", "identify")
PRINT_KINDS = ("print", "certificate_print", "checklist_print")


@dataclass(frozen=True)
class Scope:
    """None means "no restriction" (province)."""

    label: str
    halls: Sequence[str] | None = None
    devices: Sequence[str] | None = None
    departments: Sequence[str] | None = None
    items: Sequence[str] | None = None
    city: str | None = None
    kind: str = "province"  # province | city | hall | department


@dataclass(frozen=True)
class Period:
    name: str
    start: dt.datetime
    end: dt.datetime

    @property
    def days(self) -> int:
        return max(1, round((self.end - self.start).total_seconds() / 86400))

    @property
    def bucket(self) -> str:
        return "%Y-%m" if self.days > 92 else "%Y-%m-%d"


def period(name: str, now: dt.datetime | None = None) -> Period:
    if name not in PERIODS:
        raise InvalidInput("figures.period_invalid", "统计周期不正确", fields={"period": "可选 7d、30d、90d、365d"})
    end = now or utcnow()
    return Period(name, end - dt.timedelta(days=PERIODS[name]), end)


def _in(field: str, values: Sequence[str] | None) -> Document:
    return {} if values is None else {field: {"$in": list(values)}}


def _local_bucket(field: str, fmt: str) -> Document:
    # Beijing-time day/month: shift by 8 h (no timezone support needed in the engine).
    return {"$dateToString": {"format": fmt, "date": {"$add": [f"${field}", BEIJING.total_seconds() * 1000]}}}


async def _rows(store: Store, collection: str, pipeline: list[Document]) -> list[Document]:
    cursor = await store[collection].aggregate(pipeline)
    return [row async for row in cursor]


# ---- one function per table -------------------------------------------------------------


async def kiosk_usage(store: Store, scope: Scope, p: Period) -> list[Document]:
    """Per day (or month): kiosk sessions, scenario uses, prints."""
    match = {"at": {"$gte": p.start, "$lt": p.end}, **_in("hall", scope.halls)}
    rows = await _rows(store, "kiosk_events", [
        {"$match": match},
        {"$group": {"_id": {"t": _local_bucket("at", p.bucket), "k": "$kind"}, "n": {"$sum": 1}}},
    ])  # fmt: skip
    table: dict[str, dict[str, Any]] = {}
    for row in rows:
        t, kind = row["_id"]["t"], str(row["_id"].get("k") or "")
        entry = table.setdefault(t, {"period": t, "sessions": 0, "scenario_uses": 0, "prints": 0})
        if kind in SESSION_KINDS:
            entry["sessions"] += row["n"]
        elif kind.startswith("scenario"):
            entry["scenario_uses"] += row["n"]
        elif kind in PRINT_KINDS:
            entry["prints"] += row["n"]
    return [table[t] for t in sorted(table)]


async def certificate_use(store: Store, scope: Scope, p: Period) -> list[Document]:
    """Per day (or month): certificate copies made (retrievals), split by who made them."""
    match = {"made_at": {"$gte": p.start, "$lt": p.end}, **_in("made_by.id", scope.devices)}
    rows = await _rows(store, "certificate_copies", [
        {"$match": match},
        {"$group": {"_id": {"t": _local_bucket("made_at", p.bucket), "k": "$made_by.kind"}, "n": {"$sum": 1}}},
    ])  # fmt: skip
    table: dict[str, dict[str, Any]] = {}
    for row in rows:
        t = row["_id"]["t"]
        entry = table.setdefault(t, {"period": t, "retrievals": 0, "at_kiosks": 0})
        entry["retrievals"] += row["n"]
        if row["_id"].get("k") == "kiosk":
            entry["at_kiosks"] += row["n"]
    return [table[t] for t in sorted(table)]


def _application_match(scope: Scope, p: Period) -> Document:
    return {
        "submitted_at": {"$gte": p.start, "$lt": p.end},
        **_in("department", scope.departments),
        **_in("item", scope.items),
    }


async def applications_by_item(store: Store, scope: Scope, p: Period) -> list[Document]:
    rows = await _rows(store, "applications", [
        {"$match": _application_match(scope, p)},
        {"$group": {"_id": {"item": "$item", "status": "$status"}, "name": {"$first": "$item_name"},
                    "n": {"$sum": 1}}},
    ])  # fmt: skip
    table: dict[str, dict[str, Any]] = {}
    for row in rows:
        code = row["_id"]["item"]
        entry = table.setdefault(code, {"item": code, "name": row.get("name") or code, "total": 0, "by_status": {}})
        entry["total"] += row["n"]
        status = row["_id"].get("status") or "unknown"
        entry["by_status"][status] = entry["by_status"].get(status, 0) + row["n"]
    return sorted(table.values(), key=lambda e: (-e["total"], e["item"]))


async def deadlines(store: Store, scope: Scope, p: Period, today: dt.date | None = None) -> Document:
    """Completed on time / late, and open past their deadline (deadline dates are Beijing dates)."""
    day = (today or local_today()).isoformat()
    rows = await _rows(store, "applications", [
        {"$match": {**_application_match(scope, p), "deadline.date": {"$exists": True}}},
        {"$project": {
            "done": {"$ne": [{"$ifNull": ["$completed_at", None]}, None]},
            "due": "$deadline.date",
            "finished": {"$cond": [{"$ifNull": ["$completed_at", False]}, _local_bucket("completed_at", "%Y-%m-%d"),
                                   None]},
        }},
        {"$project": {
            "state": {"$cond": [
                "$done",
                {"$cond": [{"$lte": ["$finished", "$due"]}, "met", "late"]},
                {"$cond": [{"$lt": ["$due", day]}, "overdue", "running"]},
            ]},
        }},
        {"$group": {"_id": "$state", "n": {"$sum": 1}}},
    ])  # fmt: skip
    counts = {"met": 0, "late": 0, "overdue": 0, "running": 0}
    for row in rows:
        counts[str(row["_id"])] = row["n"]
    return counts


async def evaluations(store: Store, scope: Scope, p: Period) -> Document:
    """好差评: count per level (5 best), average, and the reasons given."""
    match = {"created_at": {"$gte": p.start, "$lt": p.end}, **_in("department", scope.departments),
             **_in("item", scope.items)}  # fmt: skip
    levels = await _rows(store, "evaluations", [
        {"$match": match}, {"$group": {"_id": "$level", "n": {"$sum": 1}}},
    ])  # fmt: skip
    reasons = await _rows(store, "evaluations", [
        {"$match": {**match, "reasons.0": {"$exists": True}}},
        {"$unwind": "$reasons"},
        {"$group": {"_id": "$reasons", "n": {"$sum": 1}}},
    ])  # fmt: skip
    by_level = {int(r["_id"]): r["n"] for r in levels if isinstance(r["_id"], int | float)}
    total = sum(by_level.values())
    average = round(sum(k * v for k, v in by_level.items()) / total, 2) if total else None
    return {
        "total": total,
        "average": average,
        "by_level": {k: by_level.get(k, 0) for k in (5, 4, 3, 2, 1)},
        "reasons": sorted(({"reason": r["_id"], "n": r["n"]} for r in reasons), key=lambda r: -r["n"]),
    }


async def complaints(store: Store, scope: Scope, p: Period, today: dt.date | None = None) -> Document:
    day = (today or local_today()).isoformat()
    match: Document = {"created_at": {"$gte": p.start, "$lt": p.end}}
    if scope.kind == "hall" and scope.halls is not None:
        match.update(_in("hall", scope.halls))
    elif scope.kind == "department" and scope.departments is not None:
        match.update(_in("department", scope.departments))
    elif scope.city is not None:
        match["city"] = scope.city
    rows = await _rows(store, "complaints", [
        {"$match": match},
        {"$project": {"state": {"$cond": [
            {"$eq": ["$status", "open"]},
            {"$cond": [{"$lt": [{"$ifNull": ["$answer_due", "9999"]}, day]}, "overdue", "open"]},
            "answered",
        ]}}},
        {"$group": {"_id": "$state", "n": {"$sum": 1}}},
    ])  # fmt: skip
    counts = {"open": 0, "overdue": 0, "answered": 0}
    for row in rows:
        counts[str(row["_id"])] = row["n"]
    counts["open_total"] = counts["open"] + counts["overdue"]
    return counts


TABLES = ("kiosk", "certificates", "applications", "deadlines", "evaluations", "complaints")


async def table(store: Store, name: str, scope: Scope, p: Period) -> Any:
    if name == "kiosk":
        return await kiosk_usage(store, scope, p)
    if name == "certificates":
        return await certificate_use(store, scope, p)
    if name == "applications":
        return await applications_by_item(store, scope, p)
    if name == "deadlines":
        return await deadlines(store, scope, p)
    if name == "evaluations":
        return await evaluations(store, scope, p)
    if name == "complaints":
        return await complaints(store, scope, p)
    raise InvalidInput("figures.table_invalid", "没有这个统计表", fields={"table": "、".join(TABLES)})


async def dashboard(store: Store, scope: Scope, p: Period) -> dict[str, Any]:
    """Every table, with how long each took (ms), for the page and the benchmark."""
    out: dict[str, Any] = {"timings": {}}
    for name in TABLES:
        started = time.perf_counter()
        out[name] = await table(store, name, scope, p)
        out["timings"][name] = round((time.perf_counter() - started) * 1000, 1)
    return out


def csv_rows(name: str, data: Any) -> list[list[Any]]:
    """A table as CSV rows (header first)."""
    if name == "kiosk":
        return [["period", "sessions", "scenario_uses", "prints"]] + [
            [r["period"], r["sessions"], r["scenario_uses"], r["prints"]] for r in data
        ]
    if name == "certificates":
        return [["period", "retrievals", "at_kiosks"]] + [[r["period"], r["retrievals"], r["at_kiosks"]] for r in data]
    if name == "applications":
        statuses = sorted({s for r in data for s in r["by_status"]})
        return [["item", "name", "total", *statuses]] + [
            [r["item"], r["name"], r["total"], *[r["by_status"].get(s, 0) for s in statuses]] for r in data
        ]
    if name == "evaluations":
        rows: list[list[Any]] = [["level_or_reason", "count"]]
        rows += [[f"level {k}", v] for k, v in data["by_level"].items()]
        rows += [[r["reason"], r["n"]] for r in data["reasons"]]
        return rows
    return [["state", "count"]] + [[k, v] for k, v in dict(data).items()]


# ---- scopes from the catalogue --------------------------------------------------------------


def scope_for(
    kind: str,
    code: str,
    halls: Mapping[str, Mapping[str, Any]],
    departments: Mapping[str, Mapping[str, Any]],
    devices_by_hall: Mapping[str, Sequence[str]],
) -> Scope:
    """province | city:<code> | hall:<code> | department:<code>."""
    if kind == "province":
        return Scope("全省")
    if kind == "city":
        city_halls = [c for c, h in halls.items() if h.get("city") == code]
        depts = [c for c, d in departments.items() if str(d.get("region", ""))[:4] == code[:4]]
        return Scope(code, halls=city_halls, devices=[d for h in city_halls for d in devices_by_hall.get(h, [])],
                     departments=depts, city=code, kind="city")  # fmt: skip
    if kind == "hall":
        hall = halls.get(code, {})
        city = str(hall.get("city", ""))
        items = sorted({i for w in hall.get("windows", []) for i in w.get("items", [])})
        depts = [c for c, d in departments.items() if str(d.get("region", ""))[:4] == city[:4]]
        return Scope(str(hall.get("name", code)), halls=[code], devices=list(devices_by_hall.get(code, [])),
                     departments=depts, items=items, city=city, kind="hall")  # fmt: skip
    if kind == "department":
        return Scope(str(departments.get(code, {}).get("name", code)), halls=[], devices=[], departments=[code],
                     city=str(departments.get(code, {}).get("region", ""))[:4] + "00", kind="department")  # fmt: skip
    raise InvalidInput("figures.place_invalid", "统计范围不正确")
