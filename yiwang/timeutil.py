"""Time: stored in UTC, shown in Asia/Shanghai; deadlines in working days.

Working days follow the State Council holiday schedule (with make-up working
days) from ``chinese_calendar``; for years it does not know yet, weekends and
the fixed-date holidays in ``data/holidays.json`` apply, and the README says so.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
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


@functools.cache
def _fallback_holidays() -> frozenset[dt.date]:
    if not _HOLIDAYS_FILE.exists():
        return frozenset()
    days = json.loads(_HOLIDAYS_FILE.read_text(encoding="utf-8")).get("holidays", [])
    return frozenset(dt.date.fromisoformat(d) for d in days)


def is_working_day(day: dt.date) -> bool:
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
