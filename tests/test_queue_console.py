"""The console's queue pages over HTTP and in Chromium: a hall manager sets categories (refused
input changes nothing), clerks are kept to their hall and to calling, CSRF on every action."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.console_support import PASSWORD, Browserless, prepare
from tests.queue_support import HALL, take
from tests.support.browser import LANDSCAPE, PageFactory, screenshot
from yiwang import console_accounts, hall_queue
from yiwang.runtime import Services


async def prepare_console(services: Services) -> None:
    await prepare(services)  # halls + th_hall, yx_hall, gz_admin, gd_admin
    await hall_queue.load_demo_queue(services)
    for username, halls in (("th_window", [HALL]), ("yx_window", ["gz-yx-center"])):
        await console_accounts.create_user(services.store, services.offload, username=username, password=PASSWORD,
                                           role="window", scope={"halls": halls})


async def test_a_clerk_calls_at_its_own_hall_only_and_cannot_change_settings(services, server) -> None:
    await prepare_console(services)
    await take(services, "A")
    clerk = Browserless(server)
    try:
        await clerk.login("th_window")
        status, page = await clerk.get(f"/console/queue/{HALL}/window/A01")
        assert status == 200 and "叫下一位" in page
        status, _ = await clerk.post(f"/console/queue/{HALL}/window/A01/next", {}, token="forged")
        assert status == 403
        assert await services.store["queue_tickets"].count_documents({"status": "called"}) == 0
        status, page = await clerk.post(f"/console/queue/{HALL}/window/A01/next", {})
        assert status == 200 and "A001 已叫号" in page
        status, page = await clerk.post(f"/console/queue/{HALL}/window/A01/next", {})
        assert status == 404 and "暂无等候的号票" in page
        assert (await clerk.get(f"/console/queue/{HALL}/settings"))[0] == 403
        assert (await clerk.get("/console/queue/gz-yx-center/window/01"))[0] == 403
        assert (await clerk.get(f"/console/halls/{HALL}"))[0] == 403  # hall info is the manager's
        assert (await clerk.get(f"/console/queue/{HALL}/window/Z99"))[0] == 404
    finally:
        await clerk.close()
    other = Browserless(server)
    try:
        await other.login("yx_hall")
        assert (await other.post(f"/console/queue/{HALL}/window/A01/recall", {}))[0] == 403
    finally:
        await other.close()


async def test_refused_settings_come_back_with_the_problems_and_change_nothing(services, server) -> None:
    await prepare_console(services)
    before = await hall_queue.settings(services, HALL)
    manager = Browserless(server)
    try:
        await manager.login("th_hall")
        await manager.get(f"/console/queue/{HALL}/settings")
        form = {"cat_code": "AA", "cat_name": "", "cat_windows": "Z9", "near_ahead": "3", "hours": "09:00-12:00",
                "slot_minutes": "30", "per_slot": "4", "days_ahead": "7"}  # fmt: skip
        status, page = await manager.post(f"/console/queue/{HALL}/settings", form)
        assert status == 400 and "编号须为一个大写字母" in page and "本大厅没有窗口 Z9" in page
        assert await hall_queue.settings(services, HALL) == before
        form.update(cat_code="F", cat_name="公积金", cat_windows="D01", priority_elderly="1")
        status, page = await manager.post(f"/console/queue/{HALL}/settings", form)
        assert status == 200 and "已保存" in page
        saved = await hall_queue.settings(services, HALL)
        assert saved["categories"] == [{"code": "F", "name": "公积金", "windows": ["D01"]}]
        assert saved["priority"] == {"appointment": False, "elderly": True, "disabled": False}
        old_door = saved["door_code"]
        status, page = await manager.post(f"/console/queue/{HALL}/door-code", {})
        assert status == 200 and "旧二维码已失效" in page
        assert (await hall_queue.settings(services, HALL))["door_code"] != old_door
    finally:
        await manager.close()
    actions = [e["action"] async for e in services.store["audit"].find({"subject": f"hall:{HALL}"})]
    assert actions.count("queue.configure") == 1 and "queue.door_code_renewed" in actions


@pytest.mark.browser
async def test_a_hall_manager_sets_categories_in_the_browser(services, server, page_factory: PageFactory) -> None:
    await prepare_console(services)
    page = await page_factory(LANDSCAPE)
    await page.goto(server + "/console/queue")
    await page.fill("input[name=username]", "th_hall")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.goto(server + "/console/queue")
    await page.click("text=业务类别与规则")
    await expect(page.locator("h1")).to_contain_text("排队叫号设置")
    await expect(page.locator("figure.qr svg")).to_be_visible()
    await page.locator("input[name=cat_code]").nth(4).fill("E")
    await page.locator("input[name=cat_name]").nth(4).fill("长者服务")
    await page.locator("input[name=cat_windows]").nth(4).fill("C01")
    await screenshot(page, "queue-console-settings")
    await page.click("#settings button[type=submit]")
    await expect(page.locator("p.ok")).to_contain_text("已保存")
    codes = [c["code"] for c in (await hall_queue.settings(services, HALL))["categories"]]
    assert codes == ["A", "B", "C", "D", "E"]
    await page.goto(server + f"/console/queue/{HALL}")
    await expect(page.locator("table.grid")).to_contain_text("长者服务")
    await screenshot(page, "queue-console-desk")
