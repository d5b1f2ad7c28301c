"""Residents' free text passes WeChat's msgSecCheck v2: risky text is refused with a plain
message and nothing stored; text sent for review is stored and flagged; a WeChat outage
never loses a complaint."""

from __future__ import annotations

import pytest

from tests.mobile_support import LI, SS_CARD, prepare, ss_form
from tests.support.miniprogram import MiniProgram, Staff, jpeg_bytes
from yiwang.accounts import issue_staff_token


@pytest.fixture
async def resident(services, client, fake_wechat):
    await prepare(services)
    mp = MiniProgram(client, fake_wechat)
    await mp.login()
    await mp.bind(*LI)
    return mp


def complaint(text: str) -> dict[str, str]:
    return {"kind": "complaint", "subject": "窗口服务", "content": text}


async def test_a_risky_complaint_is_refused_and_nothing_is_stored(services, resident, fake_wechat) -> None:
    refused = await resident.post("/complaints", complaint("工作人员说了违禁词，态度很差"), expect=400)
    assert refused["error"]["code"] == "content.refused" and "不当信息" in refused["error"]["message"]
    assert "content" in refused["error"]["fields"]
    assert await services.store["complaints"].count_documents({}) == 0
    [checked] = fake_wechat.checked_texts
    assert checked["version"] == 2 and checked["scene"] == 3 and checked["openid"] == resident.openid


async def test_text_for_review_is_stored_flagged_and_clean_text_passes(services, resident) -> None:
    await resident.post("/complaints", complaint("上午排队两个小时，含待审词"), expect=201)
    await resident.post("/complaints", complaint("上午在天河区政务中心排队两个小时"), expect=201)
    flags = sorted([c["content_check"] async for c in services.store["complaints"].find({})])
    assert flags == ["pass", "review"]


async def test_a_wechat_outage_never_loses_a_complaint(services, resident, fake_wechat) -> None:
    fake_wechat.fail_next("/wxa/msg_sec_check", -1)
    filed = await resident.post("/complaints", complaint("上午在天河区政务中心排队两个小时"), expect=201)
    stored = await services.store["complaints"].find_one({"_id": filed["id"]})
    assert stored is not None and stored["content_check"] == "unchecked"


async def test_a_forms_free_text_is_checked_risky_refused_and_review_flagged_for_staff(
    services, client, fake_wechat
) -> None:
    cards = await prepare(services)
    mp = MiniProgram(client, fake_wechat)
    await mp.login()
    await mp.bind(*LI)
    photo = await mp.upload(jpeg_bytes())
    refs = [
        {"material": "applicant_id_card", "certificate": cards["李明轩"]},
        {"material": "photo", "upload": photo["id"]},
    ]
    risky = {**ss_form(*LI), "mailing_address": "广州市天河区违禁词路1号"}
    refused = await mp.apply(SS_CARD, risky, refs, expect=400)
    assert refused["error"]["code"] == "content.refused" and "mailing_address" in refused["error"]["fields"]
    assert await services.store["applications"].count_documents({}) == 0  # nothing written
    assert fake_wechat.checked_texts[-1]["scene"] == 1 and "违禁词" in fake_wechat.checked_texts[-1]["content"]
    # The choice fields (bank, collect method) and the identity are values, not text: only the address is sent.
    assert "广州银行" not in fake_wechat.checked_texts[-1]["content"]

    doubtful = {**ss_form(*LI), "mailing_address": "广州市天河区含待审词路1号"}
    filed = await mp.apply(SS_CARD, doubtful, refs, expect=201)
    assert "content_check" not in filed  # the resident's own view has no such flag
    staff = Staff(client, await issue_staff_token(services, "gz-hrss", "t"))
    seen = await staff.call("GET", f"/staff/applications/{filed['id']}")
    assert seen["content_check"] == "review"
