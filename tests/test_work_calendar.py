"""The working-day calendar for years chinesecalendar does not know: a province
administrator enters the official schedule, live deadlines move at once, bad
entries change nothing, and the gap is announced from 1 November.

The 2027 schedule below is test data shaped like a State Council notice (a
Spring Festival week with make-up Sundays), not the official schedule."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from playwright.async_api import expect

from tests.console_support import PASSWORD, Browserless, prepare
from tests.mobile_support import LI, SS_CARD, ss_form
from tests.mobile_support import prepare as prepare_mobile
from tests.support.browser import PageFactory, screenshot
from tests.support.miniprogram import MiniProgram, Staff, jpeg_bytes
from tests.test_console_pages_browser import log_in
from yiwang import console_accounts, workcalendar
from yiwang.accounts import issue_staff_token
from yiwang.audit import Actor
from yiwang.runtime import Services
from yiwang.timeutil import add_working_days, is_working_day, set_official_schedules, year_known

SPRING_FESTIVAL = "2027-02-05~2027-02-13"
MAKE_UP = "2027-01-31, 2027-02-20"


@pytest.fixture(autouse=True)
def forget_entered_schedules() -> Iterator[None]:
    """The entered schedules are process-wide: leave none behind for other tests."""
    yield
    set_official_schedules({})


@pytest_asyncio.fixture
async def province(services: Services, server: str) -> AsyncIterator[Browserless]:
    await prepare(services)
    c = Browserless(server)
    await c.login("gd_admin")
    yield c
    await c.close()


async def province_only(services: Services, server: str) -> Browserless:
    """A province administrator, without loading the catalogue (the caller has)."""
    await console_accounts.create_user(
        services.store, services.offload, username="gd_admin", password=PASSWORD, role="province",
        scope={"region": "440000"},
    )  # fmt: skip
    c = Browserless(server)
    await c.login("gd_admin")
    return c


async def enter(c: Browserless, year: str, holidays: str, workdays: str = "") -> tuple[int, str]:
    await c.get("/console/calendar")
    return await c.post("/console/calendar", {"year": year, "holidays": holidays, "workdays": workdays})


def test_without_an_entered_schedule_2027_knows_only_weekends_and_fixed_holidays() -> None:
    assert not year_known(2027)
    # 15 working days from 20 January 2027 land inside the Spring Festival week.
    assert add_working_days(dt.date(2027, 1, 20), 15) == dt.date(2027, 2, 10)
    assert year_known(2026) and not is_working_day(dt.date(2026, 10, 1))


async def test_an_entered_schedule_moves_a_live_deadline_past_the_spring_festival(
    services: Services, server: str, client, fake_wechat  # type: ignore[no-untyped-def]
) -> None:
    cards = await prepare_mobile(services)
    province = await province_only(services, server)
    resident = MiniProgram(client, fake_wechat)
    await resident.login()
    await resident.bind(*LI)
    photo = await resident.upload(jpeg_bytes())
    refs = [
        {"material": "applicant_id_card", "certificate": cards["李明轩"]},
        {"material": "photo", "upload": photo["id"]},
    ]
    app = await resident.apply(SS_CARD, ss_form(*LI), refs, expect=201)
    staff = Staff(client, await issue_staff_token(services, "gz-hrss", "t"))
    await staff.act(app["id"], "accept")
    # As if it had been accepted on 20 January 2027 with 15 promised working days.
    await services.store["applications"].update_one(
        {"_id": app["id"]},
        {"$set": {"deadline": {"date": "2027-02-10", "working_days": 15, "accepted_on": "2027-01-20"}}},
    )
    before = await resident.get(f"/applications/{app['id']}")
    assert before["deadline"]["date"] == "2027-02-10"

    status, text = await enter(province, "2027", SPRING_FESTIVAL + ", 2027-01-01", MAKE_UP)
    await province.close()
    assert status == 200, text
    assert "已保存" in text

    # Seen at once: 31 January (a make-up Sunday) counts, 5–13 February do not.
    after = await resident.get(f"/applications/{app['id']}")
    assert after["deadline"]["date"] == "2027-02-17"
    keeper: workcalendar.CalendarKeeper = services.resources.get(workcalendar.CalendarKeeper)
    await keeper.wait_redated()
    stored = await services.store["applications"].find_one({"_id": app["id"]})
    assert stored is not None and stored["deadline"]["date"] == "2027-02-17"  # what the figures query by
    entries = [e async for e in services.store["audit"].find({"action": "calendar.set_year"})]
    assert [e["subject"] for e in entries] == ["calendar:2027"]


@pytest.mark.parametrize(
    ("holidays", "workdays", "code"),
    [
        ("2027-02-05~2027-02-13", "2027-02-01", "calendar.workday_not_weekend"),  # a Monday
        ("2026-10-01", "", "calendar.date_outside_year"),
        ("2027-02-13~2027-02-05", "", "calendar.range_invalid"),
        ("二月五日", "", "calendar.date_invalid"),
        ("2027-02-06", "2027-02-06", "calendar.day_conflict"),
        ("", "", "calendar.holidays_required"),
        ("2027-01-01~2027-12-31", "", "calendar.too_many_days"),
    ],
)
async def test_a_wrong_schedule_is_refused_with_the_reason_and_changes_nothing(
    services: Services, province: Browserless, holidays: str, workdays: str, code: str
) -> None:
    status, text = await enter(province, "2027", holidays, workdays)
    assert status == 400
    with pytest.raises(Exception) as raised:
        workcalendar.validate("2027", holidays, workdays)
    assert getattr(raised.value, "code", None) == code
    assert getattr(raised.value, "message", "") in text
    assert await services.store["work_calendars"].count_documents({}) == 0
    assert not year_known(2027)


async def test_only_a_province_administrator_enters_a_schedule(services: Services, server: str) -> None:
    await prepare(services)
    city = Browserless(server)
    try:
        await city.login("gz_admin")
        status, _ = await city.get("/console/calendar")
        assert status == 403
        status, _ = await city.post("/console/calendar", {"year": "2027", "holidays": SPRING_FESTIVAL})
        assert status == 403
    finally:
        await city.close()
    assert await services.store["work_calendars"].count_documents({}) == 0


async def test_another_process_picks_up_a_schedule_through_the_version_document(services: Services) -> None:
    schedule = workcalendar.validate("2027", SPRING_FESTIVAL, MAKE_UP, today=dt.date(2026, 12, 2))
    keeper: workcalendar.CalendarKeeper = services.resources.get(workcalendar.CalendarKeeper)
    other = workcalendar.CalendarKeeper(services.store)
    await other.start()
    try:
        await keeper.set_year(schedule, Actor("console_user", "u1", "gd_admin"))
        set_official_schedules({})  # what a process that has not looked yet knows
        assert not year_known(2027)
        assert await other.refresh() is True
        assert year_known(2027) and not is_working_day(dt.date(2027, 2, 8))
        assert is_working_day(dt.date(2027, 1, 31))
        assert await other.refresh() is False  # nothing new: no reload
    finally:
        await other.aclose()


def test_from_november_the_unknown_next_year_is_announced() -> None:
    assert workcalendar.warning(dt.date(2026, 10, 31)) is None
    message = workcalendar.warning(dt.date(2026, 11, 1))
    assert message is not None and "2027年" in message
    set_official_schedules({2027: workcalendar.validate("2027", SPRING_FESTIVAL, "", today=dt.date(2026, 12, 2))})
    assert workcalendar.warning(dt.date(2026, 11, 1)) is None


@pytest.mark.browser
async def test_province_administrator_sees_the_gap_and_enters_the_schedule_in_the_browser(
    server: str, services: Services, page_factory: PageFactory
) -> None:
    await prepare(services)
    page = await page_factory()
    await log_in(page, server, "gd_admin")
    warning = page.locator("main .alert")
    if workcalendar.warning() is not None:  # from 1 November until next year is entered
        await expect(warning).to_contain_text("节假日安排")
        await screenshot(page, "console-home-calendar-warning")
        await page.click("main .alert >> text=录入节假日安排")
    else:
        await page.goto(server + "/console/calendar")
    await expect(page.locator("main h1")).to_have_text("节假日安排")
    next_year = dt.date.today().year + 1
    await page.fill("input[name=year]", str(next_year))
    await page.fill("textarea[name=holidays]", "2027-02-31")
    await page.click("main form button[type=submit]")
    await expect(page.locator("main .alert[role=alert]").last).to_contain_text("不正确")
    await screenshot(page, "console-calendar-refused")
    await page.fill("input[name=year]", "2027")
    await page.fill("textarea[name=holidays]", SPRING_FESTIVAL + "\n2027-01-01")
    await page.fill("textarea[name=workdays]", MAKE_UP)
    await page.click("main form button[type=submit]")
    await expect(page.locator("main .ok")).to_contain_text("已保存")
    await expect(page.locator("main table.grid").first).to_contain_text("已录入的国务院安排")
    await expect(page.locator("main section.card").last).to_contain_text("2027-01-31")
    await screenshot(page, "console-calendar")
