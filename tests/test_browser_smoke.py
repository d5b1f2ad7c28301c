"""The browser harness itself works: Debian chromium renders our error page in Chinese."""

from __future__ import annotations

import pytest

from tests.support.browser import PageFactory, screenshot


@pytest.mark.browser
async def test_error_page_renders_in_chromium(server: str, page_factory: PageFactory) -> None:
    page = await page_factory()
    response = await page.goto(server + "/no-such-page")
    assert response is not None and response.status == 404
    assert "找不到" in await page.inner_text("main")
    await screenshot(page, "error-page")
