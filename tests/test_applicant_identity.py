"""An application's identity comes from the applicant, never from the form."""

from __future__ import annotations

import datetime as dt

from tests.mobile_support import HUANG, LI, SS_CARD, SS_FORM, WANG, prepare, ss_form
from tests.support.miniprogram import MiniProgram, Staff, jpeg_bytes
from yiwang.accounts import issue_staff_token
from yiwang.agents import issue_activation_code
from yiwang.timeutil import local_today


async def _materials(mp: MiniProgram, card: str, path: str = "/uploads", **params: str) -> list[dict]:
    photo = await mp.upload(jpeg_bytes(), path=path, **params)
    return [{"material": "applicant_id_card", "certificate": card}, {"material": "photo", "upload": photo["id"]}]


async def test_a_resident_cannot_file_with_another_persons_name_and_number(services, client, fake_wechat) -> None:
    cards = await prepare(services)
    li = MiniProgram(client, fake_wechat)
    await li.login()
    await li.bind(*LI)
    refs = await _materials(li, cards["李明轩"])
    refused = await li.apply(SS_CARD, ss_form(*WANG), refs, expect=400)
    assert refused["error"]["code"] == "application.applicant_mismatch"
    assert refused["error"]["message"] and set(refused["error"]["fields"]) == {"applicant_name", "id_number"}
    only_number = await li.apply(SS_CARD, {**SS_FORM, "id_number": WANG[1]}, refs, expect=400)
    assert set(only_number["error"]["fields"]) == {"id_number"}
    assert await services.store["applications"].count_documents({}) == 0  # nothing written

    # without the identity fields the server fills them from the binding; staff see Li, never Wang
    form = {k: v for k, v in SS_FORM.items() if k not in ("applicant_name", "id_number")}
    filed = await li.apply(SS_CARD, form, refs, expect=201)
    assert filed["form"]["applicant_name"] == LI[0] and filed["form"]["id_number"] == LI[1]
    staff = Staff(client, await issue_staff_token(services, "gz-hrss", "t"))
    seen = await staff.call("GET", f"/staff/applications/{filed['id']}")
    assert seen["form"]["id_number"] == LI[1] and WANG[1] not in str(seen)


async def test_a_draft_cannot_be_turned_into_someone_elses_application(services, client, fake_wechat) -> None:
    cards = await prepare(services)
    li = MiniProgram(client, fake_wechat)
    await li.login()
    await li.bind(*LI)
    draft = await li.apply(SS_CARD, {"bank": "广州银行"}, [], submit=False, expect=201)
    assert draft["form"]["id_number"] == LI[1]
    await li.call("PUT", f"/applications/{draft['id']}", json={"form": ss_form(*WANG)}, expect=400)
    stored = await li.get(f"/applications/{draft['id']}")
    assert stored["form"]["applicant_name"] == LI[0] and cards


async def test_an_agent_files_only_with_the_authorising_residents_identity(services, client, fake_wechat) -> None:
    cards = await prepare(services, agents=True)
    resident, agent = MiniProgram(client, fake_wechat), MiniProgram(client, fake_wechat)
    await resident.login()
    await resident.bind(*LI)
    await agent.login()
    await agent.bind(*HUANG)
    code = await issue_activation_code(services, "ch-agent-001")
    await agent.post("/me/agent-activation", {"agent": "ch-agent-001", "activation_code": code})
    until = (local_today() + dt.timedelta(days=30)).isoformat()
    grant = await resident.post("/authorisations", {"agent": "ch-agent-001", "items": [SS_CARD], "until": until})
    refs = await _materials(agent, cards["李明轩"], path="/agent/uploads", authorisation=grant["id"])
    refused = await agent.apply(SS_CARD, ss_form(*WANG), refs, path="/agent/applications",
                                authorisation=grant["id"], expect=400)
    assert refused["error"]["code"] == "application.applicant_mismatch"
    assert await services.store["applications"].count_documents({}) == 0
    form = {k: v for k, v in SS_FORM.items() if k not in ("applicant_name", "id_number")}
    filed = await agent.apply(SS_CARD, form, refs, path="/agent/applications", authorisation=grant["id"])
    detail = await agent.get(f"/agent/applications/{filed['id']}")
    assert detail["form"]["applicant_name"] == LI[0] and detail["form"]["id_number"] == LI[1]
