"""Scenario editing in the console: validation, drafts, publish, versions, roll back, scope, audit,
and the edited scenario reaching the kiosk and the mobile plan at once."""

from __future__ import annotations

import copy
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import expect

from tests.console_support import PASSWORD, Browserless, prepare
from tests.support.browser import PORTRAIT, PageFactory, screenshot
from yiwang import catalog, scenario_admin
from yiwang.catalog import load_catalog_files
from yiwang.errors import Conflict, InvalidInput, NotFound
from yiwang.runtime import Services
from yiwang.store import Store

BIRTH_REG, BIRTH_CERT, HUKOU, INSURANCE = "002001102000", "002001101000", "000701201000", "002001302000"
SS_CARD, ALLOWANCE = "002008101001", "000501301000"


async def birth(store: Store) -> dict[str, Any]:
    return scenario_admin.fields_of(await scenario_admin.get_scenario(store, "birth"))


async def items(store: Store) -> dict[str, Any]:
    return {d["_id"]: d async for d in store["items"].find({})}


# ---- domain -------------------------------------------------------------------------


async def test_validation_refuses_unknown_items_questions_options_and_changes_nothing(store: Store) -> None:
    await load_catalog_files(store)
    fields = await birth(store)
    fields["rules"] = [
        *fields["rules"],
        {"when": {"nope": "yes"}, "items": [BIRTH_REG]},
        {"when": {"gz_hukou": "maybe"}, "items": ["999999999999"]},
    ]
    fields["questions"] = [*fields["questions"], {"id": "gz_hukou", "text": "重复", "options": [{"value": "a"}]}]
    with pytest.raises(InvalidInput) as caught:
        await scenario_admin.save_draft(store, "birth", fields, by="u1")
    problems = caught.value.fields or {}
    assert caught.value.code == "scenario.invalid"
    assert "没有问题 nope" in problems["rules.5.when"]
    assert "没有选项 maybe" in problems["rules.6.when"]
    assert "999999999999" in problems["rules.6.items"]
    assert "重复" in problems["questions.3.id"]
    assert "questions.3.options" in problems and "questions.3.options.0.label" in problems
    assert await store["scenario_drafts"].count_documents({}) == 0
    assert await store["scenario_versions"].count_documents({}) == 0


async def test_an_answer_combination_with_an_empty_checklist_is_refused(store: Store) -> None:
    await load_catalog_files(store)
    fields = await birth(store)
    # Only conditional rules: a family outside Guangzhou that needs no card gets nothing.
    fields["rules"] = [
        {"when": {"gz_hukou": "yes"}, "items": [HUKOU]},
        {"when": {"need_ss_card": "yes"}, "items": [SS_CARD]},
    ]
    with pytest.raises(InvalidInput) as caught:
        await scenario_admin.save_draft(store, "birth", fields, by="u1")
    message = (caught.value.fields or {})["rules"]
    assert "得不到任何事项" in message and "父母一方是否为广州市户籍？「否」" in message
    assert await store["scenario_drafts"].count_documents({}) == 0


async def test_publish_versions_rollback_and_the_catalog_cache_sees_it(store: Store) -> None:
    await load_catalog_files(store)
    cache = catalog.Catalog(store)
    seeded = await cache.scenario("birth")
    fields = await birth(store)
    fields["name"] = "我要生宝宝"
    fields["questions"].append(
        {
            "id": "twins",
            "text": "是否为多胞胎？",
            "options": [{"value": "yes", "label": "是"}, {"value": "no", "label": "否"}],
        }
    )
    fields["rules"].append({"when": {"twins": "yes"}, "items": [ALLOWANCE]})
    await scenario_admin.save_draft(store, "birth", fields, by="u1")
    assert (await scenario_admin.get_scenario(store, "birth"))["name"] == seeded["name"]  # a draft is not live
    with pytest.raises(NotFound):
        await scenario_admin.rollback(store, "birth", 1, by="u1")  # nothing published yet: no versions
    _, after = await scenario_admin.publish(store, "birth", by="u1")
    assert after["version"] == 2 and after["edited"] is True
    cache.invalidate()  # what the 1 s refresh does on version change
    live = await cache.scenario("birth")
    assert live["name"] == "我要生宝宝"
    plan = catalog.plan_scenario(
        live,
        {"gz_hukou": "no", "mother_insured": "no", "need_ss_card": "no", "twins": "yes"},
        (await cache.snapshot()).items,
    )
    assert [i.code for i in plan.items] == [BIRTH_REG, BIRTH_CERT, INSURANCE, ALLOWANCE]
    assert [v["version"] for v in await scenario_admin.versions(store, "birth")] == [2, 1]
    # Reseeding keeps the console's edit.
    await load_catalog_files(store)
    assert (await scenario_admin.get_scenario(store, "birth"))["name"] == "我要生宝宝"
    _, rolled = await scenario_admin.rollback(store, "birth", 1, by="u1")
    assert rolled["version"] == 3 and rolled["name"] == seeded["name"]
    assert [q["id"] for q in rolled["questions"]] == [q["id"] for q in seeded["questions"]]
    assert [v["version"] for v in await scenario_admin.versions(store, "birth")] == [3, 2, 1]


async def test_publishing_a_stale_draft_or_without_a_draft_is_a_conflict(store: Store) -> None:
    await load_catalog_files(store)
    with pytest.raises(Conflict):
        await scenario_admin.publish(store, "birth", by="u1")
    fields = await birth(store)
    await scenario_admin.save_draft(store, "birth", fields, by="u1")
    await store["scenarios"].update_one({"_id": "birth"}, {"$set": {"version": 7}})  # someone else published
    with pytest.raises(Conflict) as caught:
        await scenario_admin.publish(store, "birth", by="u1")
    assert caught.value.code == "scenario.draft_outdated"


# ---- HTTP ---------------------------------------------------------------------------


@pytest_asyncio.fixture
async def console(services: Services, server: str) -> AsyncIterator[str]:
    await prepare(services)
    yield server


def form_of(fields: dict[str, Any]) -> list[tuple[str, str]]:
    """The structured editor's form fields for ``fields`` (what the page posts)."""
    data: list[tuple[str, str]] = [("name", fields["name"]), ("summary", fields["summary"]),
                                   ("notes", "\n".join(fields["notes"]))]  # fmt: skip
    keys = {}
    for i, q in enumerate(fields["questions"]):
        key = f"q{i}"
        keys[q["id"]] = key
        data += [("q_key", key), (f"q_id.{key}", q["id"]), (f"q_text.{key}", q["text"])]
        for o in q["options"]:
            data += [(f"opt_value.{key}", o["value"]), (f"opt_label.{key}", o["label"])]
    for i, rule in enumerate(fields["rules"]):
        key = f"r{i}"
        data.append(("r_key", key))
        for qid, value in rule["when"].items():
            data.append((f"when.{key}.{keys[qid]}", value) if qid in keys else (f"cond.{key}", f"{qid}={value}"))
        data += [(f"items.{key}", code) for code in rule["items"]]
    return data


async def post_form(c: Browserless, path: str, data: list[tuple[str, str]]) -> tuple[int, str]:
    async with c.session.post(c.base + path, data=[*data, ("_xsrf", c.token)], headers={"Accept": "text/html"}) as r:
        return r.status, await r.text()


async def test_province_edits_previews_publishes_and_the_kiosk_shows_it(console: str, services: Services) -> None:
    c = Browserless(console)
    try:
        await c.login("gd_admin")
        status, page = await c.get("/console/scenarios/birth")
        assert status == 200 and 'name="q_id.q0"' in page and "生育登记" in page
        fields = copy.deepcopy(await birth(services.store))
        fields["questions"][0]["text"] = "父母一方是否有广州户口？"
        fields["rules"].append({"when": {"gz_hukou": "no", "mother_insured": "yes"}, "items": [ALLOWANCE, SS_CARD]})
        status, page = await post_form(c, "/console/scenarios/birth", form_of(fields))
        assert status == 200 and "草稿已保存" in page
        status, page = await c.get("/console/scenarios/birth/preview?gz_hukou=no&mother_insured=yes&need_ss_card=no")
        assert status == 200 and "父母一方是否有广州户口？" in page and 'id="combos"' in page
        status, frame = await c.get(
            "/console/scenarios/birth/render?gz_hukou=no&mother_insured=yes&need_ss_card=no&hall=gz-th-center"
        )
        assert status == 200 and 'class="checklist"' in frame and "生育津贴申领" in frame
        status, kiosk = await c.get("/kiosk/scenarios/birth")
        assert "父母一方是否有广州户口？" not in kiosk  # not published yet
        status, page = await c.post("/console/scenarios/birth/publish", {})
        assert status == 200 and "已发布" in page
        status, kiosk = await c.get("/kiosk/scenarios/birth")
        assert "父母一方是否有广州户口？" in kiosk
        status, checklist = await c.get(
            "/kiosk/scenarios/birth/checklist?gz_hukou=no&mother_insured=yes&need_ss_card=no"
        )
        assert status == 200
        # Same items, same order as the console's preview frame.
        names = re.findall(r"<h2>\d+\. ([^<]+)</h2>", checklist)
        assert names == re.findall(r"<h2>\d+\. ([^<]+)</h2>", frame)
        # The mini-program's plan uses the same cache: the new rule applies there at once.
        answers = {"gz_hukou": "no", "mother_insured": "yes", "need_ss_card": "no"}
        async with c.session.post(c.base + "/api/mobile/v1/scenarios/birth/plan", json={"answers": answers}) as r:
            mobile = await r.json()
        assert [i["name"] for i in mobile["items"]] == names
        assert "社会保障卡申领" in names  # from the rule added in the console
        entries = [e async for e in services.store["audit"].find({"subject": "scenario:birth"}, sort=[("seq", 1)])]
        assert [e["action"] for e in entries] == ["scenario.save_draft", "scenario.publish"]
        assert entries[0]["detail"]["before"]["questions"][0]["text"] == "父母一方是否为广州市户籍？"
        assert entries[0]["detail"]["after"]["questions"][0]["text"] == "父母一方是否有广州户口？"
        assert entries[1]["detail"]["after"]["version"] == 2
        status, page = await c.post("/console/scenarios/birth/rollback", {"version": "1"})
        assert status == 200 and "已恢复该版本" in page
        status, kiosk = await c.get("/kiosk/scenarios/birth")
        assert "父母一方是否为广州市户籍？" in kiosk
    finally:
        await c.close()


async def test_invalid_rules_are_refused_field_by_field_and_nothing_is_saved(console: str, services: Services) -> None:
    c = Browserless(console)
    try:
        await c.login("gd_admin")
        await c.get("/console/scenarios/birth")
        fields = copy.deepcopy(await birth(services.store))
        fields["rules"].append({"when": {"ghost": "yes"}, "items": ["123456789012"]})
        status, page = await post_form(c, "/console/scenarios/birth", form_of(fields))
        assert status == 400
        assert 'data-field="rules.5.when"' in page and "没有问题 ghost" in page
        assert 'data-field="rules.5.items"' in page and "123456789012" in page
        assert "未保存任何内容" in page
        assert await services.store["scenario_drafts"].count_documents({}) == 0
        assert await services.store["audit"].count_documents({"subject": "scenario:birth"}) == 0
        status, page = await c.post("/console/scenarios/birth/publish", {})
        assert status == 409 and "没有待发布的草稿" in page  # the friendly HTML error page
    finally:
        await c.close()


async def test_city_and_hall_accounts_read_but_cannot_edit_and_csrf_is_required(
    console: str, services: Services
) -> None:
    c = Browserless(console)
    try:
        await c.login("gd_admin")
        await c.get("/console/scenarios/birth")
        fields = await birth(services.store)
        status, _ = await post_form(c, "/console/scenarios/birth", [(k, v) for k, v in form_of(fields)])
        assert status == 200
        async with c.session.post(c.base + "/console/scenarios/birth/publish", data={},
                                  headers={"Accept": "text/html"}) as r:  # fmt: skip
            assert r.status == 403  # no CSRF token
        assert (await scenario_admin.get_scenario(services.store, "birth")).get("version") is None
    finally:
        await c.close()
    for username in ("gz_admin", "th_hall"):
        c = Browserless(console)
        try:
            await c.login(username)
            status, page = await c.get("/console/scenarios/birth")
            assert status == 200 and "disabled" in page and 'id="publish"' not in page
            status, _ = await post_form(c, "/console/scenarios/birth", form_of(fields))
            assert status == 403
            for action, data in (("publish", {}), ("rollback", {"version": "1"}), ("discard", {})):
                status, _ = await c.post(f"/console/scenarios/birth/{action}", data)
                assert status == 403
        finally:
            await c.close()
    assert await services.store["scenario_drafts"].find_one({"_id": "birth"}) is not None  # still the province's
    assert (await scenario_admin.get_scenario(services.store, "birth")).get("version") is None


@pytest.mark.browser
async def test_province_edits_a_question_and_a_rule_in_chromium_and_the_kiosk_shows_it(
    server: str, services: Services, page_factory: PageFactory
) -> None:
    await prepare(services)
    page = await page_factory()
    await page.goto(server + "/console/login?next=%2Fconsole%2Fscenarios")
    await page.fill("input[name=username]", "gd_admin")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.goto(server + "/console/scenarios")
    await page.click("text=我要生孩子")
    await expect(page.locator("h1")).to_contain_text("我要生孩子")

    await page.fill('input[name="q_text.q0"]', "父母一方是否有广州户口？")
    await page.click("#add-question")
    new_question = page.locator("#questions li.question").last
    await new_question.locator(".q-text").fill("是否为多胞胎？")
    await page.click("#add-rule")
    rule = page.locator("#rules li.rule").last
    await expect(rule.locator("label.cond")).to_have_count(4)  # the new question is a condition already
    await rule.locator("label.cond").last.locator("select").select_option("yes")
    await rule.locator(".item-code").fill("999999999999")
    await page.click("#save")
    await expect(page.locator("#errors")).to_contain_text("事项目录中没有：999999999999")
    await expect(page.locator("#rules li.rule").last.locator(".field-error")).to_be_visible()
    await screenshot(page, "console-scenario-invalid-rule")
    assert await services.store["scenario_drafts"].count_documents({}) == 0

    # The refused form comes back as typed: fix the item and save the draft.
    await page.locator("#rules li.rule").last.locator(".item-code").fill(ALLOWANCE)
    await expect(page.locator("#rules li.rule").last.locator(".item-name")).to_have_text("生育津贴申领")
    await page.click("#save")
    await expect(page.locator("#draft-state")).to_have_text("有未发布的草稿")
    await page.locator("#rules li.rule").last.scroll_into_view_if_needed()
    await screenshot(page, "console-scenario-draft")

    await page.click("#preview")
    for qid, value in (("gz_hukou", "no"), ("mother_insured", "no"), ("need_ss_card", "no"), ("q4", "yes")):
        await page.select_option(f"#answers select[name={qid}]", value)
    await page.click("#update-preview")
    frame = page.frame_locator("#kiosk-frame")
    await expect(frame.locator(".checklist")).to_contain_text("生育津贴申领")
    await expect(page.locator("#combos")).to_contain_text("是否为多胞胎？")
    await screenshot(page, "console-scenario-preview")

    await page.click("text=返回编辑")
    await page.click("#publish")
    await expect(page.locator("#done")).to_contain_text("已发布")
    await expect(page.locator("#published-version")).to_have_text("2")

    kiosk = await page_factory(PORTRAIT)
    await kiosk.goto(server + "/kiosk/scenarios/birth?hall=gz-th-center")
    await expect(kiosk.locator("#wizard")).to_contain_text("父母一方是否有广州户口？")
    await expect(kiosk.locator("#wizard")).to_contain_text("是否为多胞胎？")
    await screenshot(kiosk, "kiosk-scenario-edited")
    await kiosk.goto(server + "/kiosk/scenarios/birth/checklist?gz_hukou=no&mother_insured=no&need_ss_card=no&q4=yes")
    await expect(kiosk.locator(".checklist")).to_contain_text("生育津贴申领")
    await screenshot(kiosk, "kiosk-scenario-edited-checklist")
