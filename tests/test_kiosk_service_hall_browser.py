"""Issue 11: the kiosk to the standard of a real service hall, walked in Chromium through the
development device agent. Screenshots go to /tmp/kiosk-shots/ (and tests/artifacts/); look at them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import segno
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Page

from tests.support.browser import LANDSCAPE, PORTRAIT, PageFactory, screenshot
from tests.support.device_agent import RunningAgent, kiosk_agent, wait_for
from yiwang import audit, certificates, content, display_codes, publishing
from yiwang.identity import OneNumber, number_index
from yiwang.runtime import Services

__all__ = ["kiosk_agent"]
pytestmark = pytest.mark.browser
RESIDENT = {"id_number": "440104195203122151", "name": "陈国华"}
SHOTS = Path("/tmp/kiosk-shots")
SERIOUS = ("serious", "critical")
STAFF = audit.Actor("staff", "u1", "内容管理员")


async def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"))
    await screenshot(page, f"kiosk-hall-{name}")


async def assert_accessible(page: Page, name: str) -> None:
    results = await Axe().run(page)
    bad = [v for v in results.response["violations"] if v["impact"] in SERIOUS]
    assert not bad, f"{name}: " + "; ".join(f"{v['id']}: {v['help']}" for v in bad)


async def publish_notice(services: Services, agent: RunningAgent, title: str) -> None:
    fields = {"title": title, "body_html": "<p>本周六暂停服务</p>", "level": "important",
              "target": {"scope": "hall", "hall": "gz-th-center"}}
    doc = await content.create_draft(services.store, "notice", fields, by="u1")
    await content.publish(services.store, doc["_id"], by="u1")
    before = len(agent.agent.received)
    await publishing.push_content(services, await content.get(services.store, doc["_id"]), STAFF)
    await wait_for(lambda: any(m["topic"] == "notices" for m in agent.agent.received[before:]),
                   what="the notice pushed to the kiosk")


async def identify(page: Page, agent: RunningAgent, then: str = "/kiosk/certificates") -> None:
    await page.goto(agent.url + "/kiosk/identify?next=" + then)
    await page.wait_for_function("document.body.getAttribute('data-on-device') === '1'")
    await page.wait_for_timeout(300)  # let the page's event socket connect
    (agent.state_dir / "id-card.json").write_text(json.dumps(RESIDENT, ensure_ascii=False), encoding="utf-8")
    await page.wait_for_url("**" + then)


# ---- 1. never break what a person is doing ------------------------------------------------


async def test_notice_published_mid_flow_changes_nothing_until_the_session_ends(
    kiosk_agent: RunningAgent, services: Services, page_factory: PageFactory
) -> None:
    await certificates.load_demo_certificates(services)
    # a resident on question 2 of a scenario (no identification needed for guidance)
    walker = await page_factory(PORTRAIT)
    await walker.goto(kiosk_agent.url + "/kiosk/scenarios/birth?idle_warn=30&idle_reset=40")
    await walker.click("fieldset[data-step='0'] label:has(input[value='yes'])")
    await walker.wait_for_selector("text=第 2 题，共 3 题")
    await walker.evaluate("window.__untouched = 1")
    # an identified resident looking at a certificate
    holder = await page_factory(LANDSCAPE)
    await identify(holder, kiosk_agent)
    await holder.click(".cert-tile >> nth=0")
    await holder.wait_for_selector("[data-print-cert]")
    await holder.evaluate("window.__untouched = 1")
    # the home page, nobody touching it
    idle_home = await page_factory(LANDSCAPE)
    await idle_home.goto(kiosk_agent.url + "/kiosk/")
    await idle_home.wait_for_function("document.querySelector('#offline-banner').hidden === true")

    await publish_notice(services, kiosk_agent, "本周六暂停服务通知")

    for page in (walker, holder):
        await page.wait_for_selector("body[data-content-pending='1']")
        assert await page.evaluate("window.__untouched") == 1  # not reloaded
        assert "本周六暂停服务通知" not in await page.inner_text("body")
    assert "第 2 题，共 3 题" in await walker.inner_text("main")
    assert await walker.is_visible("fieldset[data-step='1']")
    await shot(walker, "mid-flow-after-notice-portrait")
    # the idle home page takes the notice up by itself
    await idle_home.wait_for_selector("text=本周六暂停服务通知", timeout=15000)
    # the session ends: the notice is there on the home page
    await holder.click("[data-end-session]")
    await holder.wait_for_url(lambda url: url.endswith("/kiosk/"), timeout=10000)
    await holder.wait_for_selector("text=本周六暂停服务通知")


async def test_display_code_redeemed_twice_in_one_visit_shows_the_same_copy(
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
    await publish_notice(services, kiosk_agent, "新公告")
    await page.wait_for_selector("body[data-content-pending='1']")
    await page.reload()  # even a reload (the form re-sent) shows the same certificate
    text = await page.inner_text("main")
    assert "亮证成功" in text and "该亮证码已被使用" not in text
    assert await services.store["certificate_copies"].count_documents({"certificate_id": cert["id"]}) == 1
    await shot(page, "redeem-after-reload-portrait")
    # another visit (after 结束服务 / idle) is refused: the code is single use
    await page.context.clear_cookies()
    await page.goto(kiosk_agent.url + "/kiosk/redeem")
    await page.wait_for_timeout(300)
    (kiosk_agent.state_dir / "camera" / "frame.png").unlink(missing_ok=True)
    segno.make(code["code"], error="m").save(str(kiosk_agent.state_dir / "camera" / "frame.png"), scale=8, border=4)
    await page.wait_for_selector("text=该亮证码已被使用")


# ---- 2. finding things -----------------------------------------------------------------


async def test_home_has_hot_items_search_and_browsing_that_reach_every_item(
    kiosk_agent: RunningAgent, services: Services, page_factory: PageFactory
) -> None:
    snap = await services.catalog.snapshot()
    for viewport, tag in ((PORTRAIT, "portrait"), (LANDSCAPE, "landscape")):
        page = await page_factory(viewport)
        await page.goto(kiosk_agent.url + "/kiosk/")
        assert await page.locator(".hot .tile").count() == 8
        assert await page.is_visible("#hot-title")
        await shot(page, f"home-{tag}")
        await assert_accessible(page, f"home {tag}")
        # search: Chinese, pinyin, initials, a homophone typo
        await page.fill("#home-search", "社保卡")
        await page.click(".search-bar button[type=submit]")
        await page.wait_for_url("**/kiosk/search?q=**")
        assert "社会保障卡申领" in await page.inner_text("#search-results")
        for typed, expected in (("sbk", "社会保障卡申领"), ("shebaoka", "社会保障卡挂失"), ("社宝卡", "社会保障卡补换"),
                                ("gjj", "住房公积金提取")):
            await page.click("[data-letter=clear]")
            await page.fill("#search-q", typed)
            await page.wait_for_function(
                "t => document.querySelector('#search-results').innerText.includes(t)", arg=expected)
        # on-screen letters (no keyboard on a kiosk)
        await page.click("[data-letter=clear]")
        for letter in "jhdj":
            await page.click(f"[data-letter={letter}]")
        await page.wait_for_function("document.querySelector('#search-results').innerText.includes('结婚登记')")
        await shot(page, f"search-{tag}")
        await assert_accessible(page, f"search {tag}")
    # browsing: by department, every item reachable; by theme
    await page.goto(kiosk_agent.url + "/kiosk/browse")
    counts = await page.eval_on_selector_all(".depts .tile small", "els => els.map(e => parseInt(e.textContent))")
    assert sum(counts) == len(snap.items) == 58
    await shot(page, "browse-landscape")
    await assert_accessible(page, "browse")
    await page.click("text=广州住房公积金管理中心")
    assert await page.locator("#item-list li").count() == 3
    await page.goto(kiosk_agent.url + "/kiosk/")
    await page.click("text=法人办事")
    legal = await page.inner_text("#item-list")
    assert "企业设立登记（有限责任公司）" in legal and "社会保障卡申领" not in legal
    await assert_accessible(page, "theme list")
    await page.click("text=企业设立登记（有限责任公司）")
    await page.wait_for_url("**/kiosk/items/000105101000")
    await shot(page, "item-landscape")
    await assert_accessible(page, "item")
    # elderly mode keeps all of it
    elderly = await page_factory(PORTRAIT)
    await elderly.goto(kiosk_agent.url + "/kiosk/")
    await elderly.click("#elderly-toggle")
    assert await elderly.is_visible("#hot-title") and await elderly.is_visible("#home-search")
    await shot(elderly, "home-elderly-portrait")
    await assert_accessible(elderly, "elderly home")


# ---- 3. questions follow earlier answers ----------------------------------------------------


async def test_scenario_questions_follow_earlier_answers_and_the_console_edits_when_they_are_asked(
    kiosk_agent: RunningAgent, server: str, services: Services, page_factory: PageFactory
) -> None:
    for viewport, tag in ((PORTRAIT, "portrait"), (LANDSCAPE, "landscape")):
        page = await page_factory(viewport)
        await page.goto(kiosk_agent.url + "/kiosk/scenarios/employment")
        await page.click("fieldset[data-step='0'] label:has(input[value='job'])")
        await page.wait_for_selector("text=第 2 题，共 2 题")
        assert await page.is_visible("fieldset[data-question='graduate']")
        assert not await page.is_visible("fieldset[data-question='business_form']")
        await shot(page, f"question-follows-answer-{tag}")
        await assert_accessible(page, f"question {tag}")
        await page.click("fieldset[data-question='graduate'] label:has(input[value='yes'])")
        await page.wait_for_url("**/checklist?**")
        assert "business_form" not in page.url
        text = await page.inner_text(".checklist")
        assert "就业登记" in text and "人才引进入户申请" in text and "个体工商户" not in text
    # a move out is not asked what the move in is based on
    await page.goto(kiosk_agent.url + "/kiosk/scenarios/hukou")
    await page.click("fieldset[data-step='0'] label:has(input[value='out'])")
    await page.wait_for_url("**/checklist?**")
    assert "户口迁出" in await page.inner_text(".checklist") and "reason" not in page.url
    # a start-up is asked its form, not whether a graduate
    await page.goto(kiosk_agent.url + "/kiosk/scenarios/employment")
    await page.click("fieldset[data-step='0'] label:has(input[value='startup'])")
    await page.wait_for_selector("text=第 2 题，共 2 题")
    await page.click("fieldset[data-question='business_form'] label:has(input[value='sole'])")
    await page.wait_for_url("**/checklist?**")
    assert "个体工商户设立登记" in await page.inner_text(".checklist") and "graduate" not in page.url
    # a stale answer to a question not asked is ignored by the plan
    await page.goto(kiosk_agent.url + "/kiosk/scenarios/hukou/checklist?direction=out&reason=talent")
    text = await page.inner_text(".checklist")
    assert "户口迁出" in text and "人才引进" not in text

    # the console's editor says when a question is asked
    from tests.console_support import PASSWORD, prepare

    await prepare(services)
    console = await page_factory(LANDSCAPE)
    await console.goto(server + "/console/login?next=%2Fconsole%2Fscenarios")
    await console.fill("input[name=username]", "gd_admin")
    await console.fill("input[name=password]", PASSWORD)
    await console.click("button[type=submit]")
    await console.goto(server + "/console/scenarios/birth")
    await console.fill('input[name="ask_if.q2"]', "nope=yes")
    await console.click("#save")
    await console.wait_for_selector("text=只能依据前面的问题")
    await console.fill('input[name="ask_if.q2"]', "gz_hukou=yes")
    await console.click("#save")
    await console.wait_for_selector("#draft-state >> text=有未发布的草稿")
    assert await console.input_value('input[name="ask_if.q2"]') == "gz_hukou=yes"
    await shot(console, "console-ask-if-landscape")
    await console.click("#publish")
    await console.wait_for_selector("#done")
    kiosk = await page_factory(PORTRAIT)
    await kiosk.goto(server + "/kiosk/scenarios/birth?hall=gz-th-center")
    await kiosk.click("fieldset[data-step='0'] label:has(input[value='no'])")
    await kiosk.wait_for_selector("text=第 2 题，共 2 题")
    await kiosk.click("fieldset[data-step='1'] label:has(input[value='no'])")
    await kiosk.wait_for_url("**/checklist?**")
    assert "need_ss_card" not in kiosk.url


# ---- 4. words a citizen uses ----------------------------------------------------------------


async def test_screens_use_a_citizens_words_not_zero_days_legends_for_nothing_or_error_codes(
    kiosk_agent: RunningAgent, page_factory: PageFactory
) -> None:
    for viewport, tag in ((PORTRAIT, "portrait"), (LANDSCAPE, "landscape")):
        page = await page_factory(viewport)
        answers = "gz_hukou=yes&mother_insured=yes&need_ss_card=no"
        await page.goto(kiosk_agent.url + "/kiosk/scenarios/birth/checklist?" + answers)
        text = await page.inner_text("main")
        assert "即办" in text and not re.search(r"(?<!\d)0 个工作日", text)
        assert "✔" not in text  # nothing is marked, so no legend for it
        await page.goto(kiosk_agent.url + "/kiosk/items/002001101000")
        assert "即办" in await page.inner_text("main")
        await page.goto(kiosk_agent.url + "/kiosk/scenarios/nope")
        text = await page.inner_text("main")
        assert "找不到该场景" in text and "catalog." not in text and "错误代码" not in text
        await shot(page, f"error-{tag}")
        await assert_accessible(page, f"error {tag}")


# ---- 5. main actions and messages stay in view; elderly mode adds, never removes -------------


async def test_checklist_actions_and_messages_stay_in_view_and_elderly_mode_keeps_everything(
    kiosk_agent: RunningAgent, page_factory: PageFactory
) -> None:
    path = "/kiosk/scenarios/birth/checklist?gz_hukou=yes&mother_insured=yes&need_ss_card=yes"
    for viewport, tag in ((PORTRAIT, "portrait"), (LANDSCAPE, "landscape")):
        for elderly in (False, True):
            page = await page_factory(viewport)
            if elderly:
                await page.context.add_cookies([{"name": "kiosk_elderly", "value": "1", "url": kiosk_agent.url}])
            await page.goto(kiosk_agent.url + path)
            await page.wait_for_function("document.querySelector('#offline-banner').hidden === true")
            height = await page.evaluate("document.documentElement.scrollHeight")
            assert height > viewport["height"]  # a long page ...
            box = await page.locator("#print-checklist").bounding_box()
            assert box and box["y"] + box["height"] <= viewport["height"]  # ... with 打印清单 in view at once
            if elderly:
                # nothing removed: the help line, time limits, fees and notes are all there
                assert await page.is_visible(".foot")
                assert await page.locator(".check-item .meta").first.is_visible()
                assert await page.is_visible("#notes-title")
            name = f"checklist-{'elderly-' if elderly else ''}{tag}"
            await shot(page, name)
            await assert_accessible(page, name)
            await page.click("#print-checklist")
            await page.wait_for_selector("body[data-printed]")
            status = page.locator("#action-status")
            await page.wait_for_function("document.querySelector('#action-status').textContent.includes('取件')")
            sbox = await status.bounding_box()
            assert sbox and sbox["y"] + sbox["height"] <= viewport["height"]  # the message is next to the button
            # the bar never hides the end of the page
            await page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
            qr = await page.locator(".phone-qr").bounding_box()
            bar = await page.locator("#action-bar").bounding_box()
            assert qr and bar and qr["y"] + qr["height"] <= bar["y"]
            if elderly and tag == "portrait":
                await shot(page, "checklist-elderly-printed-portrait")


# ---- 6. verification anyone can do ---------------------------------------------------------


async def test_printed_copy_qr_is_a_url_that_opens_the_verify_page_with_the_copy_facts(
    kiosk_agent: RunningAgent, server: str, services: Services, page_factory: PageFactory, tmp_path: Path
) -> None:
    import subprocess
    import sys
    import urllib.parse

    from yiwang import copy_files, qrdecode, verification
    from yiwang.certificates import Redeemer

    await certificates.load_demo_certificates(services)
    page = await page_factory(LANDSCAPE)
    await identify(page, kiosk_agent)
    await page.click(".cert-tile >> nth=0")
    await page.click("[data-print-cert] >> nth=0")
    await page.wait_for_selector("body[data-printed]")
    copy = await services.store["certificate_copies"].find_one({}, sort=[("made_at", -1)])
    assert copy is not None
    png = await copy_files.copy_image(services, copy["_id"], Redeemer(**copy["made_by"]), "png")
    [url] = qrdecode.decode_bytes(png)
    assert url.startswith(services.config.public_url + "/verify?c=YWV1:") and f"copy={copy['_id']}" in url
    assert RESIDENT["id_number"] not in url and RESIDENT["name"] not in urllib.parse.unquote(url)
    # still verifiable offline, in both forms, by the library and by the command
    keys = await verification.published_keys_document(services)
    raw = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["c"][0]
    assert verification.verify_offline(url, keys)["signature_valid"] is True
    assert verification.verify_offline(raw, keys)["signature_valid"] is True
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(json.dumps(keys, ensure_ascii=False, default=str), encoding="utf-8")
    for text in (url, raw):
        done = subprocess.run([sys.executable, "-m", "yiwang.verification", "verify", text, "--keys", str(keys_file)],
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0 and '"signature_valid": true' in done.stdout, done.stderr

    # a clerk's phone opens the URL: valid, with 制作事由, 制作者, 制作时间, 有效期至
    from tests.support.browser import PHONE

    phone = await page_factory(PHONE)
    await phone.goto(server + url[len(services.config.public_url):])
    facts = await phone.inner_text("#copy-facts")
    assert "办理业务" in facts and "测试 1 号机" in facts and "有效期至" in facts
    assert "证照有效" in await phone.inner_text("main")
    await shot(phone, "verify-copy-phone")
    await assert_accessible(phone, "verify copy")
    # without a code: how to check a copy, not an error
    response = await phone.goto(server + "/verify")
    assert response is not None and response.status == 200
    assert "如何核验加注件" in await phone.inner_text("main")
    await shot(phone, "verify-how-to-phone")
    await assert_accessible(phone, "verify how-to")
    await phone.fill("#paste-code", raw)
    await phone.click("form.paste button")
    assert "证照有效" in await phone.inner_text("main")
    await phone.goto(server + "/verify")
    await phone.set_input_files("#qr-photo", files=[{"name": "qr.png", "mimeType": "image/png", "buffer": png}])
    await phone.click("form.photo button")
    assert "办理业务" in await phone.inner_text("#copy-facts")
    await shot(phone, "verify-photo-phone")


# ---- 7. 呼叫工作人员 -------------------------------------------------------------------------


async def test_call_for_staff_shows_at_once_on_the_hall_console_and_the_kiosk_says_someone_is_coming(
    kiosk_agent: RunningAgent, server: str, services: Services, page_factory: PageFactory
) -> None:
    from tests.console_support import PASSWORD, prepare

    await prepare(services)
    console = await page_factory(LANDSCAPE)
    await console.goto(server + "/console/login?next=%2Fconsole%2Fcalls")
    await console.fill("input[name=username]", "th_hall")
    await console.fill("input[name=password]", PASSWORD)
    await console.click("button[type=submit]")
    await console.wait_for_url("**/console/calls")
    await console.wait_for_selector("text=暂无呼叫")

    # a button on every kiosk page
    for path in ("/kiosk/", "/kiosk/search", "/kiosk/browse", "/kiosk/scenarios/birth", "/kiosk/items/002001101000",
                 "/kiosk/redeem", "/kiosk/identify", "/kiosk/agent", "/kiosk/scenarios/nope"):
        probe = await page_factory(PORTRAIT)
        await probe.goto(kiosk_agent.url + path)
        assert await probe.is_visible("#call-staff"), path
        await probe.context.close()

    for viewport, tag, elderly in ((PORTRAIT, "portrait", False), (LANDSCAPE, "landscape", True)):
        kiosk = await page_factory(viewport)
        if elderly:
            await kiosk.context.add_cookies([{"name": "kiosk_elderly", "value": "1", "url": kiosk_agent.url}])
        await kiosk.goto(kiosk_agent.url + "/kiosk/scenarios/employment/checklist?situation=unemployed")
        await kiosk.wait_for_function("document.body.getAttribute('data-on-device') === '1'")
        await kiosk.click("#call-staff")
        await kiosk.wait_for_selector("#call-banner >> text=已呼叫工作人员")
        await shot(kiosk, f"call-waiting-{'elderly-' if elderly else ''}{tag}")
        await assert_accessible(kiosk, f"call waiting {tag}")
        # the console shows it at once: which kiosk, which page
        row = console.locator("#calls tr[data-status=open]")
        await row.wait_for(timeout=5000)
        text = await row.inner_text()
        assert "测试 1 号机" in text and "/kiosk/scenarios/employment/checklist" in text and "办事清单" in text
        assert "situation=" not in text  # the page, never its query
        await shot(console, f"console-call-{tag}")
        await assert_accessible(console, "console calls")
        await row.locator("button").click()
        await console.wait_for_selector("#calls tr[data-status=acknowledged]")
        # the kiosk says someone is coming
        await kiosk.wait_for_selector("body[data-call=acknowledged]", timeout=5000)
        assert "正在赶来" in await kiosk.inner_text("#call-banner")
        # it stays said on the next page, until the service ends
        await kiosk.goto(kiosk_agent.url + "/kiosk/")
        assert "正在赶来" in await kiosk.inner_text("#call-banner")
        await shot(kiosk, f"call-coming-{'elderly-' if elderly else ''}{tag}")
        await kiosk.evaluate("window.kioskEndSession('button')")
        await kiosk.wait_for_url(lambda url: url.endswith("/kiosk/"), timeout=10000)
        await kiosk.wait_for_load_state()
        assert not await kiosk.is_visible("#call-banner")
        await console.wait_for_selector("text=暂无呼叫")
    actions = [e["action"] async for e in services.store["audit"].find({"action": {"$regex": "^staff_call"}})]
    assert actions.count("staff_call.call") == 2 and actions.count("staff_call.acknowledge") == 2
