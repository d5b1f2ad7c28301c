"""Editing life-event scenarios (场景式导航) from the console.

A scenario asks a few questions; its **rules** turn the answers into the
ordered checklist of items (``catalog.plan_scenario``). Editing follows the
catalogue's pattern (``catalog_admin``):

- ``save_draft`` keeps a validated draft in ``scenario_drafts`` (the live
  scenario is untouched); ``preview`` plans the draft for chosen answers.
- ``publish`` writes the draft into ``scenarios`` (marked ``edited`` so the
  seed never overwrites it), claims version n+1 conditionally (two editors
  cannot both win), snapshots it in ``scenario_versions`` (``<code>:<n>``)
  and bumps the catalogue version so kiosks and the mini-program show it
  within a second. The first publish also keeps the seeded text as version 1.
- ``rollback(k)`` publishes version k's fields again as a new version.

Validation refuses, field by field and before anything is written: unknown
item codes, conditions on unknown questions or options, duplicate ids, and a
scenario where some combination of answers yields an empty checklist.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pymongo import ReturnDocument

from yiwang.catalog import Plan, answer_combinations, bump_version, plan_scenario
from yiwang.errors import Conflict, InvalidInput, NotFound
from yiwang.store import Document, Store
from yiwang.timeutil import utcnow

FIELDS = ("name", "summary", "notes", "questions", "rules")
MAX_QUESTIONS = 8
MAX_OPTIONS = 6
MAX_RULES = 40
MAX_RULE_ITEMS = 20
MAX_NOTES = 20
MAX_COMBINATIONS = 64  # the kiosk pre-caches every combination's checklist for offline use
_CODE = re.compile(r"^[a-z_]{1,40}$")
_QID = re.compile(r"^[a-z][a-z0-9_]{0,29}$")
_VALUE = re.compile(r"^[a-z0-9_]{1,20}$")


def _text(value: Any, field: str, limit: int, problems: dict[str, str], *, required: bool = True) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        problems[field] = "格式不正确"
        return ""
    clean = value.strip()
    if required and not clean:
        problems[field] = "必填"
    elif len(clean) > limit:
        problems[field] = f"不超过 {limit} 字"
    return clean


def _blank_question(q: Mapping[str, Any]) -> bool:
    options = q.get("options") or []
    return not str(q.get("id") or "").strip() and not str(q.get("text") or "").strip() and not any(
        str(o.get("value") or "").strip() or str(o.get("label") or "").strip()
        for o in options
        if isinstance(o, Mapping)
    )


def _questions(raw: Any, problems: dict[str, str]) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not all(isinstance(q, Mapping) for q in raw):
        problems["questions"] = "问题格式不正确"
        return []
    questions: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, q in enumerate(raw):
        if _blank_question(q):
            continue
        qid = str(q.get("id") or "").strip()
        if not _QID.match(qid):
            problems[f"questions.{i}.id"] = "问题编号须以小写字母开头，只含小写字母、数字和下划线（不超过 30 位）"
        elif qid in seen:
            problems[f"questions.{i}.id"] = f"问题编号 {qid} 重复"
        seen.add(qid)
        text = _text(q.get("text"), f"questions.{i}.text", 100, problems)
        options: list[dict[str, str]] = []
        values: set[str] = set()
        raw_options = q.get("options")
        if not isinstance(raw_options, list):
            raw_options = []
        for j, o in enumerate(raw_options):
            if not isinstance(o, Mapping):
                problems[f"questions.{i}.options.{j}"] = "选项格式不正确"
                continue
            value, label = str(o.get("value") or "").strip(), str(o.get("label") or "").strip()
            if not value and not label:
                continue
            if not _VALUE.match(value):
                problems[f"questions.{i}.options.{j}.value"] = "选项值只含小写字母、数字和下划线（不超过 20 位）"
            elif value in values:
                problems[f"questions.{i}.options.{j}.value"] = f"选项值 {value} 重复"
            values.add(value)
            if not label or len(label) > 20:
                problems[f"questions.{i}.options.{j}.label"] = "请填写选项文字（不超过 20 字）"
            options.append({"value": value, "label": label})
        if not 2 <= len(options) <= MAX_OPTIONS:
            problems[f"questions.{i}.options"] = f"每个问题须有 2–{MAX_OPTIONS} 个选项"
        entry: dict[str, Any] = {"id": qid, "text": text, "options": options, "_index": i}
        ask_if = _ask_if(q.get("ask_if"), questions, f"questions.{i}.ask_if", problems)
        if ask_if:
            entry["ask_if"] = ask_if
        questions.append(entry)
    if len(questions) > MAX_QUESTIONS:
        problems["questions"] = f"问题不能超过 {MAX_QUESTIONS} 个"
    return questions


def parse_ask_if(text: str) -> dict[str, list[str]]:
    """The editor's text form ``situation=startup,job; direction=in`` → ``{qid: [values]}``."""
    result: dict[str, list[str]] = {}
    for part in text.replace("；", ";").split(";"):
        qid, _, values = part.partition("=")
        picked = [v.strip() for v in values.replace("，", ",").replace("|", ",").split(",") if v.strip()]
        if qid.strip() or picked:
            result.setdefault(qid.strip(), []).extend(picked)
    return result


def ask_if_text(ask_if: Mapping[str, Any] | None) -> str:
    parts = []
    for qid, values in (ask_if or {}).items():
        parts.append(f"{qid}=" + ",".join([values] if isinstance(values, str) else values))
    return "; ".join(parts)


def _ask_if(
    raw: Any, earlier: Sequence[Mapping[str, Any]], field: str, problems: dict[str, str]
) -> dict[str, list[str]]:
    """When a question is asked: conditions on *earlier* questions' answers only."""
    if not raw:
        return {}
    if isinstance(raw, str):
        raw = parse_ask_if(raw)
    if not isinstance(raw, Mapping):
        problems[field] = "提问条件格式不正确"
        return {}
    options = {q["id"]: {o["value"] for o in q["options"]} for q in earlier}
    by_id = {q["id"]: q for q in earlier}
    clean: dict[str, list[str]] = {}
    wrong: list[str] = []
    for qid, values in raw.items():
        listed = [values] if isinstance(values, str) else list(values) if isinstance(values, list) else None
        if listed is None or not listed:
            wrong.append(f"问题 {qid} 请写出回答")
            continue
        if qid not in options:
            wrong.append(f"只能依据前面的问题提问（没有前面的问题 {qid}）")
            continue
        bad = [str(v) for v in listed if str(v) not in options[qid]]
        if bad:
            wrong.append(f"问题 {qid} 没有选项 " + "、".join(bad))
            continue
        chosen = {str(v) for v in listed}
        clean[str(qid)] = [o["value"] for o in by_id[qid]["options"] if o["value"] in chosen]
    if wrong:
        problems[field] = "；".join(wrong)
    return clean


def _rules(
    raw: Any, questions: Sequence[Mapping[str, Any]], item_codes: set[str], problems: dict[str, str]
) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not all(isinstance(r, Mapping) for r in raw):
        problems["rules"] = "规则格式不正确"
        return []
    options = {q["id"]: {o["value"]: o["label"] for o in q["options"]} for q in questions}
    rules: list[dict[str, Any]] = []
    for i, rule in enumerate(raw):
        when = rule.get("when") or {}
        items = rule.get("items") or []
        if not isinstance(when, Mapping) or not isinstance(items, list):
            problems[f"rules.{i}"] = "规则格式不正确"
            continue
        when = {str(k): str(v) for k, v in when.items() if str(v or "").strip()}
        codes = [str(c).strip() for c in items if str(c or "").strip()]
        if not when and not codes:
            continue  # an empty row of the form
        wrong: list[str] = []
        for qid, value in when.items():
            if qid not in options:
                wrong.append(f"没有问题 {qid}")
            elif value not in options[qid]:
                wrong.append(f"问题 {qid} 没有选项 {value}")
        if wrong:
            problems[f"rules.{i}.when"] = "；".join(wrong)
        unknown = [c for c in codes if c not in item_codes]
        if unknown:
            problems[f"rules.{i}.items"] = "事项目录中没有：" + "、".join(unknown[:5])
        elif not codes:
            problems[f"rules.{i}.items"] = "请至少选择一个事项"
        elif len(codes) > MAX_RULE_ITEMS:
            problems[f"rules.{i}.items"] = f"每条规则不超过 {MAX_RULE_ITEMS} 个事项"
        elif len(set(codes)) != len(codes):
            problems[f"rules.{i}.items"] = "同一规则中事项重复"
        rules.append({"when": when, "items": codes})
    if not rules and "rules" not in problems:
        problems["rules"] = "请至少填写一条规则"
    if len(rules) > MAX_RULES:
        problems["rules"] = f"规则不能超过 {MAX_RULES} 条"
    return rules


def combinations(questions: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Every way of answering the questions (one option for each question asked)."""
    return answer_combinations(questions)


def _answer_text(questions: Sequence[Mapping[str, Any]], answers: Mapping[str, str]) -> str:
    parts = []
    for q in questions:
        if q["id"] not in answers:
            continue
        label = next((o["label"] for o in q["options"] if o["value"] == answers.get(q["id"])), "")
        parts.append(f"{q['text']}「{label}」")
    return "，".join(parts) or "（无问题）"


def validate_scenario(
    raw: Mapping[str, Any], items: Mapping[str, Mapping[str, Any]], *, code: str = ""
) -> dict[str, Any]:
    """Validate every editable field at once; raises with all problems, field by field."""
    problems: dict[str, str] = {}
    name = _text(raw.get("name"), "name", 30, problems)
    summary = _text(raw.get("summary"), "summary", 200, problems, required=False)
    notes_raw = raw.get("notes") or []
    if isinstance(notes_raw, str):
        notes_raw = notes_raw.splitlines()
    if not isinstance(notes_raw, list) or not all(isinstance(n, str) for n in notes_raw):
        problems["notes"] = "格式不正确"
        notes_raw = []
    notes = [n.strip() for n in notes_raw if n.strip()]
    if len(notes) > MAX_NOTES or any(len(n) > 200 for n in notes):
        problems["notes"] = f"最多 {MAX_NOTES} 条，每条不超过 200 字"
    questions = _questions(raw.get("questions"), problems)
    rules = _rules(raw.get("rules"), questions, set(items), problems)
    count = 1
    for q in questions:
        count *= max(1, len(q["options"]))
    if count <= 4096 and not any(k.startswith("questions") for k in problems):
        count = len(combinations(questions))  # questions asked only after some answers count less
    if count > MAX_COMBINATIONS and "questions" not in problems:
        problems["questions"] = f"问题和选项的组合太多（{count} 种，最多 {MAX_COMBINATIONS} 种），请减少问题或选项"
    if not problems:
        candidate = {"code": code, "name": name, "questions": questions, "rules": rules}
        empty = [a for a in combinations(questions) if not plan_scenario(candidate, a, items).items]
        if empty:
            shown = "；".join(_answer_text(questions, a) for a in empty[:3])
            more = f" 等 {len(empty)} 种回答" if len(empty) > 3 else ""
            problems["rules"] = f"以下回答得不到任何事项，请补充规则：{shown}{more}"
    if problems:
        raise InvalidInput("scenario.invalid", "场景填写有误", fields=problems)
    for q in questions:
        q.pop("_index", None)
    return {"name": name, "summary": summary, "notes": notes, "questions": questions, "rules": rules}


# ---- reading ----------------------------------------------------------------------


def fields_of(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The editable fields of a scenario document or version."""
    return {
        "name": doc.get("name", ""),
        "summary": doc.get("summary", ""),
        "notes": list(doc.get("notes", [])),
        "questions": list(doc.get("questions", [])),
        "rules": list(doc.get("rules", [])),
    }


async def get_scenario(store: Store, code: str) -> Document:
    doc = await store["scenarios"].find_one({"_id": code}) if isinstance(code, str) and _CODE.match(code) else None
    if doc is None:
        raise NotFound("catalog.scenario_not_found", "找不到该场景")
    return doc


async def list_scenarios(store: Store) -> list[Document]:
    """Every scenario with ``has_draft`` set, by code."""
    drafts = {d["_id"] async for d in store["scenario_drafts"].find({}, {"_id": 1})}
    return [{**s, "has_draft": s["_id"] in drafts} async for s in store["scenarios"].find({}, sort=[("_id", 1)])]


@dataclass(frozen=True)
class Editing:
    """What the editor shows: the draft if there is one, else the live fields."""

    scenario: Document
    fields: dict[str, Any]
    draft: Document | None


async def editing(store: Store, code: str) -> Editing:
    scenario = await get_scenario(store, code)
    draft = await store["scenario_drafts"].find_one({"_id": code})
    return Editing(scenario, dict(draft["fields"]) if draft else fields_of(scenario), draft)


async def versions(store: Store, code: str, limit: int = 50) -> list[Document]:
    cursor = store["scenario_versions"].find({"code": code}, sort=[("version", -1)], limit=limit)
    return [v async for v in cursor]


def preview(
    scenario: Mapping[str, Any],
    fields: Mapping[str, Any],
    answers: Mapping[str, Any],
    items: Mapping[str, Mapping[str, Any]],
    *,
    hall: Mapping[str, Any] | None = None,
) -> Plan:
    """The checklist the kiosk would show for these answers if ``fields`` were live."""
    candidate = {**scenario, **fields, "code": scenario["_id"]}
    return plan_scenario(candidate, answers, items, hall=hall)


async def _items(store: Store) -> dict[str, Document]:
    return {d["_id"]: d async for d in store["items"].find({})}


# ---- writing ----------------------------------------------------------------------


async def save_draft(store: Store, code: str, raw: Mapping[str, Any], *, by: str) -> tuple[dict[str, Any], Document]:
    """Validate and keep a draft; the live scenario is untouched. Returns (fields before, draft)."""
    current = await editing(store, code)
    clean = validate_scenario(raw, await _items(store), code=code)
    draft: Document = {
        "_id": code, "fields": clean, "base_version": int(current.scenario.get("version", 1)),
        "updated_at": utcnow(), "updated_by": by,
    }  # fmt: skip
    await store["scenario_drafts"].replace_one({"_id": code}, draft, upsert=True)
    return current.fields, draft


async def discard_draft(store: Store, code: str) -> None:
    await store["scenario_drafts"].delete_one({"_id": code})


async def _publish_fields(
    store: Store, before: Document, fields: Mapping[str, Any], *, by: str, note: str
) -> Document:
    clean = validate_scenario(fields, await _items(store), code=before["_id"])  # items may have gone since
    code = before["_id"]
    version = int(before.get("version", 1)) + 1
    now = utcnow()
    after = await store["scenarios"].find_one_and_update(
        {"_id": code, "version": before.get("version")},  # None also matches "never edited"
        {"$set": {**clean, "version": version, "edited": True, "updated_at": now, "updated_by": by}},
        return_document=ReturnDocument.AFTER,
    )
    if after is None:
        raise Conflict("scenario.changed", "场景已被他人修改，请刷新后再试")
    if before.get("version") is None:  # keep what the seed said, so it can be restored
        await store["scenario_versions"].update_one(
            {"_id": f"{code}:1"},
            {"$setOnInsert": {"code": code, "version": 1, "fields": fields_of(before), "note": "seed",
                              "at": now, "by": "seed"}},
            upsert=True,
        )
    await store["scenario_versions"].insert_one(
        {"_id": f"{code}:{version}", "code": code, "version": version, "fields": clean, "note": note,
         "at": now, "by": by}
    )  # fmt: skip
    await store["scenario_drafts"].delete_one({"_id": code})
    await bump_version(store)
    return after


async def publish(store: Store, code: str, *, by: str) -> tuple[Document, Document]:
    """Publish the draft as a new version; returns (before, after)."""
    before = await get_scenario(store, code)
    draft = await store["scenario_drafts"].find_one({"_id": code})
    if draft is None:
        raise Conflict("scenario.no_draft", "没有待发布的草稿，请先保存草稿")
    if int(draft.get("base_version", 1)) != int(before.get("version", 1)):
        raise Conflict("scenario.draft_outdated", "草稿保存后场景已发布过新版本，请核对后重新保存草稿再发布")
    return before, await _publish_fields(store, before, draft["fields"], by=by, note="publish")


async def rollback(store: Store, code: str, to_version: int, *, by: str) -> tuple[Document, Document]:
    """Publish the fields of an earlier version again, as a new version (drops any draft)."""
    before = await get_scenario(store, code)
    old = await store["scenario_versions"].find_one({"_id": f"{code}:{int(to_version)}"})
    if old is None:
        raise NotFound("scenario.version_not_found", "找不到该历史版本")
    return before, await _publish_fields(store, before, old["fields"], by=by, note=f"rollback to {to_version}")
