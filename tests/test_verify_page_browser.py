"""The public verify page in Chromium: valid, then revoked."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.fixtures.certs import issue
from tests.support.browser import PHONE, PageFactory, screenshot
from yiwang import certificates, verification


@pytest.mark.browser
async def test_verify_page_shows_live_status(services, server: str, page_factory: PageFactory) -> None:
    doc = await issue(services)
    text = verification.payload_for(doc)
    page = await page_factory(PHONE)
    await page.goto(server + "/verify?c=" + quote(text, safe=""))
    assert "证照有效" in await page.inner_text("main")
    assert "440106********3318" in await page.inner_text("main")
    await screenshot(page, "verify-valid")
    await certificates.change_status(services, "gz-psb", doc["identifier"], "revoked", "信息有误")
    await page.reload()
    assert "证照撤销" in await page.inner_text("main")
    await screenshot(page, "verify-revoked")
    response = await page.goto(server + "/verify?c=garbage")
    assert response is not None and response.status == 400
    assert "无法核验" in await page.inner_text("main")
    await screenshot(page, "verify-bad-code")
