"""The queue walked in Chromium: a resident takes a ticket at the kiosk (printed through the device
agent, people ahead shown); a clerk calls it from the window page and the hall display shows it,
while the display's agent says it. Screenshots: tests/artifacts/queue-*.png."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import expect

from device_agent.agent import Agent
from device_agent.config import AgentConfig
from tests.conftest import free_port
from tests.support.browser import LANDSCAPE, PORTRAIT, PageFactory, screenshot
from tests.support.device_agent import RunningAgent, kiosk_agent, wait_for
from tests.test_kiosk_browser import assert_accessible
from yiwang import devices, hall_queue
from yiwang.audit import Actor
from yiwang.runtime import Services

__all__ = ["kiosk_agent"]
pytestmark = pytest.mark.browser
HALL = "gz-th-center"
WINDOW_USER, WINDOW_PASSWORD = "th_window", "demo-only-Window#2026"  # data/demo/accounts.json


@pytest_asyncio.fixture
async def display_agent(kiosk_agent: RunningAgent, services: Services, server: str,
                        tmp_path: Path) -> AsyncIterator[RunningAgent]:
    """The hall's display: an agent enrolled in the hall's ``display`` group (its speaker writes WAVs)."""
    code = await devices.create_enrolment_code(services, HALL, "大厅叫号屏", group=hall_queue.DISPLAY_GROUP)
    config = AgentConfig(server=server, state_dir=tmp_path / "display", listen_port=free_port(),
                         enrolment_code=code["code"], heartbeat_seconds=5.0, poll_seconds=0.05, backoff_min=0.1,
                         backoff_max=0.5, status_seconds=1.0, warm_cache_on_connect=False)
    agent = Agent(config)
    runner = web.AppRunner(agent.app(), shutdown_timeout=2.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", config.listen_port).start()
    assert agent.channel is not None
    await agent.channel.wait_online(10)
    agent.speaker.playback_speed = 10.0  # type: ignore[attr-defined]
    yield RunningAgent(agent, f"http://127.0.0.1:{config.listen_port}", config.state_dir, runner)
    await runner.cleanup()


async def test_a_ticket_taken_at_the_kiosk_is_printed_and_shows_the_people_ahead(
    kiosk_agent: RunningAgent, page_factory: PageFactory
) -> None:
    for n, (viewport, tag) in enumerate(((PORTRAIT, "portrait"), (LANDSCAPE, "landscape"))):
        page = await page_factory(viewport)
        await page.goto(kiosk_agent.url + "/kiosk/")
        await page.click("a.tile[href='/kiosk/queue']")  # 排队取号 on the home page
        await expect(page.locator("h1")).to_contain_text("排队取号")
        await expect(page.locator("button.queue-category")).to_have_count(4)
        await screenshot(page, f"queue-kiosk-categories-{tag}")
        await assert_accessible(page, "queue categories")
        await page.click("button.queue-category[value=A]")
        await page.wait_for_url("**/kiosk/queue/tickets/**")
        await expect(page.locator("#ticket-number")).to_have_text(f"A00{n + 1}")
        await expect(page.locator("#ticket-ahead")).to_contain_text(f"前面还有 {n} 人")
        await page.wait_for_selector("body[data-printed]")
        await expect(page.locator("#print-status")).to_contain_text("号票已打印")
        await screenshot(page, f"queue-kiosk-ticket-{tag}")
        await assert_accessible(page, "queue ticket")
        await page.reload()  # a reload shows the ticket again without printing it twice
        await expect(page.locator("#ticket-number")).to_have_text(f"A00{n + 1}")
    printed = sorted((kiosk_agent.state_dir / "printed").glob("*ticket.pdf"))
    assert len(printed) == 2 and printed[0].read_bytes().startswith(b"%PDF")

    elderly = await page_factory(PORTRAIT)
    await elderly.goto(kiosk_agent.url + "/kiosk/queue")
    await elderly.click("label:has(input[value=elderly])")
    await elderly.click("button.queue-category[value=A]")
    await expect(elderly.locator("#ticket-ahead")).to_contain_text("前面还有 0 人")  # served before A001, A002
    await expect(elderly.locator(".ticket-category")).to_contain_text("优先办理")


async def test_a_clerk_calls_from_the_window_page_and_the_hall_display_shows_and_says_it(
    kiosk_agent: RunningAgent, display_agent: RunningAgent, services: Services, server: str,
    page_factory: PageFactory,
) -> None:
    kiosk = Actor("device", "kiosk", "天河 1 号机")
    for category in ("A", "A", "B"):
        await hall_queue.take_ticket(services, HALL, category, by=kiosk, source="kiosk")

    display = await page_factory(LANDSCAPE)
    await display.goto(server + f"/hall-display/?hall={HALL}")
    await expect(display.locator("#latest-number")).to_have_text("—")
    await expect(display.locator("#waiting")).to_contain_text("民生服务 · 等候 2 人")

    clerk = await page_factory(LANDSCAPE)
    await clerk.goto(server + f"/console/queue/{HALL}/window/A01")
    await clerk.fill("input[name=username]", WINDOW_USER)
    await clerk.fill("input[name=password]", WINDOW_PASSWORD)
    await clerk.click("button[type=submit]")
    await clerk.goto(server + "/console/queue")
    await expect(clerk.locator("header nav")).to_contain_text("排队叫号")
    await expect(clerk.locator("header nav")).not_to_contain_text("公告与横幅")  # a clerk sees the queue only
    await clerk.click("a.small-button:text-is('A01')")
    await expect(clerk.locator("h1")).to_contain_text("A01 号窗口")
    await screenshot(clerk, "queue-window-before")

    await clerk.click("#call-next")
    await expect(clerk.locator("#current-number")).to_have_text("A001")
    await expect(clerk.locator("#flash")).to_contain_text("A001 已叫号")
    await expect(display.locator("#latest-number")).to_have_text("A001")
    await expect(display.locator("#latest-window")).to_contain_text("A01")
    await expect(display.locator("#waiting")).to_contain_text("民生服务 · 等候 1 人")
    await wait_for(lambda: any(u.text == hall_queue.call_text("A001", "A01")
                               for u in display_agent.agent.speaker.history),  # type: ignore[attr-defined]
                   timeout=20, what="the call spoken by the display's agent")
    await screenshot(clerk, "queue-window-called")

    await clerk.click("#recall")
    await expect(clerk.locator("#flash")).to_contain_text("A001 已重呼")
    await clerk.select_option("select[name=to_category]", "B")
    await clerk.click("#transfer")
    await expect(clerk.locator("#flash")).to_contain_text("A001 已转移")
    await clerk.click("#call-next")
    await expect(clerk.locator("#current-number")).to_have_text("A002")
    await expect(display.locator("#latest-number")).to_have_text("A002")
    await expect(display.locator("#history")).to_contain_text("A001")
    await screenshot(display, "queue-hall-display")
    await clerk.fill("input[name=number]", "Z999")
    await clerk.click("#call-number")
    await expect(clerk.locator("#error")).to_contain_text("不在等候中")
    await expect(clerk.locator("#current-number")).to_have_text("A002")  # a refused call changes nothing
    await expect(clerk.locator("#waiting")).to_contain_text("转入")
    await screenshot(clerk, "queue-window-error")
    assert not kiosk_agent.agent.speaker.history or all(  # type: ignore[attr-defined]
        "A00" not in u.text for u in kiosk_agent.agent.speaker.history)  # type: ignore[attr-defined]
