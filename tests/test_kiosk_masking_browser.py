"""Kiosk screens show what the masking policy allows (yiwang.masking), and the idle question covers
the screen: checked in Chromium through the development device agent.

Screenshots go to /tmp/identity-shots/; look at them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.async_api import Page

from tests.support.browser import LANDSCAPE, PORTRAIT, PageFactory
from tests.support.device_agent import RunningAgent, kiosk_agent
from yiwang import certificates
from yiwang.identity import OneNumber, number_index
from yiwang.runtime import Services

__all__ = ["kiosk_agent"]
pytestmark = pytest.mark.browser
RESIDENT = {"id_number": "440104195203122151", "name": "陈国华"}
SHOTS = Path("/tmp/identity-shots")
# what the demo certificates of 陈国华 hold that no kiosk screen may show
SECRETS = ("陈国华", "440104195203122151", "1952-03-12", "19520312", "文德路", "301房", "440104012345")


async def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=False)


async def identify(page: Page, agent: RunningAgent) -> None:
    await page.goto(agent.url + "/kiosk/identify")
    await page.wait_for_function("document.body.getAttribute('data-on-device') === '1'")
    await page.wait_for_timeout(300)  # let the page's event socket connect
    (agent.state_dir / "id-card.json").write_text(json.dumps(RESIDENT, ensure_ascii=False), encoding="utf-8")
    await page.wait_for_url("**/kiosk/certificates")


async def test_kiosk_certificate_screens_hide_birth_date_address_and_full_number(
    kiosk_agent: RunningAgent, services: Services, page_factory: PageFactory
) -> None:
    await certificates.load_demo_certificates(services)
    holder = number_index(services.cipher, OneNumber("person", RESIDENT["id_number"]))
    certs = await certificates.list_for_holder(services.store, holder)
    page = await page_factory(LANDSCAPE)
    await identify(page, kiosk_agent)
    listed = await page.inner_text("body")
    assert not [s for s in SECRETS if s in listed]
    for cert in certs:
        await page.goto(f"{kiosk_agent.url}/kiosk/certificates/{cert['id']}")
        text = await page.inner_text("body")
        assert not [s for s in SECRETS if s in text], cert["type"]["code"]
        if cert["type"]["code"] == "resident_id_card":
            assert "440104********2151" in text and "陈**" in text
            assert "****-**-**" in text and "广州市越秀区******" in text
            assert "汉" in text and "广州市公安局越秀区分局" in text  # what is not personal stays readable
            await shot(page, "kiosk-id-card-masked")


async def test_the_idle_question_covers_the_screen_opaquely(
    kiosk_agent: RunningAgent, services: Services, page_factory: PageFactory
) -> None:
    await certificates.load_demo_certificates(services)
    holder = number_index(services.cipher, OneNumber("person", RESIDENT["id_number"]))
    card = next(c for c in await certificates.list_for_holder(services.store, holder)
                if c["type"]["code"] == "resident_id_card")
    page = await page_factory(PORTRAIT)
    await identify(page, kiosk_agent)
    await page.goto(f"{kiosk_agent.url}/kiosk/certificates/{card['id']}?idle_warn=1&idle_reset=60")
    await page.wait_for_selector("#idle-dialog", state="visible")
    background = await page.eval_on_selector("#idle-dialog", "e => getComputedStyle(e).backgroundColor")
    assert background.startswith("rgb(") or background.endswith(", 1)"), background  # no transparency
    # whatever point of the certificate one looks at, the overlay is what is there
    covered = await page.evaluate("""() => [...document.querySelectorAll('.fields dd, #session-banner')].every(el => {
        const r = el.getBoundingClientRect();
        const top = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
        return top !== null && top.closest('#idle-dialog') !== null;
    })""")
    assert covered
    assert not await page.is_visible(".cert-card")  # hidden, not only covered (screen readers too)
    await shot(page, "kiosk-idle-overlay")
    await page.click("#idle-continue")
    await page.wait_for_selector(".cert-card", state="visible")
    assert "440104********2151" in await page.inner_text("main")
    await shot(page, "kiosk-after-idle-continue")


async def test_the_rebind_code_page_after_the_card_is_read(
    kiosk_agent: RunningAgent, services: Services, page_factory: PageFactory
) -> None:
    page = await page_factory(PORTRAIT)
    await identify(page, kiosk_agent)
    await page.click("#rebind-link")
    await page.click("text=生成改绑码")
    code = await page.inner_text("#rebind-code")
    assert len(code.replace(" ", "")) == 8 and code.replace(" ", "").isdigit()
    assert await page.locator(".qr svg").count() == 1
    text = await page.inner_text("body")
    assert not [s for s in SECRETS if s in text]
    await shot(page, "kiosk-rebind-code")
