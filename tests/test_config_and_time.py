"""Configuration is validated before anything listens; deadlines count working days."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from yiwang.config import load_config
from yiwang.errors import InvalidInput
from yiwang.timeutil import add_working_days, format_local, working_days_between


def test_development_generates_secrets_once_with_private_permissions(tmp_path: Path) -> None:
    first = load_config({"DATA_DIR": str(tmp_path)})
    second = load_config({"DATA_DIR": str(tmp_path)})
    assert first.pii_key == second.pii_key and len(first.pii_key) == 16
    assert (tmp_path / "secrets.env").stat().st_mode & 0o777 == 0o600


def test_production_refuses_missing_secrets(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as caught:
        load_config({"DATA_DIR": str(tmp_path), "YIWANG_ENV": "production", "MONGODB_URI": "mongodb://db"})
    assert caught.value.code == "config.missing_secret"
    assert "AUDIT_KEY" in caught.value.message  # the audit chain's key is never generated in production
    assert not (tmp_path / "secrets.env").exists()


@pytest.mark.parametrize(
    ("name", "value"),
    [("PORT", "eighty"), ("PORT", "70000"), ("PII_KEY", "abcd"), ("AUDIT_KEY", "abcd"), ("EMBEDDED_ENGINE", "redis")],
)
def test_bad_settings_are_named(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        load_config({"DATA_DIR": str(tmp_path), name: value})
    assert name in caught.value.message


def test_working_days_skip_the_national_day_holiday_and_count_make_up_days() -> None:
    # 2026-09-30 (Wed) + 1 working day: 1–7 October are holidays, 10 October (Sat) is a make-up working day.
    assert add_working_days(dt.date(2026, 9, 30), 1) == dt.date(2026, 10, 8)
    assert add_working_days(dt.date(2026, 10, 8), 2) == dt.date(2026, 10, 10)
    assert working_days_between(dt.date(2026, 9, 30), dt.date(2026, 10, 10)) == 3


def test_years_beyond_the_calendar_fall_back_to_weekends_and_fixed_holidays() -> None:
    # 2027-01-01 is a holiday in data/holidays.json; 2–3 January 2027 are a weekend.
    assert add_working_days(dt.date(2026, 12, 31), 1) == dt.date(2027, 1, 4)


def test_times_are_shown_in_shanghai() -> None:
    assert format_local(dt.datetime(2026, 11, 26, 16, 30, tzinfo=dt.UTC)) == "2026-11-27 00:30"
