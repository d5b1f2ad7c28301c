"""The catalogue as residents meet it: search, hot items, one-time guidance."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ROOT
from yiwang.catalog import plan_scenario
from yiwang.errors import InvalidInput
from yiwang.runtime import Services
from yiwang.seed import load_demo_data


@pytest.fixture
async def demo(services: Services) -> Services:
    await load_demo_data(services)
    return services


async def test_social_security_card_is_found_by_initials_and_by_a_homophone_typo(demo: Services) -> None:
    for query in ("sb", "社宝卡", "社保卡", "shebaoka"):
        names = [item["name"] for item in await demo.catalog.search(query)]
        assert any("社保卡" in n or "社会保障卡" in n for n in names[:5]), (query, names[:5])


async def test_nonsense_finds_nothing(demo: Services) -> None:
    assert await demo.catalog.search("火星移民签证") == []


async def test_overlong_query_is_refused(demo: Services) -> None:
    with pytest.raises(InvalidInput):
        await demo.catalog.search("社" * 51)


async def test_birth_scenario_plan_lists_items_in_order_and_marks_held_certificates(demo: Services) -> None:
    snap = await demo.catalog.snapshot()
    scenario = snap.scenarios["birth"]
    answers = {q["id"]: q["options"][0]["value"] for q in scenario["questions"]}
    plan = plan_scenario(scenario, answers, snap.items, held_certificate_types={"resident_id_card"})
    assert len(plan.items) >= 3
    codes = [i.code for i in plan.items]
    assert len(codes) == len(set(codes))
    id_materials = [m for i in plan.items for m in i.materials if m.certificate_type == "resident_id_card"]
    assert id_materials and all(m.no_need_to_bring for m in id_materials)
    others = [m for i in plan.items for m in i.materials if m.certificate_type not in (None, "resident_id_card")]
    assert all(not m.no_need_to_bring for m in others)


async def test_unanswered_question_is_named(demo: Services) -> None:
    snap = await demo.catalog.snapshot()
    scenario = snap.scenarios["birth"]
    with pytest.raises(InvalidInput) as caught:
        plan_scenario(scenario, {}, snap.items)
    assert set(caught.value.fields or {}) == {q["id"] for q in scenario["questions"]}


async def test_demo_data_loads_idempotently(demo: Services) -> None:
    before = await demo.store["items"].count_documents({})
    residents = await demo.store["residents"].count_documents({})
    await load_demo_data(demo)
    assert await demo.store["items"].count_documents({}) == before >= 40
    assert await demo.store["residents"].count_documents({}) == residents > 0


async def test_residents_are_stored_without_clear_personal_data(demo: Services) -> None:
    clear = json.loads((ROOT / "data/demo/residents.json").read_text(encoding="utf-8"))
    stored = json.dumps([d async for d in demo.store["residents"].find({})], ensure_ascii=False, default=str)
    for person in clear:
        assert person["id_number"] not in stored
        assert person["name"] not in stored
        assert person["phone"] not in stored


async def test_console_edits_survive_reloading_the_seed_files(demo: Services) -> None:
    await demo.store["halls"].update_one({"_id": "gz-th-center"}, {"$set": {"address": "新地址", "edited": True}})
    await load_demo_data(demo)
    hall = await demo.store["halls"].find_one({"_id": "gz-th-center"})
    assert hall is not None and hall["address"] == "新地址"


def test_a_question_asked_only_after_some_answers_is_skipped_and_ignored_by_the_plan() -> None:
    from yiwang import catalog as cat
    from yiwang import scenario_admin

    scenario = {
        "code": "x", "name": "x",
        "questions": [
            {"id": "direction", "text": "方向",
             "options": [{"value": "in", "label": "入"}, {"value": "out", "label": "出"}]},
            {"id": "reason", "text": "依据", "ask_if": {"direction": ["in"]},
             "options": [{"value": "talent", "label": "人才"}, {"value": "spouse", "label": "投靠"}]},
        ],
        "rules": [{"when": {"direction": "in", "reason": "talent"}, "items": ["a"]},
                  {"when": {"direction": "out"}, "items": ["b"]}, {"when": {"direction": "in"}, "items": ["c"]}],
    }  # fmt: skip
    items = {c: {"code": c, "name": c, "department": "d"} for c in "abc"}
    assert [q["id"] for q in cat.asked_questions(scenario, {"direction": "out"})] == ["direction"]
    assert cat.validate_answers(scenario, {"direction": "out", "reason": "talent"}) == {"direction": "out"}
    assert [i.code for i in cat.plan_scenario(scenario, {"direction": "out", "reason": "talent"}, items).items] == ["b"]
    assert cat.answer_combinations(scenario["questions"]) == [
        {"direction": "in", "reason": "talent"}, {"direction": "in", "reason": "spouse"}, {"direction": "out"}]
    with pytest.raises(InvalidInput):
        cat.validate_answers(scenario, {"direction": "in"})  # asked, so it must be answered
    # the editor: text form, earlier questions only, known options
    assert scenario_admin.parse_ask_if("direction=in，out; x=y") == {"direction": ["in", "out"], "x": ["y"]}
    bad = {**scenario, "questions": [{**scenario["questions"][1], "ask_if": "reason=talent"}, scenario["questions"][0]]}
    with pytest.raises(InvalidInput) as refused:
        scenario_admin.validate_scenario(bad, items)
    assert "只能依据前面的问题" in str(refused.value.fields)
