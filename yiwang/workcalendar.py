"""The working-day calendar's official schedules (国务院办公厅关于部分节假日安排的通知).

The State Council publishes the next year's holidays and make-up working days
each November, and ``chinesecalendar`` learns them only when a new release
ships. So a province administrator enters a year's schedule in the console:
it is stored in ``work_calendars``, applied to this process at once
(``timeutil``), to the other processes within ``REFRESH_SECONDS`` (a version
document in ``meta`` polled in the background), and the stored due dates of
open matters are re-dated. From 1 November, start-up and the console warn
while next year's schedule is unknown.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
from collections.abc import Mapping
from typing import Any

from yiwang import applications, audit
from yiwang.errors import InvalidInput
from yiwang.store import Document, Store
from yiwang.timeutil import (
    YearSchedule,
    local_today,
    official_schedule,
    package_knows,
    set_official_schedules,
    utcnow,
    year_known,
)

log = logging.getLogger(__name__)

COLLECTION = "work_calendars"
VERSION_ID = "work_calendar_version"
REFRESH_SECONDS = 30.0
WARN_FROM_MONTH = 11  # the State Council publishes in November
_MAX_DAYS = 60

_FORMAT_HINT = "日期格式为 2027-02-05"
_DATE = r"\d{4}-\d{2}-\d{2}"
_ITEM = re.compile(rf"^({_DATE})(?:\s*(?:~|至|到|—|--)\s*({_DATE}))?$")


def _parse_day(text: str, year: int, field: str) -> dt.date:
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidInput("calendar.date_invalid", f"日期“{text}”不正确", fields={field: _FORMAT_HINT}) from None
    if day.year != year:
        raise InvalidInput(
            "calendar.date_outside_year", f"日期“{text}”不在{year}年内", fields={field: f"只填{year}年的日期"}
        )
    return day


def parse_days(text: Any, year: int, field: str) -> frozenset[dt.date]:
    """Dates and ranges (``2027-02-05~2027-02-11``), separated by commas, spaces or new lines."""
    if not isinstance(text, str):
        raise InvalidInput("calendar.date_invalid", "日期格式不正确", fields={field: _FORMAT_HINT})
    days: set[dt.date] = set()
    for raw in re.split(r"[,，;；、\n]+", text):
        item = raw.strip()
        if not item:
            continue
        found = _ITEM.match(item)
        if found is None:
            raise InvalidInput(
                "calendar.date_invalid", f"“{item[:30]}”不是日期或日期范围", fields={field: _FORMAT_HINT}
            )
        first = _parse_day(found.group(1), year, field)
        last = _parse_day(found.group(2), year, field) if found.group(2) else first
        if last < first:
            raise InvalidInput(
                "calendar.range_invalid", f"日期范围“{item}”的结束早于开始", fields={field: "请检查日期范围"}
            )
        while first <= last:
            days.add(first)
            first += dt.timedelta(days=1)
        if len(days) > _MAX_DAYS:
            raise InvalidInput("calendar.too_many_days", "日期过多，请检查", fields={field: f"最多 {_MAX_DAYS} 天"})
    return frozenset(days)


def validate(year: Any, holidays_text: Any, workdays_text: Any, today: dt.date | None = None) -> YearSchedule:
    today = today or local_today()
    try:
        year_number = int(str(year).strip())
    except ValueError:
        raise InvalidInput("calendar.year_invalid", "年份不正确", fields={"year": "请填写年份，如 2027"}) from None
    if not today.year - 1 <= year_number <= today.year + 2:
        raise InvalidInput("calendar.year_invalid", "只能录入去年至后年的安排", fields={"year": "年份超出范围"})
    holidays = parse_days(holidays_text, year_number, "holidays")
    workdays = parse_days(workdays_text, year_number, "workdays")
    if not holidays:
        raise InvalidInput("calendar.holidays_required", "请填写该年的法定节假日", fields={"holidays": "必填"})
    if holidays & workdays:
        clash = min(holidays & workdays).isoformat()
        raise InvalidInput("calendar.day_conflict", f"{clash} 不能既放假又上班", fields={"workdays": "与放假日期重复"})
    weekday = sorted(d.isoformat() for d in workdays if d.weekday() < 5)
    if weekday:
        raise InvalidInput(
            "calendar.workday_not_weekend",
            f"调休上班日应为周末：{weekday[0]} 本来就是工作日",
            fields={"workdays": "只填调休上班的周六、周日"},
        )
    return YearSchedule(year_number, holidays, workdays)


def _from_document(doc: Mapping[str, Any]) -> YearSchedule:
    return YearSchedule(
        int(doc["_id"]),
        frozenset(dt.date.fromisoformat(d) for d in doc["holidays"]),
        frozenset(dt.date.fromisoformat(d) for d in doc["workdays"]),
    )


async def _version(store: Store) -> int:
    found = await store["meta"].find_one({"_id": VERSION_ID})
    return int(found["version"]) if found else 0


async def load(store: Store) -> int:
    """Read every entered schedule into this process; returns the version read."""
    version = await _version(store)
    schedules = {s.year: s for s in [_from_document(d) async for d in store[COLLECTION].find({})]}
    set_official_schedules(schedules)
    return version


async def entered(store: Store) -> list[Document]:
    """The entered schedules, newest year first, for the console."""
    return [d async for d in store[COLLECTION].find({}, sort=[("_id", -1)])]


def warning(today: dt.date | None = None) -> str | None:
    """From 1 November: next year's schedule is unknown (neither entered nor in the package)."""
    today = today or local_today()
    upcoming = [today.year] if not year_known(today.year) else []
    if today.month >= WARN_FROM_MONTH and not year_known(today.year + 1):
        upcoming.append(today.year + 1)
    if not upcoming:
        return None
    years = "、".join(f"{y}年" for y in upcoming)
    return (
        f"尚未录入{years}的节假日安排：办理时限暂按周末和固定日期节日计算，春节等假期不会顺延。"
        "请省级管理员在“节假日安排”中录入国务院公布的安排。"
    )


def source(year: int) -> str:
    if official_schedule(year) is not None:
        return "entered"
    return "package" if package_knows(year) else "fallback"


async def set_year(store: Store, schedule: YearSchedule, actor: audit.Actor) -> Document:
    """Store a year's schedule, apply it here at once, tell the other processes, audit it."""
    before = await store[COLLECTION].find_one({"_id": schedule.year})
    doc: Document = {
        "_id": schedule.year,
        "holidays": sorted(d.isoformat() for d in schedule.holidays),
        "workdays": sorted(d.isoformat() for d in schedule.workdays),
        "entered_by": {"id": actor.id, "label": actor.label},
        "entered_at": utcnow(),
    }
    await store[COLLECTION].replace_one({"_id": schedule.year}, doc, upsert=True)
    await store["meta"].update_one({"_id": VERSION_ID}, {"$inc": {"version": 1}}, upsert=True)
    await load(store)
    await audit.record(
        store, actor, "calendar.set_year", f"calendar:{schedule.year}", channel="console",
        purpose="official holiday schedule",
        detail={
            "before": None if before is None else {k: before[k] for k in ("holidays", "workdays")},
            "after": {k: doc[k] for k in ("holidays", "workdays")},
        },
    )  # fmt: skip
    return doc


class CalendarKeeper:
    """Keeps this process's schedules current (the version document, polled off the request path)
    and re-dates open deadlines after a change. Started with the process, stopped with it."""

    def __init__(self, store: Store, refresh_seconds: float = REFRESH_SECONDS) -> None:
        self.store = store
        self.refresh_seconds = refresh_seconds
        self.version = -1
        self._task: asyncio.Task[None] | None = None
        self._redating: set[asyncio.Task[int]] = set()

    async def start(self) -> None:
        self.version = await load(self.store)
        message = warning()
        if message:
            log.warning("working-day calendar incomplete", extra={"fields": {"warning": message}})
        self._task = asyncio.create_task(self._poll())

    async def refresh(self) -> bool:
        """Reload when another process changed a schedule; True when it did."""
        version = await _version(self.store)
        if version == self.version:
            return False
        self.version = await load(self.store)
        return True

    async def set_year(self, schedule: YearSchedule, actor: audit.Actor) -> Document:
        doc = await set_year(self.store, schedule, actor)
        self.version = await _version(self.store)
        task = asyncio.create_task(applications.redate_open_deadlines(self.store, schedule.year))
        self._redating.add(task)
        task.add_done_callback(self._redating.discard)
        return doc

    async def wait_redated(self) -> None:
        if self._redating:
            await asyncio.gather(*self._redating)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_seconds)
            try:
                await self.refresh()
            except Exception:
                log.warning("calendar refresh failed", exc_info=True)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.gather(*self._redating, return_exceptions=True)
