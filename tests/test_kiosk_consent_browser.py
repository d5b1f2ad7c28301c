"""扫码取证 at the kiosk, in Chromium through the device agent: the kiosk shows its QR, the
scripted mini-program releases two certificates, the page shows exactly those (masked), and
结束服务 wipes them (the consent session ends on the server too)."""

from __future__ import annotations

import pytest

from tests.kiosk_support import RESIDENT
from tests.support.browser import LANDSCAPE, PORTRAIT, PageFactory, screenshot
from tests.support.device_agent import RunningAgent, kiosk_agent, wait_for
from tests.support.miniprogram import MiniProgram
from yiwang import certificates, qrdecode
from yiwang.runtime import Services

__all__ = ["kiosk_agent"]
pytestmark = pytest.mark.browser


async def scan_kiosk_qr(page) -> str:  # type: ignore[no-untyped-def]
    """What the phone's camera reads from the kiosk screen (a real QR image)."""
    png = await page.locator("#consent-qr").screenshot()
    texts = qrdecode.decode_bytes(png)
    assert len(texts) == 1 and texts[0].startswith("YWS1:")
    return texts[0]


@pytest.mark.parametrize("viewport", [PORTRAIT, LANDSCAPE], ids=["portrait", "landscape"])
async def test_phone_releases_two_certificates_to_the_kiosk_and_ending_wipes_them(
    kiosk_agent: RunningAgent, services: Services, page_factory: PageFactory, client, fake_wechat,
    viewport: dict[str, int],
) -> None:
    tag = "portrait" if viewport is PORTRAIT else "landscape"
    await certificates.load_demo_certificates(services)
    mp = MiniProgram(client, fake_wechat)
    await mp.login()
    await mp.bind(RESIDENT["name"], RESIDENT["id_number"])

    page = await page_factory(viewport)
    await page.goto(kiosk_agent.url + "/kiosk/identify")
    await page.wait_for_selector("#consent-qr svg")
    await screenshot(page, f"kiosk-consent-qr-{tag}")
    code = await scan_kiosk_qr(page)

    described = await mp.post("/consent/describe", {"code": code})
    assert described["requester"]["label"] == "测试 1 号机"
    offered = described["certificates"]
    assert len(offered) >= 3
    chosen = offered[:2]
    await mp.post("/consent/release", {"code": code, "certificate_ids": [c["id"] for c in chosen]})

    await page.wait_for_url("**/kiosk/certificates", timeout=15000)
    text = await page.inner_text("body")
    assert "陈*" in text and "440104********2151" in text
    assert RESIDENT["name"] not in text and RESIDENT["id_number"] not in text
    tiles = await page.locator(".cert-tile").all_inner_texts()
    assert len(tiles) == 2
    assert all(any(c["name"] in t for t in tiles) for c in chosen)
    await screenshot(page, f"kiosk-consent-released-{tag}")
    heights = await page.eval_on_selector_all("a.btn, button.btn, a.tile",
                                              "els => els.filter(e => e.offsetParent).map(e => e.offsetHeight)")
    assert min(heights) >= 60

    # a certificate that was not released cannot be opened at this kiosk
    hidden = offered[2]["id"]
    response = await page.goto(kiosk_agent.url + f"/kiosk/certificates/{hidden}")
    assert response is not None and response.status == 404
    await page.go_back()

    await page.click("[data-end-session]")
    await page.wait_for_url(lambda url: url.endswith("/kiosk/"), timeout=10000)
    assert "陈*" not in await page.inner_text("body")
    assert await page.evaluate("localStorage.length + sessionStorage.length") == 0

    async def wiped() -> bool:
        doc = await services.store["consent_sessions"].find_one({"status": "ended"})
        return doc is not None and doc["released"] == [] and doc["copies"] == []

    await wait_for(wiped, what="consent session ended and wiped")
    assert await services.store["kiosk_sessions"].count_documents({}) == 0
    await screenshot(page, f"kiosk-consent-ended-{tag}")
