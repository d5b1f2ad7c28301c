"""The whole mini-program journey against the running server and the fake WeChat API."""

from __future__ import annotations

import uuid

from tests.mobile_support import LI, SS_CARD, eventually, prepare, social_security_card_fields, ss_form
from tests.support.miniprogram import MiniProgram, Staff, jpeg_bytes
from yiwang import console_accounts
from yiwang.notifications import TEMPLATES


async def test_resident_goes_from_login_to_a_new_certificate_and_a_rating(services, client, fake_wechat) -> None:
    cards = await prepare(services)
    mp = MiniProgram(client, fake_wechat)

    login = await mp.login()
    assert login["account"]["level"] == 1 and not login["account"]["real_name_bound"]
    bound = await mp.bind(*LI)
    assert bound["level"] == 3 and bound["id_number"] == "440106********3318" and bound["name"] == "李**"

    found = await mp.get("/items", q="社宝卡")  # homophone typo
    assert SS_CARD in [i["code"] for i in found["items"]]
    detail = await mp.get(f"/items/{SS_CARD}")
    assert detail["online"] and detail["form_schema"]["title"] == "社会保障卡申领"
    assert detail["legal_days"] == 20 and detail["conditions"]

    plan = await mp.post("/scenarios/ss_card/plan", {"answers": {"situation": "first", "newborn": "no"}})
    materials = {m["id"]: m for m in plan["items"][0]["materials"]}
    assert plan["items"][0]["code"] == SS_CARD
    assert materials["applicant_id_card"]["no_need_to_bring"] is True  # 免提交: in the wallet
    assert materials["photo"]["no_need_to_bring"] is False

    await mp.subscribe(TEMPLATES["application_status"], TEMPLATES["application_status"])
    photo = await mp.upload(jpeg_bytes(exif=True))
    assert photo["content_type"] == "image/jpeg" and photo["thumbnail"]

    key = uuid.uuid4().hex
    refs = [
        {"material": "applicant_id_card", "certificate": cards["李明轩"]},
        {"material": "photo", "upload": photo["id"]},
    ]
    app = await mp.apply(SS_CARD, ss_form(*LI), refs, key=key, expect=201)
    again = await mp.apply(SS_CARD, ss_form(*LI), refs, key=key, expect=200)  # a retried submit
    assert again["id"] == app["id"] and app["status"] == "submitted"
    assert len((await mp.get("/applications"))["applications"]) == 1

    await console_accounts.create_user(  # staff sign in with their console account
        services.store, services.offload, username="gz_hrss_staff", password="demo-only-HRSS#2026",
        role="department_staff", scope={"department": "gz-hrss"},
    )
    staff_login = await mp.post("/staff/session", {"username": "gz_hrss_staff", "password": "demo-only-HRSS#2026"})
    staff = Staff(client, staff_login["token"])
    accepted = await staff.act(app["id"], "accept", note="材料齐全，予以受理")
    assert accepted["status"] == "accepted"
    await eventually(lambda: len(fake_wechat.sent_messages) >= 2)  # submitted, then accepted
    assert fake_wechat.sent_messages[0]["data"]["phrase2"]["value"] == "已提交"
    message = fake_wechat.sent_messages[1]
    assert message["touser"] == mp.openid and message["template_id"] == TEMPLATES["application_status"]
    assert message["data"]["phrase2"]["value"] == "已受理"

    mine = await mp.get(f"/applications/{app['id']}")
    assert mine["deadline"]["date"] and mine["deadline"]["working_days_left"] is not None
    assert [h["status"] for h in mine["history"]] == ["submitted", "accepted"]
    assert mine["history"][1]["by"]["kind"] == "department"

    await staff.act(app["id"], "approve", note="准予")
    delivered = await staff.act(
        app["id"], "deliver", method="certificate", certificate=social_security_card_fields(*LI)
    )
    assert delivered["status"] == "delivered" and delivered["result"]["certificate_id"]

    wallet = await mp.get("/certificates")
    assert delivered["result"]["certificate_id"] in [c["id"] for c in wallet["certificates"]]
    page = await mp.get("/me/page")
    assert any(r["kind"] == "evaluation_due" for r in page["reminders"])

    rating = await mp.post(
        f"/applications/{app['id']}/evaluation",
        {
            "level": 5,
            "indicators": dict.fromkeys(["overall", "efficiency", "guide_accuracy", "convenience", "usability"], 5),
        },
        expect=201,
    )
    assert rating["level_label"] == "非常满意" and rating["rectification"] is None
    await mp.post(f"/applications/{app['id']}/evaluation", {"level": 4, "indicators": {}}, expect=400)
