"""Shared set-up for the mobile API tests: a few residents and certificates
inserted directly (faster than the whole demo load), the catalogue, agents."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

from tests.conftest import ROOT
from tests.fixtures.certs import id_card_body
from yiwang import certificates, people
from yiwang.agents import load_demo_agents
from yiwang.catalog import bump_version
from yiwang.runtime import Services

LI = ("李明轩", "440106199406183318")
WANG = ("王静怡", "44030519960209048X")
HUANG = ("黄志强", "440117197810050197")
SS_CARD = "002008101001"
DATA = ROOT / "data"
SS_FORM = {
    "applicant_name": "李明轩",
    "id_number": "440106199406183318",
    "phone": "13800138003",
    "bank": "广州银行",
    "collect_method": "邮寄到家",
    "mailing_address": "广州市天河区黄埔大道西123号",
}


def ss_form(name: str, number: str) -> dict[str, Any]:
    return {**SS_FORM, "applicant_name": name, "id_number": number}


NEEDED_ITEMS = ("002008101001", "002008101002", "002008101003", "002001302000", "002001101000")


async def load_some_catalog(services: Services) -> None:
    """The few items and the one scenario these tests use (the whole catalogue takes seconds)."""
    items = {i["code"]: i for i in json.loads((DATA / "items.json").read_text(encoding="utf-8"))}
    for code in NEEDED_ITEMS:
        await services.store["items"].insert_one({"_id": code, **items[code], "version": 1})
    for scenario in json.loads((DATA / "scenarios.json").read_text(encoding="utf-8")):
        if scenario["code"] == "ss_card":
            await services.store["scenarios"].insert_one({"_id": scenario["code"], **scenario})
    for dept in json.loads((DATA / "departments.json").read_text(encoding="utf-8")):
        if dept["code"] in ("gz-hrss", "gz-psb"):
            await services.store["departments"].insert_one({"_id": dept["code"], **dept})
    await bump_version(services.store)
    services.catalog.invalidate()


async def prepare(services: Services, *, agents: bool = False) -> dict[str, str]:
    """Catalogue + three residents; Li and Wang hold an e-ID card. Returns {name: id-card certificate id}."""
    await load_some_catalog(services)
    cards: dict[str, str] = {}
    for name, number in (LI, WANG, HUANG):
        await people.register_resident(services.store, services.cipher, number, name, demo=True)
    for name, number in (LI, WANG):
        result = await certificates.issue(
            services, "gz-psb", id_card_body(number, name), idempotency_key=uuid.uuid4().hex
        )
        cards[name] = result.certificate["_id"]
    if agents:
        await load_demo_agents(services)
    return cards


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for a background effect (the notification sender) without a fixed sleep."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def social_security_card_fields(name: str, number: str) -> dict[str, Any]:
    return {
        "number": "A12345678",
        "issued_on": "2026-11-20",
        "holder_name": name,
        "fields": {
            "name": name,
            "social_security_number": number,
            "card_number": "A12345678",
            "card_generation": "第三代",
            "bank": "广州银行",
            "issue_date": "2026-11-20",
            "issuing_region": "广州市",
        },
    }
