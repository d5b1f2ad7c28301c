"""How the mobile API shows things (pure shaping), and the little glue between
the catalogue, the certificate library and the pages."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from yiwang import agents, catalog, certificates, evaluations, reminders
from yiwang.accounts import Principal, account, account_view
from yiwang.applications import Applicant
from yiwang.catalog import CatalogSnapshot, HotLists, hot_items, plan_scenario, region_name
from yiwang.catalog import item_summary as catalog_item_summary
from yiwang.errors import InvalidInput, NotFound
from yiwang.runtime import Services
from yiwang.versioned import Rendered

CHANNEL_LABELS = {"kiosk": "自助终端", "mobile": "小程序", "window": "窗口"}


async def hot_list(services: Services, limit: int) -> Rendered:
    """``{"items": [...]}`` of the hot items for the phone, serialised once per HOT_CACHE_SECONDS and catalogue
    version (the ranking reads 30 days of maintained counts; :class:`yiwang.catalog.HotLists`)."""
    await services.catalog.snapshot()

    async def build() -> Rendered:
        ranked = await hot_items(services.store, services.catalog, channel="mobile", limit=limit)
        return Rendered.of({"items": [item_summary(i) for i in ranked]})

    return await services.resources.get(HotLists).get(("mobile", limit), services.catalog.version, build)


async def item_rendered(services: Services, code: str) -> Rendered:
    """One item's detail for the phone, serialised once per catalogue version."""

    def build(snap: CatalogSnapshot) -> dict[str, Any]:
        item = snap.items.get(code)
        if item is None:
            raise NotFound("catalog.item_not_found", "找不到该事项")
        return item_detail(item, snap)

    return await services.catalog.rendered(("mobile_item", code), build)


async def scenarios_rendered(services: Services) -> Rendered:
    return await services.catalog.rendered(
        "mobile_scenarios", lambda snap: {"scenarios": [scenario_summary(s) for s in snap.scenarios.values()]}
    )


async def scenario_rendered(services: Services, code: str) -> Rendered:
    def build(snap: CatalogSnapshot) -> dict[str, Any]:
        scenario = snap.scenarios.get(code)
        if scenario is None:
            raise NotFound("catalog.scenario_not_found", "找不到该场景")
        return scenario_detail(scenario)

    return await services.catalog.rendered(("mobile_scenario", code), build)


def item_summary(item: Mapping[str, Any]) -> dict[str, Any]:
    summary = catalog_item_summary(item)
    summary["online"] = bool(item.get("form_schema")) and "mobile" in item.get("channels", [])
    return summary


def item_detail(item: Mapping[str, Any], snap: CatalogSnapshot) -> dict[str, Any]:
    dept = snap.departments.get(item["department"], {})
    halls = []
    for hall in snap.halls.values():
        windows = [w["number"] for w in hall.get("windows", []) if item["code"] in w.get("items", [])]
        if windows:
            halls.append(
                {"code": hall["code"], "name": hall["name"], "address": hall.get("address", ""), "windows": windows}
            )
    return {
        **item_summary(item),
        "department_name": dept.get("name", item["department"]),
        "conditions": list(item.get("conditions", [])),
        "materials": [
            {
                "id": m["id"],
                "name": m["name"],
                "form": m.get("form", "original"),
                "copies": int(m.get("copies", 1)),
                "required": bool(m.get("required", True)),
                "note": m.get("note", ""),
                "certificate_type": m.get("certificate_type"),
            }
            for m in item.get("materials", [])
        ],
        "form_schema": item.get("form_schema"),
        "result_certificate_type": item.get("result_certificate_type"),
        "where_else": {
            "channels": [{"code": c, "name": CHANNEL_LABELS.get(c, c)} for c in item.get("channels", [])],
            "halls": halls,
        },
        "local_implementations": [
            {
                "city": city,
                "city_name": region_name(city),
                "promised_days": int(local.get("promised_days", item.get("promised_days", 0))),
                "fee": local.get("fee"),
                "note": local.get("note", ""),
            }
            for city, local in sorted((item.get("local") or {}).items())
        ],
    }


def scenario_summary(scenario: Mapping[str, Any]) -> dict[str, Any]:
    return {k: scenario.get(k) for k in ("code", "name", "life_event", "icon", "summary")}


def scenario_detail(scenario: Mapping[str, Any]) -> dict[str, Any]:
    return {
        **scenario_summary(scenario),
        "questions": [
            {
                "id": q["id"],
                "text": q["text"],
                "options": [{"value": o["value"], "label": o["label"]} for o in q["options"]],
                "ask_if": {k: list(v) for k, v in catalog.ask_if_values(q).items()},  # asked only when these hold
            }
            for q in scenario["questions"]
        ],
        "notes": list(scenario.get("notes", [])),
    }


async def held_types(services: Services, person_index: str) -> list[str]:
    certs = await certificates.list_for_holder(services.store, person_index)
    return sorted({c["type"]["code"] for c in certs if c["status"] == "valid"})


async def plan(services: Services, code: str, answers: Any, held: list[str]) -> dict[str, Any]:

    scenario = await services.catalog.scenario(code)
    if not isinstance(answers, dict):
        raise InvalidInput("scenario.answers_invalid", "请完整回答所有问题", fields={"answers": "必须是对象"})
    snap = await services.catalog.snapshot()
    result = plan_scenario(scenario, answers, snap.items, held_certificate_types=held)
    out = dataclasses.asdict(result)
    for item in out["items"]:
        item["channels"] = list(item["channels"])
        item["windows"] = list(item["windows"])
        item["online"] = "mobile" in item["channels"] and bool(snap.items[item["code"]].get("form_schema"))
        item["materials"] = list(item["materials"])
    out["items"] = list(out["items"])
    out["notes"] = list(out["notes"])
    out["answers"] = dict(out["answers"])
    return out


def certificate_detail(view: Mapping[str, Any]) -> dict[str, Any]:
    return dict(view)


def evaluation_options() -> dict[str, Any]:
    return {
        "levels": [{"value": k, "label": v} for k, v in evaluations.LEVELS.items()],
        "indicators": [{"id": k, "label": v} for k, v in evaluations.INDICATORS.items()],
        "reasons": list(evaluations.REASONS),
    }


async def personal_page(services: Services, principal: Principal, person_index: str) -> dict[str, Any]:
    me = account_view(await account(services, principal.account_id))
    return await reminders.personal_page(services, me, person_index)


async def company_page(services: Services, person_index: str, company_id: str) -> dict[str, Any]:
    return await reminders.company_page(services, person_index, company_id)


async def agent_queue(services: Services, agent_doc: dict[str, Any]) -> dict[str, Any]:
    return await agents.queue(services, agent_doc)


async def agent_applicant(services: Services, agent_doc: dict[str, Any], authorisation: Any, item: Any) -> Applicant:
    applicant: Applicant = await agents.applicant_for(services, agent_doc, authorisation, item)
    return applicant


async def agent_application(services: Services, agent_doc: dict[str, Any], application_id: str) -> dict[str, Any]:
    return await agents.agent_application(services, agent_doc, application_id)
