"""Images residents upload go through WeChat's mediaCheckAsync (v2): WeChat fetches the image from a
one-time URL and pushes its verdict to /api/wechat/push by trace_id. A refused image is marked
with a Chinese reason for the resident, withheld from staff, and cannot be attached again."""

from __future__ import annotations

import base64
import dataclasses
import secrets
from urllib.parse import urlsplit

import pytest

from tests.mobile_support import LI, SS_CARD, prepare, ss_form
from tests.support.miniprogram import MiniProgram, Staff, jpeg_bytes
from tests.test_wechat_push import TOKEN, _push
from yiwang.accounts import issue_staff_token


@pytest.fixture
async def resident(services, client, fake_wechat):
    aes_key = base64.b64encode(secrets.token_bytes(32)).decode()[:43]
    services.config = dataclasses.replace(services.config, wechat_push_token=TOKEN, wechat_push_aes_key=aes_key)
    cards = await prepare(services)
    mp = MiniProgram(client, fake_wechat)
    await mp.login()
    await mp.bind(*LI)
    mp.cards = cards  # type: ignore[attr-defined]
    mp.aes_key = aes_key  # type: ignore[attr-defined]
    return mp


async def wechat_pushes(mp: MiniProgram, appid: str, trace_id: str, suggest: str, label: int) -> None:
    event = {"ToUserName": "gh_x", "FromUserName": "o1", "CreateTime": 1764640000, "MsgType": "event",
             "Event": "wxa_media_check", "appid": appid, "trace_id": trace_id, "version": 2, "errcode": 0,
             "detail": [{"strategy": "content_model", "errcode": 0, "suggest": suggest, "label": label}],
             "result": {"suggest": suggest, "label": label}}  # fmt: skip
    query, payload = _push(mp.aes_key, appid, event)  # type: ignore[attr-defined]
    status, body, _ = await mp.client.post("/api/wechat/push", params=query, data=payload)
    assert status == 200 and body == b"success"


async def test_a_refused_image_is_marked_for_the_resident_and_withheld_from_staff(services, client, resident) -> None:
    fake = resident.wechat
    photo = await resident.upload(jpeg_bytes())
    assert photo["check"] == "pending" and photo["check_label"] == "检测中"
    [job] = fake.media_jobs
    assert job["media_type"] == 2 and job["version"] == 2 and job["openid"]
    # WeChat fetches the image from the one-time URL (a download, never a page); a guessed token is 404.
    media_path = urlsplit(job["media_url"]).path
    status, body, response = await client.get(media_path)
    assert status == 200 and response.content_type == "image/jpeg" and body[:2] == b"\xff\xd8"
    assert response.headers["Content-Disposition"].startswith("attachment")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response.headers["Content-Security-Policy"]
    assert (await client.get(media_path[:-4] + "AAAA"))[0] == 404

    refs = [{"material": "applicant_id_card", "certificate": resident.cards["李明轩"]},  # type: ignore[attr-defined]
            {"material": "photo", "upload": photo["id"]}]  # fmt: skip
    app = await resident.apply(SS_CARD, ss_form(*LI), refs, expect=201)  # pending: may be attached
    await wechat_pushes(resident, services.config.wechat_appid, job["trace_id"], "risky", 20002)

    seen = await resident.get(f"/applications/{app['id']}")
    shown = next(m for m in seen["materials"] if m["material"] == "photo")
    assert shown["check"] == "refused" and shown["check_label"] == "未通过"
    assert "未通过微信内容安全检测" in shown["check_reason"] and "色情" in shown["check_reason"]
    staff = Staff(client, await issue_staff_token(services, "gz-hrss", "t"))
    for_staff = await staff.call("GET", f"/staff/applications/{app['id']}")
    withheld = next(m for m in for_staff["materials"] if m["material"] == "photo")
    assert withheld == {"material": "photo", "name": withheld["name"], "kind": "upload", "withheld": True}
    assert photo["id"] not in str(for_staff)
    assert (await client.get(media_path))[0] == 404  # the URL ends with the check
    again = await resident.apply(SS_CARD, ss_form(*LI), refs, expect=400)
    assert "未通过内容安全检测" in str(again["error"]["fields"])
    assert await services.store["audit"].count_documents({"action": "upload.refused", "subject": photo["id"]}) == 1


async def test_a_passing_image_is_marked_passed_and_a_verdict_is_kept_by_trace_id(services, resident) -> None:
    photo = await resident.upload(jpeg_bytes())
    [job] = resident.wechat.media_jobs
    await wechat_pushes(resident, services.config.wechat_appid, job["trace_id"], "pass", 100)
    doc = await services.store["uploads"].find_one({"_id": photo["id"]})
    assert doc["media_check"]["status"] == "pass"
    # A verdict for a trace the process has not recorded yet is kept by trace_id (applied when it is).
    from yiwang import uploads

    await uploads.record_media_check(services.store, "early-trace", "risky", 20001)
    assert (await services.store["media_checks"].find_one({"_id": "early-trace"}))["suggest"] == "risky"


async def test_wechat_unreachable_keeps_the_image_unchecked(services, resident) -> None:
    resident.wechat.fail_next("/wxa/media_check_async", -1)
    photo = await resident.upload(jpeg_bytes())
    assert photo["check"] == "unchecked"
    pdf_free = await services.store["uploads"].find_one({"_id": photo["id"]})
    assert pdf_free["media_check"] == {"status": "unchecked"}
