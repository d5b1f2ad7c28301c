"""The wallet on the phone: certificates, display codes, access history, consent
to a kiosk, and the personal and company pages with their reminders."""

from __future__ import annotations

import datetime as dt
import uuid

from tests.fixtures.certs import KIOSK, id_card_body
from tests.mobile_support import LI, WANG, prepare
from tests.support.miniprogram import MiniProgram
from yiwang import certificates, consent, display_codes, people
from yiwang.timeutil import local_today


async def test_holder_lists_opens_shows_and_releases_certificates(services, client, fake_wechat) -> None:
    cards = await prepare(services)
    mp = MiniProgram(client, fake_wechat)
    await mp.login()
    await mp.bind(*LI)
    listed = await mp.get("/certificates")
    assert [c["id"] for c in listed["certificates"]] == [cards["李明轩"]]
    opened = await mp.get(f"/certificates/{cards['李明轩']}")
    assert opened["fields"]["name"] == "李明轩"

    code = await mp.post(f"/certificates/{cards['李明轩']}/display-codes", {"purpose": "社保业务"}, expect=201)
    bad = await mp.post(f"/certificates/{cards['李明轩']}/display-codes", {}, expect=400)
    assert bad["error"]["code"] == "certificate.purpose_required"
    renewed = await mp.post(f"/display-codes/{code['handle']}/renew", expect=201)
    assert renewed["code"] != code["code"]
    await display_codes.redeem_display_code(services, renewed["code"], KIOSK)
    history = await mp.get(f"/certificates/{cards['李明轩']}/access-history")
    assert history["entries"][0]["who"]["label"] == KIOSK.label

    session = await consent.create_consent_session(services, KIOSK, "办理社保卡")
    described = await mp.post("/consent/describe", {"code": session["qr_text"]})
    assert described["purpose"] == "办理社保卡" and len(described["certificates"]) == 1
    released = await mp.post("/consent/release", {"code": session["qr_text"], "certificate_ids": [cards["李明轩"]]})
    assert released["released"] == 1
    await mp.post("/consent/release", {"code": session["qr_text"], "certificate_ids": [cards["李明轩"]]}, expect=409)
    # another holder's certificate cannot be released
    other = await consent.create_consent_session(services, KIOSK, "办理社保卡")
    await mp.post("/consent/release", {"code": other["qr_text"], "certificate_ids": [cards["王静怡"]]}, expect=404)


async def test_personal_and_company_pages_show_expiry_reminders_to_the_right_person(services, client, fake_wechat):
    await prepare(services)
    soon = (local_today() + dt.timedelta(days=20)).isoformat()
    later = (local_today() + dt.timedelta(days=80)).isoformat()
    body = id_card_body(LI[1], LI[0], valid_until=soon)
    await certificates.issue(services, "gz-psb", body, idempotency_key=uuid.uuid4().hex)
    company_index = await people.register_company(
        services.store, services.cipher, "91440106MA5D2K7R9L", "广州穗云信息科技有限公司", LI[1], region="440106"
    )
    licence = {
        "type": "business_licence",
        "holder": {"number": "91440106MA5D2K7R9L", "name": "广州穗云信息科技有限公司"},
        "number": "91440106MA5D2K7R9L",
        "issued_on": "2020-01-02",
        "valid_until": later,
    }
    licence["fields"] = {
        "credit_code": "91440106MA5D2K7R9L",
        "entity_name": "广州穗云信息科技有限公司",
        "entity_type": "有限责任公司（自然人独资）",
        "legal_representative": "李明轩",
        "established_on": "2020-01-02",
        "address": "广州市天河区黄埔大道西123号",
        "business_scope": "软件开发",
        "registration_authority": "广州市天河区市场监督管理局",
    }
    await certificates.issue(services, "gz-amr", licence, idempotency_key=uuid.uuid4().hex)

    li, wang = MiniProgram(client, fake_wechat), MiniProgram(client, fake_wechat)
    await li.login()
    await li.bind(*LI)
    await wang.login()
    await wang.bind(*WANG)
    page = await li.get("/me/page")
    assert "certificate_expiring_30" in [r["kind"] for r in page["reminders"]]
    assert page["account"]["name"] == "李**" and len(page["companies"]) == 1
    company_id = page["companies"][0]["id"]
    company = await li.get(f"/me/companies/{company_id}/page")
    assert company["company"]["name"] == "广州穗云信息科技有限公司"
    assert [r["kind"] for r in company["reminders"]] == ["certificate_expiring_90"]
    await wang.get(f"/me/companies/{company_id}/page", expect=404)  # not her company
    assert company_index
