"""Time: stored in UTC, shown in Asia/Shanghai; deadlines in working days.

Working days follow the State Council holiday schedule (with make-up working
days). A year's official schedule entered by a province administrator
(``yiwang.workcalendar``, stored in the database) wins; otherwise
``chinese_calendar`` for the years it knows; otherwise weekends and the
fixed-date holidays in ``data/holidays.json``, and the console warns.

The entered schedules are a process-wide table because deadlines are computed
deep inside pure functions; ``workcalendar`` loads it at start-up and keeps it
current across processes.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import chinese_calendar

SHANGHAI = ZoneInfo("Asia/Shanghai")
_HOLIDAYS_FILE = Path(__file__).resolve().parent.parent / "data" / "holidays.json"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def as_utc(moment: dt.datetime) -> dt.datetime:
    """A stored moment as an aware UTC datetime (clients not set to tz_aware return naive UTC)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def local(moment: dt.datetime) -> dt.datetime:
    return as_utc(moment).astimezone(SHANGHAI)


def local_today() -> dt.date:
    return utcnow().astimezone(SHANGHAI).date()


def format_local(moment: dt.datetime, pattern: str = "%Y-%m-%d %H:%M") -> str:
    return local(moment).strftime(pattern)


@dataclass(frozen=True)
class YearSchedule:
    """One year's official schedule: its holidays and its make-up working days (调休上班)."""

    year: int
    holidays: frozenset[dt.date]
    workdays: frozenset[dt.date]

    def is_working_day(self, day: dt.date) -> bool:
        if day in self.holidays:
            return False
        return day in self.workdays or day.weekday() < 5


_official: dict[int, YearSchedule] = {}


def set_official_schedules(schedules: Mapping[int, YearSchedule]) -> None:
    """Replace the entered schedules (no await in between, so no reader sees half a table)."""
    _official.clear()
    _official.update(schedules)


def official_schedule(year: int) -> YearSchedule | None:
    return _official.get(year)


def package_knows(year: int) -> bool:
    try:
        chinese_calendar.is_workday(dt.date(year, 6, 1))
    except NotImplementedError:
        return False
    return True


def year_known(year: int) -> bool:
    """Whether working days of ``year`` follow an official schedule (entered, or the package's)."""
    return year in _official or package_knows(year)


@functools.cache
def _fallback_holidays() -> frozenset[dt.date]:
    if not _HOLIDAYS_FILE.exists():
        return frozenset()
    days = json.loads(_HOLIDAYS_FILE.read_text(encoding="utf-8")).get("holidays", [])
    return frozenset(dt.date.fromisoformat(d) for d in days)


def is_working_day(day: dt.date) -> bool:
    schedule = _official.get(day.year)
    if schedule is not None:
        return schedule.is_working_day(day)
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        return day.weekday() < 5 and day not in _fallback_holidays()


def add_working_days(start: dt.date, days: int) -> dt.date:
    """The date ``days`` working days after ``start`` (start itself not counted)."""
    current = start
    remaining = days
    while remaining > 0:
        current += dt.timedelta(days=1)
        if is_working_day(current):
            remaining -= 1
    return current


def working_days_between(start: dt.date, end: dt.date) -> int:
    """Working days after ``start`` up to and including ``end`` (negative if end < start)."""
    if end < start:
        return -working_days_between(end, start)
    count = 0
    current = start
    while current < end:
        current += dt.timedelta(days=1)
        if is_working_day(current):
            count += 1
    return count
