"""A hall manager walks the console in Chromium: log in, write a notice for their hall,
preview it at kiosk sizes, publish it, and a kiosk page of that hall shows it;
a manager of another hall cannot see it or change it."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from console.generate import generate
from tests.console_support import PASSWORD, prepare
from tests.support.browser import PORTRAIT, PageFactory, screenshot
from tests.support.device_agent import RunningAgent, kiosk_agent  # noqa: F401  (the fixture)
from yiwang.runtime import Services


async def log_in(page, server: str, username: str) -> None:  # type: ignore[no-untyped-def]
    await page.goto(server + "/console/login")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await expect(page.locator("h1")).to_contain_text("您好")


@pytest.mark.browser
async def test_hall_manager_publishes_a_notice_that_the_kiosk_shows(
    server: str, services: Services, page_factory: PageFactory
) -> None:
    await prepare(services)
    manager = await page_factory()
    await manager.goto(server + "/console/notices")
    await expect(manager.locator("h1")).to_have_text("管理后台登录")
    await screenshot(manager, "console-login")
    await log_in(manager, server, "th_hall")
    await screenshot(manager, "console-home")

    await manager.goto(server + "/console/notices/new")
    await manager.fill("input[name=title]", "本周六上午系统升级暂停服务")
    await manager.fill("textarea[name=body_html]", "<p>11月28日（周六）<strong>9:00–12:00</strong> 暂停自助服务。</p>")
    await manager.select_option("select[name=level]", "urgent")
    await manager.click("#save")
    await expect(manager.locator("#status")).to_have_text("草稿")
    await screenshot(manager, "console-notice-draft")

    await manager.click("#preview")
    await expect(manager.locator("figure.portrait iframe")).to_be_visible()
    for frame in manager.frames[1:]:
        await expect(frame.locator(".kiosk-notice h2")).to_contain_text("系统升级")
    await screenshot(manager, "console-notice-preview")
    content_id = re.search(r"/console/notices/([0-9a-f]{32})", manager.url).group(1)  # type: ignore[union-attr]

    kiosk = await page_factory(PORTRAIT)
    await kiosk.goto(server + "/kiosk/?hall=gz-th-center")
    await expect(kiosk.locator("body")).not_to_contain_text("本周六上午系统升级")

    await manager.goto(server + f"/console/notices/{content_id}")
    await manager.click("#publish")
    await expect(manager.locator("#status")).to_have_text("已发布")
    await screenshot(manager, "console-notice-published")

    await kiosk.reload()
    await expect(kiosk.locator("body")).to_contain_text("本周六上午系统升级", timeout=2000)
    await screenshot(kiosk, "console-notice-on-kiosk")

    # The manager of another hall sees neither the notice in the list nor the page.
    other = await page_factory()
    await log_in(other, server, "yx_hall")
    await other.goto(server + "/console/notices")
    await expect(other.locator("main")).not_to_contain_text("本周六上午系统升级")
    response = await other.goto(server + f"/console/notices/{content_id}")
    assert response is not None and response.status == 403
    await expect(other.locator("main")).to_contain_text("无权")
    await screenshot(other, "console-other-hall-forbidden")

    # Figures at a glance: server-rendered SVG charts.
    await generate(services.store, days=3, per_day=20)
    await manager.goto(server + "/console/figures?period=7d")
    await expect(manager.locator("svg.chart").first).to_be_visible()
    await screenshot(manager, "console-figures")


@pytest.mark.browser
async def test_publish_reaches_an_idle_kiosk_through_its_device_agent(
    server: str, services: Services, page_factory: PageFactory, kiosk_agent: RunningAgent  # noqa: F811
) -> None:
    await prepare(services)
    kiosk = await page_factory(PORTRAIT)
    await kiosk.goto(kiosk_agent.url + "/kiosk/")
    await expect(kiosk.locator("body")).not_to_contain_text("电梯检修")
    manager = await page_factory()
    await log_in(manager, server, "th_hall")
    await manager.goto(server + "/console/notices/new")
    await manager.fill("input[name=title]", "东侧电梯检修，请走西侧楼梯")
    await manager.click("#save")
    await manager.click("#publish")
    await expect(manager.locator("#status")).to_have_text("已发布")
    # No reload by the test: the push reaches the agent, which tells the page to refresh.
    # An idle home page takes new content once nobody has touched it for 3 s (docs/kiosk-and-devices.md).
    await expect(kiosk.locator("body")).to_contain_text("东侧电梯检修", timeout=10_000)
    await screenshot(kiosk, "console-notice-pushed-to-kiosk")
    await manager.reload()
    await expect(manager.locator("#delivery")).to_contain_text("已送达")
    await screenshot(manager, "console-notice-delivery")
