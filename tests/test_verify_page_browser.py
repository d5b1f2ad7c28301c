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


@pytest.mark.browser
async def test_verify_page_checks_an_uploaded_ofd_file(services, server: str, page_factory: PageFactory) -> None:
    import io
    import zipfile

    from yiwang.ofd import files as ofd_files

    doc = await issue(services)
    data = await ofd_files.certificate_ofd(services, doc)
    page = await page_factory(PHONE)
    await page.goto(server + "/verify")
    await page.set_input_files("#ofd-file", files=[{"name": "card.ofd", "mimeType": "application/ofd", "buffer": data}])
    await page.click("form.upload button")
    await page.wait_for_selector("[data-file-valid]")
    main = await page.inner_text("main")
    assert "电子证照文件有效" in main and "广州市公安局电子证照专用章" in main
    assert "440106********3318" in main and "440106199406183318" not in main  # masked in the report
    await screenshot(page, "verify-ofd-valid")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    content = "Doc_0/Pages/Page_0/Content.xml"
    parts[content] = parts[content].replace("李明轩".encode(), "李明宣".encode())
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, body in parts.items():
            archive.writestr(name, body)
    await page.set_input_files(
        "#ofd-file", files=[{"name": "card.ofd", "mimeType": "application/ofd", "buffer": out.getvalue()}]
    )
    await page.click("form.upload button")
    await page.wait_for_selector("[data-file-valid=false]")
    assert "文件核验未通过" in await page.inner_text("main")
    await screenshot(page, "verify-ofd-tampered")
