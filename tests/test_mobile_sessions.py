"""Bearer tokens carry a copy of their account's binding so that authentication is one
read; a binding change reaches every token of the account at once, and nothing stale
survives a race with a concurrent login or an interrupted change."""

from __future__ import annotations

from tests.mobile_support import LI, prepare
from tests.support.miniprogram import MiniProgram
from tests.support.verifiers import FaceVerifier
from yiwang import accounts
from yiwang.agents import issue_activation_code
from yiwang.identity_verification import IdentityVerifier


async def test_binding_on_one_device_reaches_the_tokens_of_every_device_at_once(services, client, fake_wechat):
    await prepare(services, agents=True)
    phone = MiniProgram(client, fake_wechat, device="phone")
    await phone.login()
    tablet = MiniProgram(client, fake_wechat, openid=phone.openid, device="tablet")
    await tablet.login()
    await tablet.get("/certificates", expect=403)  # level 1

    await phone.bind(*LI)
    assert (await tablet.get("/me"))["level"] == 3
    assert len((await tablet.get("/certificates"))["certificates"]) == 1

    code = await issue_activation_code(services, "ch-agent-001")
    await phone.post("/me/agent-activation", {"agent": "ch-agent-001", "activation_code": code})
    assert (await tablet.get("/agent/queue"))["applications"] == []  # the tablet is an agent now too

    stored = await services.store["mobile_tokens"].find_one({"device_id": "tablet"})
    assert stored["principal"]["person_index"] and stored["principal"]["agent"] == "ch-agent-001"
    assert LI[1] not in str(stored) and LI[0] not in str(stored)  # masks and blind index only


async def test_a_rebind_unbinds_the_other_account_on_its_next_request(services, client, fake_wechat):
    await prepare(services)
    first, second = MiniProgram(client, fake_wechat), MiniProgram(client, fake_wechat)
    await first.login()
    await first.bind(*LI)
    await first.get("/certificates")
    await second.login()
    services.resources.replace(FaceVerifier(), IdentityVerifier)  # a proof stronger than the first binding
    await second.bind(*LI, rebind=True)
    denied = await first.get("/certificates", expect=403)  # still signed in, no longer bound
    assert denied["error"]["code"] == "auth.level_insufficient"
    assert len((await second.get("/certificates"))["certificates"]) == 1


async def test_a_token_issued_with_an_outdated_account_copy_takes_the_current_one(services, client, fake_wechat):
    await prepare(services)
    mp = MiniProgram(client, fake_wechat)
    await mp.login()
    before = await services.store["wechat_accounts"].find_one({})
    await mp.bind(*LI)
    # a login on another device read the account just before the binding committed
    issued = await accounts._issue_token(services, before["_id"], "late-device", "resident", account=before)
    late = MiniProgram(client, fake_wechat, openid=mp.openid, device="late-device")
    late.token = issued["token"]
    assert (await late.get("/me"))["level"] == 3
    await late.get("/certificates")


async def test_a_token_without_a_copy_reads_the_account(services, client, fake_wechat):
    """Tokens cleared by an interrupted binding change (or issued before copies existed)."""
    await prepare(services)
    mp = MiniProgram(client, fake_wechat)
    await mp.login()
    await mp.bind(*LI)
    await services.store["mobile_tokens"].update_many({}, {"$unset": {"principal": ""}})
    assert len((await mp.get("/certificates"))["certificates"]) == 1
    await services.store["wechat_accounts"].update_many({}, {"$set": {"level": 1, "person_index": None}})
    await mp.get("/certificates", expect=403)  # read from the account, not from a stale copy
