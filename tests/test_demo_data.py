"""Demo and catalogue data in data/: shapes, counts, valid numbers and referential integrity.

Plain synchronous tests; no fixtures, no database. The GB 11643 / GB 32100 checks are
re-implemented here on purpose so the data is checked independently of yiwang.identity.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import fastjsonschema
import pytest

DATA = Path(__file__).resolve().parent.parent / "data"
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
DEMO_TODAY = dt.date(2026, 11, 26)
CJK = re.compile(r"[\u4e00-\u9fff]")
REGION = re.compile(r"^\d{6}$")


@cache
def load(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def departments() -> dict[str, dict[str, Any]]:
    return {d["code"]: d for d in load("departments.json")}


def cert_types() -> dict[str, dict[str, Any]]:
    return {c["code"]: c for c in load("certificate_types.json")}


def items() -> dict[str, dict[str, Any]]:
    return {i["code"]: i for i in load("items.json")}


def halls() -> dict[str, dict[str, Any]]:
    return {h["code"]: h for h in load("halls.json")}


def residents() -> dict[str, dict[str, Any]]:
    return {r["id_number"]: r for r in load("demo/residents.json")}


def companies() -> dict[str, dict[str, Any]]:
    return {c["credit_code"]: c for c in load("demo/companies.json")}


# ---- number checks (independent re-implementation) ---------------------------

ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
CREDIT_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
CREDIT_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
ORG_WEIGHTS = [3, 7, 9, 10, 5, 8, 4, 2]


def id_number_ok(value: str) -> bool:
    if not re.fullmatch(r"\d{17}[\dX]", value):
        return False
    try:
        born = dt.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    if not dt.date(1900, 1, 1) <= born <= DEMO_TODAY or value[14:17] == "000":
        return False
    return "10X98765432"[sum(int(c) * w for c, w in zip(value[:17], ID_WEIGHTS, strict=True)) % 11] == value[17]


def credit_code_ok(value: str) -> bool:
    if len(value) != 18 or any(c not in CREDIT_CHARSET for c in value):
        return False
    if not value[2:8].isdigit():
        return False
    body = value[8:16]
    org = 11 - sum((int(c) if c.isdigit() else ord(c) - 55) * w for c, w in zip(body, ORG_WEIGHTS, strict=True)) % 11
    if {10: "X", 11: "0"}.get(org, str(org)) != value[16]:
        return False
    check = 31 - sum(CREDIT_CHARSET.index(c) * w for c, w in zip(value[:17], CREDIT_WEIGHTS, strict=True)) % 31
    return CREDIT_CHARSET[0 if check == 31 else check] == value[17]


def test_number_checks_accept_known_good_and_reject_bad_examples() -> None:
    assert id_number_ok("11010519491231002X")
    assert not id_number_ok("110105194912310021")
    assert not id_number_ok("110105194902300021")  # 30 February
    assert credit_code_ok("91350100M000100Y43")
    assert not credit_code_ok("91350100M000100Y44")
    assert not credit_code_ok("91350100M000100I43")


def assert_credit_code(value: str, prefixes: tuple[str, ...]) -> None:
    assert credit_code_ok(value), value
    assert value[:2] in prefixes, value
    # yiwang.identity.parse_one_number tells the two kinds apart by "first 17 not all digits"
    assert not value[:17].isdigit(), value


def parse_date(value: str) -> dt.date:
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", value), value
    return dt.date.fromisoformat(value)


def check_schema_shape(schema: dict[str, Any], where: str) -> None:
    assert schema["$schema"] == DRAFT_2020_12, where
    assert schema["type"] == "object", where
    assert schema["additionalProperties"] is False, where
    props = schema["properties"]
    assert props, where
    for name, prop in props.items():
        assert re.fullmatch(r"[a-z][a-z0-9_]*", name), f"{where}: {name}"
        assert CJK.search(prop.get("title", "")), f"{where}: {name} needs a Chinese title"
    assert set(schema["required"]) <= set(props), where
    assert len(set(schema["required"])) == len(schema["required"]), where
    fastjsonschema.compile(schema)


# ---- counts and uniqueness ----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "minimum"),
    [
        ("departments.json", 15),
        ("certificate_types.json", 12),
        ("items.json", 45),
        ("scenarios.json", 10),
        ("halls.json", 4),
        ("demo/residents.json", 6),
        ("demo/companies.json", 3),
        ("demo/certificates.json", 15),
    ],
)
def test_each_catalogue_file_has_the_minimum_number_of_entries(name: str, minimum: int) -> None:
    assert isinstance(load(name), list)
    assert len(load(name)) >= minimum


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("departments.json", "code"),
        ("departments.json", "credit_code"),
        ("certificate_types.json", "code"),
        ("certificate_types.json", "type_code"),
        ("items.json", "code"),
        ("items.json", "implementation_code"),
        ("items.json", "name"),
        ("scenarios.json", "code"),
        ("halls.json", "code"),
        ("demo/residents.json", "id_number"),
        ("demo/residents.json", "phone"),
        ("demo/companies.json", "credit_code"),
        ("demo/certificates.json", "number"),
    ],
)
def test_keys_are_unique(name: str, key: str) -> None:
    dupes = [v for v, n in Counter(entry[key] for entry in load(name)).items() if n > 1]
    assert dupes == []


def test_files_are_readable_utf8_json_indented_two_spaces() -> None:
    for path in sorted(DATA.rglob("*.json")):
        text = path.read_text(encoding="utf-8")
        assert text.startswith(("[\n  ", "{\n  ")), path
        assert not re.search(r"\\u[0-9a-fA-F]{4}", text), path  # written with ensure_ascii=False
        assert json.loads(text) is not None


# ---- departments ------------------------------------------------------------------


def test_departments_have_valid_credit_codes_regions_and_levels() -> None:
    for d in load("departments.json"):
        assert re.fullmatch(r"[a-z]{2}(-[a-z]+)+", d["code"]), d["code"]
        assert CJK.search(d["name"])
        assert_credit_code(d["credit_code"], ("11", "12", "13"))
        assert REGION.match(d["region"]) and d["region"].startswith("44")
        assert d["credit_code"][2:8] == d["region"]
        assert d["level"] in {"province", "city", "district"}
        if d["level"] == "province":
            assert d["region"] == "440000"
        elif d["level"] == "city":
            assert d["region"].endswith("00") and d["region"] != "440000"
        else:
            assert not d["region"].endswith("00")


# ---- certificate types -------------------------------------------------------------


def test_certificate_types_are_well_formed() -> None:
    depts = departments()
    for c in load("certificate_types.json"):
        auth = c["defining_authority"]
        assert CJK.search(auth["name"])
        assert_credit_code(auth["credit_code"], ("11", "12", "13"))
        assert auth["credit_code"][2:8] == "100000"
        assert len(c["type_code"]) == 21
        assert c["type_code"][:18] == auth["credit_code"] and c["type_code"][18:].isdigit()
        assert c["issuer_departments"] and set(c["issuer_departments"]) <= set(depts), c["code"]
        assert c["holder_kind"] in {"person", "organisation"}
        years = c["validity"]["years"]
        assert years is None or (isinstance(years, int) and years > 0)
        check_schema_shape(c["fields"], c["code"])
        layout = c["layout"]
        assert re.fullmatch(r"#[0-9A-Fa-f]{6}", layout["color"])
        assert CJK.search(layout["title"])
        assert layout["field_order"] and set(layout["field_order"]) <= set(c["fields"]["properties"])


def test_certificate_types_cover_the_common_documents() -> None:
    codes = set(cert_types())
    for needed in [
        "resident_id_card",
        "household_register",
        "birth_medical_certificate",
        "marriage_certificate",
        "driving_licence",
        "social_security_card",
        "business_licence",
        "real_estate_certificate",
        "disability_certificate",
        "residence_permit",
        "diploma",
        "outpatient_record",
    ]:
        assert needed in codes


# ---- items ------------------------------------------------------------------------

KINDS = {"行政许可", "行政确认", "行政给付", "公共服务", "其他行政权力"}
CHANNELS = {"kiosk", "mobile", "window"}


def test_items_are_well_formed_and_reference_existing_departments_and_certificates() -> None:
    depts, types = departments(), cert_types()
    for it in load("items.json"):
        where = it["code"]
        assert re.fullmatch(r"\d{12}", it["code"]), where
        dept = depts[it["department"]]
        assert it["implementation_code"] == dept["credit_code"] + it["code"] + it["implementation_code"][30:]
        assert re.fullmatch(r"\d{3}", it["implementation_code"][30:]), where
        assert CJK.search(it["name"]) and CJK.search(it["short_name"])
        assert it["kind"] in KINDS, where
        assert isinstance(it["legal_days"], int) and isinstance(it["promised_days"], int)
        assert 0 <= it["promised_days"] <= it["legal_days"], where
        assert it["fee"]["amount_yuan"] >= 0 and it["fee"]["note"], where
        assert it["conditions"] and all(CJK.search(s) for s in it["conditions"]), where
        assert it["materials"], where
        assert len({m["id"] for m in it["materials"]}) == len(it["materials"]), where
        for m in it["materials"]:
            assert re.fullmatch(r"[a-z][a-z0-9_]*", m["id"]), where
            assert m["form"] in {"original", "copy", "electronic"}, where
            assert isinstance(m["copies"], int) and m["copies"] >= 1, where
            assert isinstance(m["required"], bool), where
            if "certificate_type" in m:
                assert m["certificate_type"] in types, (where, m["id"])
        assert it["channels"] and set(it["channels"]) <= CHANNELS, where
        assert it["audience"] and set(it["audience"]) <= {"个人", "法人"}, where
        if "mobile" in it["channels"]:
            check_schema_shape(it["form_schema"], where)
        else:
            assert it["form_schema"] is None, where
        assert it["keywords"] and all(CJK.search(k) for k in it["keywords"]), where
        assert isinstance(it["popularity"], int) and 0 <= it["popularity"] <= 1000, where
        if it.get("result_certificate_type") is not None:
            result = types[it["result_certificate_type"]]
            assert it["department"] in result["issuer_departments"], where
        assert isinstance(it["window_required"], bool), where
        if it["window_required"]:
            assert "window" in it["channels"], where


def test_enough_items_are_offered_on_mobile_and_kiosk() -> None:
    all_items = load("items.json")
    assert sum("mobile" in i["channels"] for i in all_items) >= 15
    assert sum("kiosk" in i["channels"] for i in all_items) >= 25
    assert {i["kind"] for i in all_items} == KINDS


@pytest.mark.parametrize(
    "fragment",
    [
        "出生医学证明",
        "出生登记",
        "生育登记",
        "生育津贴",
        "新生儿参加",
        "入学报名",
        "学位申请",
        "失业登记",
        "就业登记",
        "创业资助",
        "个体工商户设立",
        "退休",
        "养老金",
        "企业设立登记",
        "公章刻制",
        "银行基本存款账户",
        "发票",
        "单位参保登记",
        "户口迁入",
        "户口迁出",
        "不动产转移登记",
        "不动产权证书查询",
        "社会保障卡申领",
        "社会保障卡补换",
        "社会保障卡挂失",
        "结婚登记",
        "离婚登记",
        "高龄津贴",
        "老年人优待证",
        "居住证申领",
        "驾驶证有效期满换证",
        "残疾人证新办",
        "住房公积金提取",
        "门诊病历复印",
    ],
)
def test_the_catalogue_covers_the_required_life_events(fragment: str) -> None:
    assert any(fragment in i["name"] for i in load("items.json")), fragment


def test_mobile_forms_accept_a_plausible_minimal_submission_shape() -> None:
    """Every required property has a type, so a client can render an input for it."""
    for it in load("items.json"):
        if it["form_schema"] is None:
            continue
        for name in it["form_schema"]["required"]:
            assert "type" in it["form_schema"]["properties"][name], (it["code"], name)


# ---- scenarios -----------------------------------------------------------------------


def checklist(scenario: dict[str, Any], answers: dict[str, str]) -> list[str]:
    out: list[str] = []
    for rule in scenario["rules"]:
        if all(answers.get(q) == v for q, v in rule["when"].items()):
            out += [code for code in rule["items"] if code not in out]
    return out


def test_scenarios_are_well_formed_and_reference_existing_items() -> None:
    known = items()
    life_events = set()
    for sc in load("scenarios.json"):
        where = sc["code"]
        life_events.add(sc["life_event"])
        assert CJK.search(sc["name"]) and CJK.search(sc["summary"]), where
        assert sc["icon"] and len(sc["icon"]) <= 3, where
        assert 2 <= len(sc["questions"]) <= 4, where
        options: dict[str, set[str]] = {}
        for q in sc["questions"]:
            values = [o["value"] for o in q["options"]]
            assert len(values) >= 2 and len(set(values)) == len(values), (where, q["id"])
            assert all(CJK.search(o["label"]) for o in q["options"]), (where, q["id"])
            assert CJK.search(q["text"]), (where, q["id"])
            options[q["id"]] = set(values)
        assert len(options) == len(sc["questions"]), where
        assert sc["rules"] and sc["notes"], where
        for rule in sc["rules"]:
            for qid, value in rule["when"].items():
                assert value in options[qid], (where, qid, value)
            assert rule["items"], where
            for code in rule["items"]:
                assert code in known, (where, code)
    needed = {
        "生育",
        "入学",
        "就业创业",
        "退休",
        "开办企业",
        "户口迁移",
        "不动产登记",
        "社保卡",
        "结婚登记",
        "老年人优待",
    }
    assert needed <= life_events, needed - life_events


def test_every_combination_of_answers_yields_a_non_empty_checklist() -> None:
    for sc in load("scenarios.json"):
        ids = [q["id"] for q in sc["questions"]]
        for combo in itertools.product(*[[o["value"] for o in q["options"]] for q in sc["questions"]]):
            result = checklist(sc, dict(zip(ids, combo, strict=True)))
            assert result, (sc["code"], combo)
            assert len(result) == len(set(result))


def test_birth_checklist_orders_items_as_the_rules_list_them() -> None:
    sc = next(s for s in load("scenarios.json") if s["life_event"] == "生育")
    answers = {q["id"]: "yes" for q in sc["questions"]}
    result = checklist(sc, answers)
    names = [items()[c]["name"] for c in result]
    assert names[0] == "生育登记"
    assert any("出生医学证明" in n for n in names) and any("生育津贴" in n for n in names)


# ---- halls ----------------------------------------------------------------------------


def test_halls_reference_existing_items_and_include_a_village_station() -> None:
    known = items()
    for h in load("halls.json"):
        assert REGION.match(h["region"]) and REGION.match(h["city"]), h["code"]
        assert h["city"].endswith("00") and h["region"][:4] == h["city"][:4], h["code"]
        assert CJK.search(h["name"]) and CJK.search(h["address"])
        assert h["opening_hours"] and all(o["days"] and o["hours"] for o in h["opening_hours"])
        numbers = [w["number"] for w in h["windows"]]
        assert numbers and len(set(numbers)) == len(numbers), h["code"]
        for w in h["windows"]:
            assert w["items"] and set(w["items"]) <= set(known), (h["code"], w["number"])
    assert any("村" in h["name"] and "服务站" in h["name"] for h in load("halls.json"))


# ---- demo people, companies, certificates ------------------------------------------


def test_demo_residents_have_valid_id_numbers_consistent_with_gender() -> None:
    people = load("demo/residents.json")
    for r in people:
        assert id_number_ok(r["id_number"]), r["name"]
        assert r["id_number"].startswith("44") and REGION.match(r["region"])
        assert r["gender"] == ("male" if int(r["id_number"][16]) % 2 else "female"), r["name"]
        assert re.fullmatch(r"1[3-9]\d{9}", r["phone"])
        assert CJK.search(r["name"])
    assert any("1950" <= r["id_number"][6:10] <= "1959" for r in people), "an elderly resident born in the 1950s"
    village_regions = {h["region"] for h in load("halls.json") if "村" in h["name"]}
    assert any(r["region"] in village_regions for r in people), "a village resident"


def test_demo_companies_have_valid_credit_codes_and_known_representatives() -> None:
    people = residents()
    for c in load("demo/companies.json"):
        assert_credit_code(c["credit_code"], ("91", "92", "93"))
        assert c["credit_code"][2:8] == c["region"]
        assert c["legal_representative_id_number"] in people
        assert CJK.search(c["name"])


def test_demo_certificates_reference_known_types_holders_and_issuers() -> None:
    types, people, orgs, depts = cert_types(), residents(), companies(), departments()
    for cert in load("demo/certificates.json"):
        t = types[cert["type"]]
        where = (cert["type"], cert["number"])
        if t["holder_kind"] == "person":
            assert cert["holder"] in people, where
        else:
            assert cert["holder"] in orgs, where
        assert cert["issuer"] in depts and cert["issuer"] in t["issuer_departments"], where
        issued = parse_date(cert["issued_on"])
        assert issued <= DEMO_TODAY, where
        if cert["valid_until"] is not None:
            assert parse_date(cert["valid_until"]) > issued, where
        if t["validity"]["years"] is None:
            assert cert["valid_until"] is None, where


def test_demo_certificate_fields_are_valid_against_their_type_schema() -> None:
    validators = {code: fastjsonschema.compile(t["fields"]) for code, t in cert_types().items()}
    holder_keys = {"id_number", "holder_id_number", "member_id_number", "social_security_number", "licence_id_number"}
    for cert in load("demo/certificates.json"):
        validators[cert["type"]](cert["fields"])
        for key in holder_keys & set(cert["fields"]):
            assert cert["fields"][key] == cert["holder"], (cert["number"], key)
        if "credit_code" in cert["fields"]:
            assert cert["fields"]["credit_code"] == cert["holder"], cert["number"]


def test_every_resident_holds_two_certificates_and_one_expires_soon() -> None:
    held = Counter(c["holder"] for c in load("demo/certificates.json"))
    for id_number, r in residents().items():
        assert held[id_number] >= 2, r["name"]
    soon = DEMO_TODAY + dt.timedelta(days=60)
    assert any(
        c["valid_until"] and DEMO_TODAY <= parse_date(c["valid_until"]) <= soon for c in load("demo/certificates.json")
    )


def test_the_young_couple_hold_matching_marriage_certificates() -> None:
    marriages = [c for c in load("demo/certificates.json") if c["type"] == "marriage_certificate"]
    pairs = {(c["fields"]["holder_id_number"], c["fields"]["spouse_id_number"]) for c in marriages}
    assert any((b, a) in pairs for a, b in pairs)


# ---- accounts ----------------------------------------------------------------------------


def test_demo_accounts_reference_existing_scopes() -> None:
    accounts = load("demo/accounts.json")
    hall_codes, depts = set(halls()), departments()
    users = accounts["console_users"]
    assert len({u["username"] for u in users}) == len(users)
    roles = {"province", "city", "hall_manager", "agent_supervisor", "department_staff", "window"}
    assert {u["role"] for u in users} == roles
    for u in users:
        assert u["role"] in roles and u["password"] and u["display_name"]
        scope = u["scope"]
        assert len(scope) == 1
        if "region" in scope:
            assert REGION.match(scope["region"])
        elif "halls" in scope:
            assert scope["halls"] and set(scope["halls"]) <= hall_codes
        else:
            assert scope["department"] in depts
    agents = accounts["agents"]
    assert agents and len({a["code"] for a in agents}) == len(agents)
    for a in agents:
        assert a["supervising_office"] in hall_codes
        assert REGION.match(a["region"]) and re.fullmatch(r"1[3-9]\d{9}", a["phone"])
        assert "村" in a["village"] and CJK.search(a["name"])
