"""The console pages no other browser test opens, in Chromium: the home page for a
province, a city and a hall account; hall information; the catalogue and one item's
standard / local implementation (a city saves a promised time through the form);
the fleet (an enrolment code made through the form, the device it enrolled, a
remote command); account security (TOTP switched on, then asked for at login).
Each also shows the refusal a user outside the scope gets."""

from __future__ import annotations

import re

import aiohttp
import pyotp
import pytest
from playwright.async_api import Page, expect

from tests.console_support import PASSWORD, prepare
from tests.support.browser import PageFactory, screenshot
from yiwang.runtime import Services

ITEM = "000701201000"  # 出生登记（新生儿入户）: legal 20 working days, promised 5 by default


async def log_in(page: Page, server: str, username: str, next_path: str = "") -> None:
    await page.goto(server + "/console/login" + (f"?next={next_path}" if next_path else ""))
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")


async def expect_refused(page: Page, server: str, path: str) -> None:
    response = await page.goto(server + path)
    assert response is not None and response.status == 403, path
    await expect(page.locator("main h1")).to_contain_text("403")
    await expect(page.locator("main")).to_contain_text("无权")


@pytest.mark.browser
async def test_home_and_hall_pages_show_each_account_its_own_scope(
    server: str, services: Services, page_factory: PageFactory
) -> None:
    await prepare(services)
    expected = {
        "gd_admin": (["广州市天河区政务服务中心", "深圳市福田区政务服务中心"], []),
        "gz_admin": (["广州市天河区政务服务中心", "广州市越秀区政务服务中心"], ["深圳市福田区政务服务中心"]),
        "th_hall": (["广州市天河区政务服务中心"], ["广州市越秀区政务服务中心", "深圳市福田区政务服务中心"]),
    }
    # The menu holds only what the role is for; the header names the role and the place.
    menus = {
        "gd_admin": [
            "概览", "公告与横幅", "大厅信息", "事项目录", "场景导航", "设备", "终端呼叫", "数据统计", "排队叫号",
            "节假日安排", "账号安全",
        ],
        "gz_admin": [
            "概览", "公告与横幅", "大厅信息", "事项目录", "设备", "终端呼叫", "数据统计", "排队叫号", "账号安全",
        ],
        "th_hall": [
            "概览", "公告与横幅", "大厅信息", "事项目录", "设备", "终端呼叫", "数据统计", "排队叫号", "账号安全",
        ],
    }
    who = {
        "gd_admin": "省级管理员 · 广东省",
        "gz_admin": "市级管理员 · 广州市",
        "th_hall": "大厅管理员 · 广州市天河区政务服务中心",
    }
    pages: dict[str, Page] = {}
    for username, (shown, hidden) in expected.items():
        page = pages[username] = await page_factory()
        await log_in(page, server, username)
        await expect(page.locator("h1")).to_have_text(f"您好，{username}")
        scope = page.locator("section.card", has_text="管辖范围")
        for name in shown:
            await expect(scope).to_contain_text(name)
        for name in hidden:
            await expect(scope).not_to_contain_text(name)
        await expect(page.locator("header nav a")).to_have_text(menus[username])
        await expect(page.locator("header .who")).to_contain_text(who[username])
        await screenshot(page, f"console-home-{username}")

    # Hall information: the hall manager sees only its hall, opens it and sees its hours and windows.
    manager = pages["th_hall"]
    await manager.click("header nav >> text=大厅信息")
    await expect(manager.locator("h1")).to_have_text("大厅信息")
    await expect(manager.locator("table.grid tbody tr")).to_have_count(1)
    await screenshot(manager, "console-halls")
    await manager.click("table.grid >> text=广州市天河区政务服务中心")
    await expect(manager.locator("h1")).to_have_text("广州市天河区政务服务中心")
    hall = await services.catalog.hall("gz-th-center")
    first_window = hall["windows"][0]
    await expect(manager.locator("input[name=window_name]").first).to_have_value(first_window["name"])
    await expect(manager.locator("input[name=hours]").first).to_have_value(hall["opening_hours"][0]["hours"])
    await screenshot(manager, "console-hall-edit")

    # A city account does not reach a hall of another city; a hall manager not another hall.
    await expect_refused(pages["gz_admin"], server, "/console/halls/sz-ft-center")
    other = await page_factory()
    await log_in(other, server, "yx_hall")
    await expect(other.locator("h1")).to_contain_text("您好")
    await expect_refused(other, server, "/console/halls/gz-th-center")
    await screenshot(other, "console-hall-forbidden")


@pytest.mark.browser
async def test_city_saves_a_promised_time_through_the_form_and_sees_the_new_version(
    server: str, services: Services, page_factory: PageFactory
) -> None:
    await prepare(services)
    city = await page_factory()
    await log_in(city, server, "gz_admin", "/console/catalog")
    await expect(city.locator("h1")).to_have_text("事项目录")
    await expect(city.locator("table.grid tbody tr")).to_have_count(58)
    row = city.locator("table.grid tbody tr", has_text="出生登记（新生儿入户）")
    await expect(row.locator("td").nth(4)).to_have_text("5 个工作日")  # no local value yet: the default
    await screenshot(city, "console-catalog")
    await city.fill("input[name=q]", "出生登记")
    await city.click("form.filters button")
    await expect(city.locator("table.grid tbody")).to_contain_text("出生登记（新生儿入户）")
    await city.click("a[href='/console/catalog/" + ITEM + "']")

    await expect(city.locator("h1")).to_contain_text("出生登记（新生儿入户）")
    await expect(city.locator("h1")).to_contain_text("版本 1")
    # The standard is the province's: the city reads it, with no form to change it.
    await expect(city.locator("text=事项标准由省级统一维护")).to_be_visible()
    await expect(city.locator("button", has_text="保存标准")).to_have_count(0)
    await expect(city.locator("input[name=promised_days]")).to_have_value("5")
    await city.fill("input[name=promised_days]", "3")
    await city.fill("input[name=note]", "材料齐全的当场受理")
    await city.click("button:has-text('保存本地实施（广州市）')")
    await expect(city.locator("p.ok")).to_contain_text("已保存为新版本")
    await expect(city.locator("h1")).to_contain_text("版本 2")
    await expect(city.locator("section.side")).to_contain_text("广州市：承诺 3 个工作日 · 材料齐全的当场受理")
    await expect(city.locator("section.side table tbody tr").first).to_contain_text("市级实施（广州市）")
    await expect(city.locator("section.side table tbody tr").last).to_contain_text("种子数据")
    await expect(city.locator("main")).not_to_contain_text("440100")
    await expect(city.locator("input[name=promised_days]")).to_have_value("3")
    await screenshot(city, "console-catalog-item-saved")

    # More than the legal time is refused in Chinese, next to the form, and changes nothing.
    await city.fill("input[name=promised_days]", "30")
    await city.click("button:has-text('保存本地实施')")
    await expect(city.locator("[role=alert]")).to_contain_text("承诺时限不能超过法定时限（20 个工作日）")
    await expect(city.locator("h1")).to_contain_text("版本 2")
    await screenshot(city, "console-catalog-item-refused")

    # The list now shows the city's own promised time, not the province default.
    await city.goto(server + "/console/catalog")
    await expect(row.locator("td").nth(4)).to_have_text("3 个工作日 广州市")
    await screenshot(city, "console-catalog-local")
    stored = await services.store["items"].find_one({"_id": ITEM})
    assert stored is not None and stored["version"] == 2 and stored["local"]["440100"]["promised_days"] == 3

    # The province edits the standard; a hall manager may read the item but not save a local change.
    province = await page_factory()
    await log_in(province, server, "gd_admin", f"/console/catalog/{ITEM}")
    await expect(province.locator("button", has_text="保存标准")).to_be_visible()
    await expect(province.locator("textarea[name=conditions]")).not_to_be_empty()
    await screenshot(province, "console-catalog-item-province")
    manager = await page_factory()
    await log_in(manager, server, "th_hall", f"/console/catalog/{ITEM}")
    await expect(manager.locator("h1")).to_contain_text("版本 2")
    await expect(manager.locator("input[name=promised_days]")).to_have_count(0)
    await expect(manager.locator("button", has_text="保存标准")).to_have_count(0)


@pytest.mark.browser
async def test_fleet_enrolment_code_from_the_form_enrols_a_device_the_list_then_shows(
    server: str, services: Services, page_factory: PageFactory
) -> None:
    await prepare(services)
    manager = await page_factory()
    await log_in(manager, server, "th_hall", "/console/fleet")
    await expect(manager.locator("h1")).to_have_text("设备")
    await expect(manager.locator("#fleet tbody")).to_contain_text("没有设备")
    await expect(manager.locator("#alerts li.none")).to_have_text("暂无告警")

    await manager.fill("input[name=label]", "大厅 3 号机")
    await manager.fill("input[name=location]", "一楼东侧")
    await manager.fill("input[name=group]", "一楼")
    await manager.click("button:has-text('生成登记码')")
    await expect(manager.locator("#enrolment-code")).to_contain_text("大厅 3 号机")
    await expect(manager.locator("#enrolment-code")).to_contain_text("仅显示一次")
    await screenshot(manager, "console-fleet-enrolment-code")
    code = (await manager.locator("#enrolment-code code").inner_text()).strip()
    assert code

    # The kiosk trades the code for its credential on the device channel.
    async with aiohttp.ClientSession() as session:
        body = {"code": code, "software_version": "1.4.2"}
        async with session.post(server + "/api/devices/v1/enrol", json=body) as response:
            assert response.status == 201
            enrolled = await response.json()
    assert enrolled["hall"] == "gz-th-center"

    await manager.goto(server + "/console/fleet")
    row = manager.locator(f"#fleet tr[data-device='{enrolled['device_id']}']")
    await expect(row).to_contain_text("大厅 3 号机")
    await expect(row).to_contain_text("广州市天河区政务服务中心")
    await expect(row).to_contain_text("一楼")
    await expect(row).to_contain_text("1.4.2")
    await expect(row.locator("td.st-offline")).to_have_text("离线")
    await expect(manager.locator("#alerts")).to_contain_text("大厅 3 号机：离线")
    await screenshot(manager, "console-fleet")

    await row.locator("select[name=command]").select_option("report_status")
    await row.locator("button:has-text('发送')").click()
    await expect(manager.locator("h1")).to_have_text("远程指令：大厅 3 号机")
    await expect(manager.locator("main")).to_contain_text("离线（上线后执行）")
    await expect(manager.locator("#pending")).to_contain_text("等待设备执行")
    await screenshot(manager, "console-fleet-command")

    # Another hall's manager neither lists the device nor may filter on that hall.
    other = await page_factory()
    await log_in(other, server, "yx_hall", "/console/fleet")
    await expect(other.locator("#fleet tbody")).to_contain_text("没有设备")
    await expect_refused(other, server, "/console/fleet?hall=gz-th-center")
    await screenshot(other, "console-fleet-forbidden")


@pytest.mark.browser
async def test_account_security_switches_on_totp_and_the_next_login_asks_for_a_code(
    server: str, services: Services, page_factory: PageFactory
) -> None:
    await prepare(services)
    page = await page_factory()
    await log_in(page, server, "th_hall")
    await page.click("header nav >> text=账号安全")
    await expect(page.locator("h1")).to_have_text("账号安全")
    await expect(page.locator("main")).to_contain_text("账号：th_hall · 角色：大厅管理员")
    secret = (await page.locator("code.secret").inner_text()).strip()
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    # The provisioning link is a QR code to scan, not text on the page (the secret stays, for typing in).
    qr = page.locator("main figure.qr svg")
    await expect(qr).to_be_visible()
    assert (await qr.bounding_box() or {"width": 0})["width"] >= 150
    await expect(page.locator("main")).not_to_contain_text("otpauth://")
    assert "otpauth" not in await page.content()
    await screenshot(page, "console-account")

    await page.fill("input[name=code]", "000000" if pyotp.TOTP(secret).now() != "000000" else "111111")
    await page.click("button:has-text('开启')")
    await expect(page.locator("[role=alert]")).to_have_text("动态验证码不正确")
    await expect(page.locator("code.secret")).to_have_text(secret)  # the same secret, to try again
    await screenshot(page, "console-account-wrong-code")
    await page.fill("input[name=code]", pyotp.TOTP(secret).now())
    await page.click("button:has-text('开启')")
    await expect(page.locator("p.ok")).to_contain_text("已开启动态验证码")
    await screenshot(page, "console-account-totp-on")

    again = await page_factory()
    await log_in(again, server, "th_hall")
    await expect(again.locator("h1")).to_have_text("请输入动态验证码")
    assert "/console/login/totp" in again.url
    await screenshot(again, "console-login-totp")
    await again.fill("input[name=code]", pyotp.TOTP(secret).now())
    await again.click("button:has-text('验证')")
    await expect(again.locator("h1")).to_have_text("您好，th_hall")
    await again.goto(server + "/console/account")
    await expect(again.locator("p.ok")).to_have_text("动态验证码已开启。")
