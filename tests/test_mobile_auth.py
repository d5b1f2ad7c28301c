"""Authorisation on every endpoint: no token, expired token, too low a level,
another resident's ids, the wrong kind of account, agents without (or after
revoking) an authorisation."""

from __future__ import annotations

import datetime as dt
import re
import uuid

from mobile_api.openapi import document
from tests.mobile_support import HUANG, LI, SS_CARD, WANG, prepare, ss_form
from tests.support.miniprogram import MiniProgram, Staff, jpeg_bytes
from yiwang.accounts import issue_staff_token
from yiwang.agents import issue_activation_code
from yiwang.timeutil import local_today

PREFIX = "/api/mobile/v1"


def protected_operations() -> list[tuple[str, str]]:
    ops = []
    for path, methods in document()["paths"].items():
        for method, op in methods.items():
            if op.get("security") != []:
                concrete = re.sub(r"\{action\}", "accept", path)
                ops.append((method.upper(), re.sub(r"\{[^}]+\}", "x" * 32, concrete)))
    return ops


async def _all_refused(client, headers: dict[str, str], *codes: str) -> None:
    ops = protected_operations()
    assert len(ops) > 35
    for method, path in ops:
        kwargs = {"json": {}} if method in ("POST", "PUT") else {}
        status, body, _ = await client.request(method, PREFIX + path, headers=headers, **kwargs)
        assert status == 401, (method, path, status, body)
        assert body["error"]["code"] in codes, (method, path, body)


async def test_every_protected_endpoint_refuses_a_missing_or_malformed_token(client) -> None:
    await _all_refused(client, {}, "auth.required")
    await _all_refused(client, {"Authorization": "Basic abc"}, "auth.required")
    await _all_refused(client, {"Authorization": "Bearer not-a-token"}, "auth.token_invalid")


async def test_every_protected_endpoint_refuses_an_expired_token(services, client, fake_wechat) -> None:
    mp = MiniProgram(client, fake_wechat)
    await mp.login()
    await services.store["mobile_tokens"].update_many(
        {}, {"$set": {"expires_at": dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)}}
    )
    # the TTL index may already have removed it: either way, a clear 401
    await _all_refused(client, mp.headers, "auth.token_expired", "auth.token_invalid")


async def test_signing_out_revokes_the_token_and_a_new_login_replaces_the_device_token(client, fake_wechat) -> None:
    mp = MiniProgram(client, fake_wechat)
    await mp.login()
    first = mp.token
    await mp.login()  # same device: the old token is replaced
    mp.token, second = first, mp.token
    await mp.get("/me", expect=401)
    mp.token = second
    other_device = MiniProgram(client, fake_wechat, openid=mp.openid, device="tablet")
    await other_device.login()
    await mp.call("DELETE", "/session", expect=200)
    await mp.get("/me", expect=401)
    await other_device.get("/me", expect=200)  # one token per device


async def test_level_three_operations_refuse_an_account_without_real_name(client, fake_wechat) -> None:
    mp = MiniProgram(client, fake_wechat)
    await mp.login()
    for path in ("/certificates", "/applications", "/me/page", "/complaints", "/authorisations"):
        body = await mp.get(path, expect=403)
        assert body["error"]["code"] == "auth.level_insufficient" and body["error"]["required_level"] == 3


async def test_another_residents_ids_do_not_exist_for_you(services, client, fake_wechat) -> None:
    cards = await prepare(services, agents=True)
    li, wang = MiniProgram(client, fake_wechat), MiniProgram(client, fake_wechat)
    await li.login()
    await li.bind(*LI)
    await wang.login()
    await wang.bind(*WANG)
    photo = await li.upload(jpeg_bytes())
    refs = [
        {"material": "applicant_id_card", "certificate": cards["李明轩"]},
        {"material": "photo", "upload": photo["id"]},
    ]
    app = await li.apply(SS_CARD, ss_form(*LI), refs)
    draft = await li.apply(SS_CARD, {}, [], submit=False)
    complaint = await li.post("/complaints", {"kind": "complaint", "subject": "排队太久", "content": "窗口排队两小时"})
    until = (local_today() + dt.timedelta(days=30)).isoformat()
    auth = await li.post("/authorisations", {"agent": "ch-agent-001", "items": [SS_CARD], "until": until})

    app_id, cert_id = app["id"], cards["李明轩"]
    for method, path, body in [
        ("GET", f"/applications/{app_id}", None),
        ("PUT", f"/applications/{draft['id']}", {"form": {}}),
        ("POST", f"/applications/{draft['id']}/submit", {}),
        ("POST", f"/applications/{app_id}/supplement", {"materials": []}),
        ("GET", f"/applications/{app_id}/evaluation", None),
        (
            "POST",
            f"/applications/{app_id}/evaluation",
            {
                "level": 5,
                "indicators": dict.fromkeys(["overall", "efficiency", "guide_accuracy", "convenience", "usability"], 5),
            },
        ),
        ("GET", f"/uploads/{photo['id']}", None),
        ("GET", f"/certificates/{cert_id}", None),
        ("GET", f"/certificates/{cert_id}/access-history", None),
        ("POST", f"/certificates/{cert_id}/display-codes", {"purpose": "社保业务"}),
        ("GET", f"/complaints/{complaint['id']}", None),
        ("POST", f"/authorisations/{auth['id']}/revoke", {}),
    ]:
        status, answer, _ = await client.request(
            method,
            PREFIX + path,
            headers={**wang.headers, "Idempotency-Key": uuid.uuid4().hex},
            **({"json": body} if body is not None else {}),
        )
        assert status == 404, (method, path, status, answer)
    # using another resident's upload or certificate as one's own material is refused too
    answer = await wang.apply(SS_CARD, ss_form(*WANG), refs, expect=400)
    assert set(answer["error"]["fields"]) == {"materials[0]", "materials[1]"}
    assert len((await wang.get("/applications"))["applications"]) == 0


async def test_staff_see_only_their_department_and_residents_cannot_act_as_staff(services, client, fake_wechat) -> None:
    cards = await prepare(services)
    li = MiniProgram(client, fake_wechat)
    await li.login()
    await li.bind(*LI)
    photo = await li.upload(jpeg_bytes())
    refs = [
        {"material": "applicant_id_card", "certificate": cards["李明轩"]},
        {"material": "photo", "upload": photo["id"]},
    ]
    app = await li.apply(SS_CARD, ss_form(*LI), refs)
    psb = Staff(client, await issue_staff_token(services, "gz-psb", "other"))
    await psb.act(app["id"], "accept", expect=404)
    await psb.call("GET", f"/staff/applications/{app['id']}", expect=404)
    as_resident = Staff(client, str(li.token))
    body = await as_resident.act(app["id"], "accept", expect=403)
    assert body["error"]["code"] == "auth.staff_only"
    hrss = Staff(client, await issue_staff_token(services, "gz-hrss", "t"))
    body = await hrss.call("GET", "/certificates", expect=403)
    assert body["error"]["code"] == "auth.resident_only"
    status, body, _ = await client.post(PREFIX + "/staff/session", json={"username": "gz_hrss_staff", "password": "x"})
    assert status == 401 and body["error"]["code"] == "staff.credentials_invalid"


async def test_agents_act_only_under_a_live_authorisation(services, client, fake_wechat) -> None:
    cards = await prepare(services, agents=True)
    resident = MiniProgram(client, fake_wechat)
    await resident.login()
    await resident.bind(*LI)
    agent = MiniProgram(client, fake_wechat)
    await agent.login()
    await agent.bind(*HUANG)

    # not yet an agent
    assert (await agent.get("/agent/queue", expect=403))["error"]["code"] == "auth.agent_only"
    wrong = await agent.post("/me/agent-activation", {"agent": "ch-agent-001", "activation_code": "nope"}, expect=403)
    assert wrong["error"]["code"] == "agent.activation_invalid"
    code = await issue_activation_code(services, "ch-agent-001")
    await agent.post("/me/agent-activation", {"agent": "ch-agent-001", "activation_code": code})
    await agent.post("/me/agent-activation", {"agent": "ch-agent-001", "activation_code": code}, expect=403)  # once

    # an agent without authorisation can do nothing for the resident
    no_auth = await agent.apply(
        SS_CARD, ss_form(*LI), [], path="/agent/applications", authorisation="x" * 32, expect=403
    )
    assert no_auth["error"]["code"] == "agent.not_authorised"
    await agent.upload(jpeg_bytes(), path="/agent/uploads", authorisation="x" * 32, expect=403)

    until = (local_today() + dt.timedelta(days=30)).isoformat()
    grant = await resident.post("/authorisations", {"agent": "ch-agent-001", "items": [SS_CARD], "until": until})
    wrong_item = await agent.apply(
        "002008101002", {}, [], path="/agent/applications", authorisation=grant["id"], expect=403
    )
    assert wrong_item["error"]["code"] == "agent.item_not_authorised"
    photo = await agent.upload(jpeg_bytes(), path="/agent/uploads", authorisation=grant["id"])
    refs = [
        {"material": "applicant_id_card", "certificate": cards["李明轩"]},
        {"material": "photo", "upload": photo["id"]},
    ]
    filed = await agent.apply(SS_CARD, ss_form(*LI), refs, path="/agent/applications", authorisation=grant["id"])
    assert filed["agent"] == "ch-agent-001" and filed["history"][0]["by"]["kind"] == "agent"
    # the agent never reads the resident's wallet, even with the certificate id
    await agent.get("/certificates", expect=200)  # their own (empty) wallet
    await agent.get(f"/certificates/{cards['李明轩']}", expect=404)
    queue = await agent.get("/agent/queue")
    assert [a["id"] for a in queue["applications"]] == [filed["id"]]

    # the resident sees "agent X for me"
    mine = await resident.get(f"/applications/{filed['id']}")
    assert mine["agent"] == "ch-agent-001"
    grants = (await resident.get("/authorisations"))["authorisations"]
    assert [a["action"] for a in grants[0]["activity"]] == ["upload", "application.submitted"]

    # after revocation, nothing more
    await resident.post(f"/authorisations/{grant['id']}/revoke", {})
    revoked = await agent.apply(
        SS_CARD, ss_form(*LI), refs, path="/agent/applications", authorisation=grant["id"], expect=403
    )
    assert revoked["error"]["code"] == "agent.not_authorised"
    await agent.upload(jpeg_bytes(), path="/agent/uploads", authorisation=grant["id"], expect=403)
    await agent.get(f"/agent/applications/{filed['id']}", expect=403)
    assert (await agent.get("/agent/queue"))["authorisations"] == []
