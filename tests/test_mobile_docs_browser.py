"""The mini-program API's readable docs page in Chromium: every operation listed,
grouped under Chinese headings, Chinese text intact, readable on a phone too."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from mobile_api.openapi import document
from tests.support.browser import PHONE, PageFactory, screenshot


@pytest.mark.browser
async def test_docs_page_lists_every_operation_under_chinese_headings(server: str, page_factory: PageFactory) -> None:
    spec = document()
    operations = [(method, path, op) for path, ops in spec["paths"].items() for method, op in ops.items()]
    tags = list(dict.fromkeys(op.get("tags", ["其他"])[0] for _, _, op in operations))

    page = await page_factory()
    response = await page.goto(server + "/api/mobile/v1/docs")
    assert response is not None and response.status == 200
    assert await page.evaluate("document.characterSet") == "UTF-8"
    await expect(page).to_have_title("一网 · 小程序 API · 接口文档")
    await expect(page.locator("header h1")).to_contain_text("一网 · 小程序 API")
    await expect(page.locator("header")).to_contain_text("message 为中文说明")
    await expect(page.locator("main h2")).to_have_text(tags)
    await expect(page.locator("section.op")).to_have_count(len(operations))

    session = page.locator("section.op", has=page.locator("code.path", has_text=re.compile(r"^/session$"))).filter(
        has=page.locator(".method", has_text="POST")
    )
    await expect(session.locator(".summary")).to_have_text(spec["paths"]["/session"]["post"]["summary"])
    await expect(session.locator(".badge.public")).to_have_text("无需登录")
    await expect(session).to_contain_text("code*")
    submit = page.locator("section.op", has=page.locator("code.path", has_text="/applications/{application_id}/submit"))
    await expect(submit).to_have_count(1)
    await expect(submit.locator(".summary")).not_to_be_empty()
    await screenshot(page, "mobile-docs")
    await page.locator("h2", has_text="证照").scroll_into_view_if_needed()
    await screenshot(page, "mobile-docs-certificates")

    phone = await page_factory(PHONE)
    await phone.goto(server + "/api/mobile/v1/docs")
    await expect(phone.locator("section.op")).to_have_count(len(operations))
    await screenshot(phone, "mobile-docs-phone")
    # Nothing wider than the phone: no sideways scrolling.
    assert await phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    longest = phone.locator("code.path", has_text="/staff/rectifications/{rectification_id}/close")
    await longest.scroll_into_view_if_needed()
    await screenshot(phone, "mobile-docs-phone-long-paths")
