"""The kiosk walked as a resident would, in Chromium, through the development device agent.

Screenshots go to tests/artifacts/kiosk-*.png; look at them.
"""

from __future__ import annotations

import json

import pytest
import segno
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Page

from tests.support.browser import LANDSCAPE, PORTRAIT, PageFactory, screenshot
from tests.support.device_agent import RunningAgent, kiosk_agent, wait_for
from yiwang import certificates, display_codes
from yiwang.identity import OneNumber, number_index
from yiwang.runtime import Services

__all__ = ["kiosk_agent"]
pytestmark = pytest.mark.browser
RESIDENT = {"id_number": "440104195203122151", "name": "陈国华"}
SERIOUS = ("serious", "critical")


async def assert_accessible(page: Page, name: str) -> None:
    results = await Axe().run(page)
    bad = [v for v in results.response["violations"] if v["impact"] in SERIOUS]
    assert not bad, f"{name}: " + "; ".join(f"{v['id']}: {v['help']}" for v in bad)


async def test_scenario_to_checklist_to_print_in_both_orientations(
    kiosk_agent: RunningAgent, page_factory: PageFactory
) -> None:
    for viewport, tag in ((PORTRAIT, "portrait"), (LANDSCAPE, "landscape")):
        page = await page_factory(viewport)
        await page.goto(kiosk_agent.url + "/kiosk/")
        assert "我要生孩子" in await page.inner_text("main")
        await page.wait_for_function("document.querySelector('#offline-banner').hidden === true")
        await screenshot(page, f"kiosk-home-{tag}")
        await assert_accessible(page, "home")
        await page.click("text=我要生孩子")
        await page.wait_for_selector("text=第 1 题，共 3 题")
        await screenshot(page, f"kiosk-question-{tag}")
        await assert_accessible(page, "question")
        for step, value in enumerate(("yes", "yes", "no")):
            await page.click(f"fieldset[data-step='{step}'] label:has(input[value='{value}'])")
        await page.wait_for_url("**/checklist?**")
        text = await page.inner_text("body")
        assert "出生医学证明首次签发" in text and "打印清单" in text
        await screenshot(page, f"kiosk-checklist-{tag}")
        await assert_accessible(page, "checklist")
        await page.click("#print-checklist")
        await page.wait_for_selector("body[data-printed]")
        # each target is at least 60 px high
        visible_heights = "els => els.filter(e => e.offsetParent).map(e => e.offsetHeight)"
        heights = await page.eval_on_selector_all("a.btn, button.btn, a.tile", visible_heights)
        assert min(heights) >= 60
    printed = list((kiosk_agent.state_dir / "printed").glob("*checklist.pdf"))
    assert len(printed) == 2 and printed[0].read_bytes().startswith(b"%PDF")


async def test_elderly_mode_is_larger_keeps_everything_and_stays_on(
    kiosk_agent: RunningAgent, page_factory: PageFactory
) -> None:
    page = await page_factory(PORTRAIT)
    await page.goto(kiosk_agent.url + "/kiosk/")
    normal = await page.evaluate("parseFloat(getComputedStyle(document.documentElement).fontSize)")
    await page.click("#elderly-toggle")
    large = await page.evaluate("parseFloat(getComputedStyle(document.documentElement).fontSize)")
    assert large > normal * 1.2
    assert await page.is_visible("#hot-title")  # elderly mode adds, never removes
    await page.click("text=我要上学")
    assert await page.evaluate("document.documentElement.classList.contains('elderly')")
    await screenshot(page, "kiosk-elderly-question-portrait")
    await assert_accessible(page, "elderly question")
    await page.goto(kiosk_agent.url + "/kiosk/")
    await screenshot(page, "kiosk-elderly-home-portrait")
    await assert_accessible(page, "elderly home")
    page2 = await page_factory(LANDSCAPE)
    await page2.goto(kiosk_agent.url + "/kiosk/")
    await page2.click("#elderly-toggle")
    await screenshot(page2, "kiosk-elderly-home-landscape")


async def identify(page: Page, agent: RunningAgent) -> None:
    await page.goto(agent.url + "/kiosk/identify")
    await page.wait_for_function("document.body.getAttribute('data-on-device') === '1'")
    await page.wait_for_timeout(300)  # let the page's event socket connect
    (agent.state_dir / "id-card.json").write_text(json.dumps(RESIDENT, ensure_ascii=False), encoding="utf-8")
    await page.wait_for_url("**/kiosk/certificates")


async def test_id_card_to_certificates_to_print(
    kiosk_agent: RunningAgent, services: Services, page_factory: PageFactory
) -> None:
    await certificates.load_demo_certificates(services)
    page = await page_factory(LANDSCAPE)
    await identify(page, kiosk_agent)
    text = await page.inner_text("body")
    assert "陈*" in text and "440104********2151" in text
    assert "陈国华" not in text and RESIDENT["id_number"] not in text
    await screenshot(page, "kiosk-certificates-landscape")
    await assert_accessible(page, "certificates")
    await page.click(".cert-tile >> nth=0")
    await page.wait_for_selector("[data-print-cert]")
    await screenshot(page, "kiosk-certificate-landscape")
    shown = await page.inner_text("body")
    assert "陈国华" not in shown and RESIDENT["id_number"] not in shown
    await page.click("[data-print-cert] >> nth=0")
    await page.wait_for_selector("body[data-printed]")
    assert list((kiosk_agent.state_dir / "printed").glob("*certificate.pdf"))
    actions = [e["action"] async for e in services.store["audit"].find({"channel": "kiosk"})]
    assert "kiosk.identified" in actions and "certificate.print" in actions
    assert await page.evaluate("localStorage.length + sessionStorage.length") == 0


async def test_phone_display_code_held_to_the_camera_is_redeemed(
    kiosk_agent: RunningAgent, services: Services, page_factory: PageFactory
) -> None:
    await certificates.load_demo_certificates(services)
    holder = number_index(services.cipher, OneNumber("person", RESIDENT["id_number"]))
    cert = (await certificates.list_for_holder(services.store, holder))[0]
    code = await display_codes.create_display_code(services, holder, cert["id"], "办理社保业务")
    page = await page_factory(PORTRAIT)
    await page.goto(kiosk_agent.url + "/kiosk/redeem")
    await page.wait_for_timeout(300)
    segno.make(code["code"], error="m").save(str(kiosk_agent.state_dir / "camera" / "frame.png"), scale=8, border=4)
    await page.wait_for_selector("text=亮证成功")
    assert "办理社保业务" in await page.inner_text("main")
    await screenshot(page, "kiosk-redeemed-portrait")


async def test_idle_kiosk_asks_then_clears_everything(
    kiosk_agent: RunningAgent, services: Services, page_factory: PageFactory
) -> None:
    await certificates.load_demo_certificates(services)
    page = await page_factory(PORTRAIT)
    await identify(page, kiosk_agent)
    await page.goto(kiosk_agent.url + "/kiosk/certificates?idle_warn=2&idle_reset=4")
    assert "陈*" in await page.inner_text("body")
    await page.wait_for_selector("#idle-dialog", state="visible")
    await screenshot(page, "kiosk-idle-question-portrait")
    await page.wait_for_url(lambda url: url.endswith("/kiosk/"), timeout=10000)
    await page.wait_for_load_state()
    assert "陈*" not in await page.inner_text("body")
    assert "session-banner" not in await page.content()
    cookies = {c["name"] for c in await page.context.cookies()}
    assert "kiosk_session" not in cookies
    assert await page.evaluate("localStorage.length + sessionStorage.length") == 0

    async def no_sessions() -> bool:
        return await services.store["kiosk_sessions"].count_documents({}) == 0

    await wait_for(no_sessions, what="server session ended")
    await screenshot(page, "kiosk-after-idle-portrait")
