"""Uploads, forms, drafts, 补正, transitions, notifications, evaluations, complaints."""

from __future__ import annotations

import datetime as dt
import io
import uuid

import pytest
from PIL import Image

from tests.mobile_support import LI, SS_CARD, eventually, prepare, ss_form
from tests.support.miniprogram import MiniProgram, Staff, jpeg_bytes
from yiwang import notifications, uploads
from yiwang.accounts import issue_staff_token
from yiwang.evaluations import send_due_invitations
from yiwang.notifications import TEMPLATES, send_due


def _pdf() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (200, 280), "white").save(out, "PDF")  # a one-page scan
    return out.getvalue()


PDF = _pdf()


@pytest.fixture
async def resident(services, client, fake_wechat):
    cards = await prepare(services)
    mp = MiniProgram(client, fake_wechat)
    await mp.login()
    await mp.bind(*LI)
    mp.cards = cards  # type: ignore[attr-defined]
    return mp


async def _submitted(mp: MiniProgram) -> dict:
    photo = await mp.upload(jpeg_bytes())
    refs = [
        {"material": "applicant_id_card", "certificate": mp.cards["李明轩"]},  # type: ignore[attr-defined]
        {"material": "photo", "upload": photo["id"]},
    ]
    return await mp.apply(SS_CARD, ss_form(*LI), refs, expect=201)


async def test_uploads_are_sniffed_reencoded_without_exif_and_bombs_refused(services, resident) -> None:
    photo = await resident.upload(jpeg_bytes(exif=True), filename="innocent.pdf")
    assert photo["content_type"] == "image/jpeg" and photo["width"] == 600
    _, data = await uploads.read_upload(services, resident_index(services), uploads_actor(), photo["id"])
    with Image.open(io.BytesIO(data)) as image:
        assert not image.getexif() and "exif" not in image.info
    status, body, response = await resident.client.get(
        f"/api/mobile/v1/uploads/{photo['id']}", params={"thumbnail": "1"}, headers=resident.headers
    )
    assert status == 200 and response.content_type == "image/jpeg"
    with Image.open(io.BytesIO(body)) as thumb:
        assert max(thumb.size) == uploads.THUMB_SIDE
    pdf = await resident.upload(PDF, filename="scan.jpg")
    assert pdf["content_type"] == "application/pdf"
    bad = await resident.upload(b"MZ\x90\x00 not an image", filename="photo.jpg", expect=400)
    assert bad["error"]["code"] == "upload.unsupported_type"
    broken = await resident.upload(jpeg_bytes()[:200], expect=400)
    assert broken["error"]["code"] == "upload.corrupt"
    bomb = io.BytesIO()
    Image.new("1", (9000, 9000)).save(bomb, "PNG")  # 81 Mpx in a few kB
    refused = await resident.upload(bomb.getvalue(), expect=400)
    assert refused["error"]["code"] == "upload.too_many_pixels"
    await resident.upload(b"\xff\xd8\xff" + b"0" * (uploads.MAX_BYTES + 1), expect=413)
    assert await services.store["uploads"].count_documents({}) == 2  # nothing half-written


def resident_index(services) -> str:
    from tests.fixtures.certs import holder_index

    return holder_index(services)


def uploads_actor():
    from yiwang.audit import SYSTEM

    return SYSTEM


async def test_form_errors_are_reported_per_field_and_nothing_is_written(services, resident) -> None:
    bad = {**ss_form(*LI), "phone": "12345", "bank": "火星银行", "extra": "x"}
    del bad["collect_method"]
    body = await resident.apply(SS_CARD, bad, [], expect=400)
    assert body["error"]["code"] == "application.form_invalid"
    assert set(body["error"]["fields"]) == {"phone", "bank", "extra", "collect_method"}
    missing = await resident.apply(SS_CARD, ss_form(*LI), [], expect=400)
    assert set(missing["error"]["fields"]) == {"material:applicant_id_card", "material:photo"}
    no_key = await resident.call("POST", "/applications", json={"item": SS_CARD, "form": ss_form(*LI)}, expect=400)
    assert no_key["error"]["code"] == "application.idempotency_key_required"
    offline = await resident.apply("002001101000", {}, [], expect=400)  # window-only item
    assert offline["error"]["code"] == "application.not_online"
    assert await services.store["applications"].count_documents({}) == 0


async def test_a_draft_is_saved_partially_then_submitted_once(resident) -> None:
    draft = await resident.apply(SS_CARD, {"bank": "广州银行"}, [], submit=False, expect=201)
    assert draft["status"] == "draft"
    photo = await resident.upload(jpeg_bytes())
    refs = [
        {"material": "applicant_id_card", "certificate": resident.cards["李明轩"]},  # type: ignore[attr-defined]
        {"material": "photo", "upload": photo["id"]},
    ]
    await resident.call("PUT", f"/applications/{draft['id']}", json={"form": {"bank": 1}}, expect=400)
    await resident.call("PUT", f"/applications/{draft['id']}", json={"form": ss_form(*LI), "materials": refs})
    key = {"Idempotency-Key": uuid.uuid4().hex}
    submitted = await resident.post(f"/applications/{draft['id']}/submit", headers=key)
    again = await resident.post(f"/applications/{draft['id']}/submit", headers=key)
    assert submitted["status"] == again["status"] == "submitted" and again["id"] == draft["id"]
    assert [h["status"] for h in again["history"]] == ["draft", "submitted"]


async def test_a_different_body_under_the_same_key_is_a_conflict(resident) -> None:
    photo = await resident.upload(jpeg_bytes())
    refs = [
        {"material": "applicant_id_card", "certificate": resident.cards["李明轩"]},  # type: ignore[attr-defined]
        {"material": "photo", "upload": photo["id"]},
    ]
    await resident.apply(SS_CARD, ss_form(*LI), refs, key="same-key-123", expect=201)
    other = {**ss_form(*LI), "bank": "中国银行"}
    body = await resident.apply(SS_CARD, other, refs, key="same-key-123", expect=409)
    assert body["error"]["code"] == "application.idempotency_conflict"


async def test_correction_is_asked_once_and_completely_then_supplied(services, client, resident) -> None:
    app = await _submitted(resident)
    staff = Staff(client, await issue_staff_token(services, "gz-hrss", "t"))
    await staff.act(app["id"], "return", materials=["nope"], note="x", expect=400)
    returned = await staff.act(app["id"], "return", materials=["photo"], note="照片背景须为白色")
    assert returned["status"] == "returned" and returned["correction"]["materials"] == ["photo"]
    page = await resident.get("/me/page")
    assert any(r["kind"] == "correction_waiting" for r in page["reminders"])
    incomplete = await resident.post(f"/applications/{app['id']}/supplement", {"materials": []}, expect=400)
    assert "material:photo" in incomplete["error"]["fields"]
    photo = await resident.upload(jpeg_bytes(color="white"))
    supplied = await resident.post(
        f"/applications/{app['id']}/supplement", {"materials": [{"material": "photo", "upload": photo["id"]}]}
    )
    assert supplied["status"] == "submitted" and supplied["correction"]["supplied_at"]
    again = await staff.act(app["id"], "return", materials=["photo"], note="再补一次", expect=409)
    assert again["error"]["code"] == "application.correction_used"
    accepted = await staff.act(app["id"], "accept")
    await staff.act(app["id"], "deliver", method="post", tracking="EMS1", expect=409)  # not approved yet
    assert accepted["deadline"]["date"] >= accepted["history"][-1]["at"][:10]
    refused = await staff.act(app["id"], "refuse", expect=400)  # a reason is required
    assert refused["error"]["code"] == "application.reason_required"


async def _poll(services, ready, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        doc = await services.store["notifications"].find_one({})
        if ready(doc):
            return doc
        assert loop.time() < deadline, doc
        await asyncio.sleep(0.05)


async def test_failed_notifications_are_retried_with_backoff_and_never_block(services, client, fake_wechat, resident):
    await resident.subscribe(TEMPLATES["application_status"])
    fake_wechat.fail_next("/cgi-bin/message/subscribe/send", -1)
    app = await _submitted(resident)
    assert app["status"] == "submitted"  # the transition did not wait for WeChat
    await eventually(lambda: "subscribe.send" in fake_wechat.calls)
    message = await _poll(services, lambda m: m and m["last_error"] == "-1")
    assert message["status"] == "pending" and message["last_error"] == "-1"
    assert message["next_attempt_at"] > message["created_at"]
    await services.store["notifications"].update_one({}, {"$set": {"next_attempt_at": message["created_at"]}})
    await send_due(services)
    await eventually(lambda: len(fake_wechat.sent_messages) == 1)
    sent = await services.store["notifications"].find_one({})
    assert sent["status"] == "sent"
    # no subscription left: the next change queues nothing
    staff = Staff(client, await issue_staff_token(services, "gz-hrss", "t"))
    await staff.act(app["id"], "accept")
    assert await services.store["notifications"].count_documents({}) == 1
    assert notifications.backoff(3) > notifications.backoff(1)


async def test_a_bad_rating_opens_a_rectification_whose_outcome_the_resident_sees(services, client, resident):
    app = await _submitted(resident)
    staff = Staff(client, await issue_staff_token(services, "gz-hrss", "t"))
    early = await resident.post(f"/applications/{app['id']}/evaluation", {"level": 1, "indicators": {}}, expect=400)
    assert early["error"]["code"] == "evaluation.invalid"
    indicators = dict.fromkeys(["overall", "efficiency", "guide_accuracy", "convenience", "usability"], 2)
    not_done = await resident.post(
        f"/applications/{app['id']}/evaluation",
        {"level": 1, "indicators": indicators, "reasons": ["办理时间过长"]},
        expect=409,
    )
    assert not_done["error"]["code"] == "evaluation.not_completed"
    await staff.act(app["id"], "accept")
    await staff.act(app["id"], "refuse", note="不符合申领条件")
    await resident.post(f"/applications/{app['id']}/evaluation", {"level": 1, "indicators": indicators}, expect=400)
    rating = await resident.post(
        f"/applications/{app['id']}/evaluation",
        {"level": 1, "indicators": indicators, "reasons": ["办理时间过长"]},
        expect=201,
    )
    rect = rating["rectification"]
    assert rect["status"] == "open" and rect["deadline"] > dt.date.today().isoformat()
    await resident.post(
        f"/applications/{app['id']}/evaluation", {"level": 5, "indicators": dict.fromkeys(indicators, 5)}, expect=409
    )
    listed = await staff.call("GET", "/staff/rectifications")
    assert [r["id"] for r in listed["rectifications"]] == [rect["id"]]
    await staff.call("POST", f"/staff/rectifications/{rect['id']}/close", json={"outcome": "已优化审核流程"})
    seen = await resident.get(f"/applications/{app['id']}/evaluation")
    assert seen["rectification"]["outcome"] == "已优化审核流程" and seen["rectification"]["status"] == "closed"


async def test_an_invitation_goes_out_three_days_after_completion_without_a_rating(services, client, resident):
    await resident.subscribe(TEMPLATES["evaluation_invite"])
    app = await _submitted(resident)
    staff = Staff(client, await issue_staff_token(services, "gz-hrss", "t"))
    await staff.act(app["id"], "accept")
    await staff.act(app["id"], "refuse", note="不符合条件")
    assert await send_due_invitations(services) == 0  # too early
    four_days_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=4)
    await services.store["applications"].update_one({"_id": app["id"]}, {"$set": {"completed_at": four_days_ago}})
    assert await send_due_invitations(services) == 1
    assert await send_due_invitations(services) == 0  # once
    queued = await services.store["notifications"].find_one({"template_id": TEMPLATES["evaluation_invite"]})
    assert queued is not None


async def test_a_complaint_gets_a_tracking_number_and_an_answer_deadline(services, resident) -> None:
    bad = await resident.post("/complaints", {"kind": "rumour", "subject": "", "content": "短"}, expect=400)
    assert set(bad["error"]["fields"]) == {"kind", "subject", "content"}
    filed = await resident.post(
        "/complaints",
        {"kind": "complaint", "subject": "窗口排队太久", "content": "上午在天河区政务中心排队两个小时"},
        expect=201,
    )
    assert filed["tracking_number"].startswith("TS") and filed["answer_due"] > dt.date.today().isoformat()
    listed = await resident.get("/complaints")
    assert [c["id"] for c in listed["complaints"]] == [filed["id"]]
    stored = await services.store["complaints"].find_one({})
    assert "排队两个小时" not in str(stored)  # sealed
