"""存到手机 in Chromium through the device agent: ID card → certificate → 存到手机 → the scripted
mini-program reads the QR off the screen and claims it → the kiosk shows 已存到手机; the copy is in
the resident's wallet and in the certificate's access history.

Screenshots: tests/artifacts/kiosk-pickup-*.png; look at them."""

from __future__ import annotations

import json

import pytest
from axe_playwright_python.async_playwright import Axe

from tests.kiosk_support import RESIDENT
from tests.support.browser import PORTRAIT, PageFactory, screenshot
from tests.support.device_agent import RunningAgent, kiosk_agent
from tests.support.miniprogram import MiniProgram
from yiwang import qrdecode
from yiwang.runtime import Services

__all__ = ["kiosk_agent"]
pytestmark = pytest.mark.browser


async def test_a_certificate_copy_goes_from_the_kiosk_to_the_holders_phone(
    kiosk_agent: RunningAgent, services: Services, page_factory: PageFactory, client, fake_wechat
) -> None:
    mp = MiniProgram(client, fake_wechat)
    await mp.login()
    await mp.bind(RESIDENT["name"], RESIDENT["id_number"])

    page = await page_factory(PORTRAIT)
    await page.goto(kiosk_agent.url + "/kiosk/identify")
    await page.wait_for_function("document.body.getAttribute('data-on-device') === '1'")
    await page.wait_for_timeout(300)  # let the page's event socket connect
    (kiosk_agent.state_dir / "id-card.json").write_text(json.dumps(RESIDENT, ensure_ascii=False), encoding="utf-8")
    await page.wait_for_url("**/kiosk/certificates")
    name = (await page.locator(".cert-tile >> nth=0").inner_text()).split("\n")[0].strip()
    await page.click(".cert-tile >> nth=0")
    await page.wait_for_selector("[data-pickup-purpose]")
    await screenshot(page, "kiosk-pickup-certificate-portrait")
    await page.click("[data-pickup-purpose='资格审核']")
    await page.wait_for_selector("#pickup-qr svg")
    text = await page.inner_text("body")
    assert "存到手机" in text and "资格审核" in text and "陈*" in text
    assert RESIDENT["name"] not in text and RESIDENT["id_number"] not in text
    await screenshot(page, "kiosk-pickup-qr-portrait")
    results = await Axe().run(page)
    assert not [v["id"] for v in results.response["violations"] if v["impact"] in ("serious", "critical")]

    # what the phone's camera reads off the screen
    codes = qrdecode.decode_bytes(await page.locator("#pickup-qr").screenshot())
    assert len(codes) == 1 and codes[0].startswith("YWP1:") and len(codes[0]) == 31
    picked = await mp.post("/copies/pickup", {"code": codes[0]}, expect=201)

    await page.wait_for_selector("body[data-picked-up]", timeout=15000)
    assert await page.is_visible("text=已存到手机")
    assert not await page.is_visible("#pickup-qr")
    await screenshot(page, "kiosk-pickup-done-portrait")

    wallet = (await mp.get("/copies"))["copies"]
    assert [c["id"] for c in wallet] == [picked["copy"]["id"]]
    assert wallet[0]["certificate_name"] == name and wallet[0]["made_by"]["label"] == "测试 1 号机"
    assert wallet[0]["purpose"] == "资格审核"
    history = await mp.get(f"/certificates/{picked['certificate']['id']}/access-history")
    assert any(e["copy"] and e["copy"]["id"] == picked["copy"]["id"] for e in history["entries"])
    assert await page.evaluate("localStorage.length + sessionStorage.length") == 0
