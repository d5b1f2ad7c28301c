"""Login through WeChat, real-name binding, phone numbers, the access token cache."""

from __future__ import annotations

import datetime as dt
import time

from tests.mobile_support import LI, prepare
from tests.support.miniprogram import MiniProgram
from tests.support.verifiers import FaceVerifier
from yiwang import audit
from yiwang.identity_verification import IdentityVerifier
from yiwang.wechat import WeChatGateway, gateway

PREFIX = "/api/mobile/v1"


async def test_wechat_errors_become_clear_answers(client, fake_wechat) -> None:
    async def login(code: str) -> tuple[int, dict]:
        status, body, response = await client.post(PREFIX + "/session", json={"code": code})
        return status, {**body, "retry_after_header": response.headers.get("Retry-After")}

    status, body = await login("never-issued")
    assert status == 400 and body["error"]["code"] == "wechat.invalid_code"
    fake_wechat.fail_next("/sns/jscode2session", 45011)
    status, body = await login(fake_wechat.login_code())
    assert status == 429 and body["error"]["code"] == "wechat.rate_limited" and body["retry_after_header"]
    for failure in (-1, 503):
        fake_wechat.fail_next("/sns/jscode2session", failure)
        status, body = await login(fake_wechat.login_code())
        assert status == 503 and body["error"]["code"] == "wechat.busy"
        assert body["error"]["retry_after"] > 0 and body["retry_after_header"]
    status, body, _ = await client.post(PREFIX + "/session", json={})
    assert status == 400 and body["error"]["fields"]["code"]


async def test_a_login_code_works_once_and_the_session_key_stays_on_the_server(services, client, fake_wechat) -> None:
    code = fake_wechat.login_code("o-fixed-openid")
    status, body, _ = await client.post(PREFIX + "/session", json={"code": code})
    assert status == 201 and body["token_type"] == "Bearer"
    assert "session_key" not in str(body) and "o-fixed-openid" not in str(body)
    status, _, _ = await client.post(PREFIX + "/session", json={"code": code})
    assert status == 400
    account = await services.store["wechat_accounts"].find_one({})
    assert "o-fixed-openid" not in str(account)  # sealed, found by blind index
    token = await services.store["mobile_tokens"].find_one({})
    assert token["_id"] != body["token"]  # only the digest is stored


async def test_binding_checks_the_population_database_and_one_number_has_one_account(services, client, fake_wechat):
    await prepare(services)
    first, second = MiniProgram(client, fake_wechat), MiniProgram(client, fake_wechat)
    await first.login()
    await second.login()
    wrong = await first.post("/me/identity", {"name": "李明", "id_number": LI[1]}, expect=403)
    assert wrong["error"]["code"] == "identity.verification_failed"
    bad = await first.post("/me/identity", {"name": "", "id_number": "440106199406183319"}, expect=400)
    assert set(bad["error"]["fields"]) == {"name", "id_number"}
    assert (await first.get("/me"))["level"] == 1  # bad input changed nothing
    await first.bind(*LI)

    taken = await second.post("/me/identity", {"name": LI[0], "id_number": LI[1]}, expect=409)
    assert taken["error"]["code"] == "identity.bound_elsewhere"
    unproven = await second.post("/me/identity", {"name": LI[0], "id_number": LI[1], "rebind": True}, expect=403)
    assert unproven["error"]["code"] == "identity.rebind_proof_required"  # a name and a number are no secret
    services.resources.replace(FaceVerifier(), IdentityVerifier)
    rebound = await second.bind(*LI, rebind=True)
    assert rebound["level"] == 4 and rebound["real_name_bound"]
    assert (await first.get("/me"))["real_name_bound"] is False  # the old account was unbound, and told
    actions = [e["action"] async for e in services.store["audit"].find({"action": {"$regex": "^identity"}})]
    assert actions.count("identity.bind") == 2 and "identity.rebind" in actions
    assert "identity.rebind_refused" in actions
    assert await audit.verify_chain(services.store) == (True, None)


async def test_phone_number_is_exchanged_sealed_and_shown_masked(services, client, fake_wechat) -> None:
    mp = MiniProgram(client, fake_wechat)
    await mp.login()
    account = await mp.post("/me/phone", {"code": fake_wechat.phone_code("13912345678")})
    assert account["phone"] == "139****5678"
    stored = await services.store["wechat_accounts"].find_one({})
    assert "13912345678" not in str(stored)
    again = await mp.post("/me/phone", {"code": "used-or-unknown"}, expect=400)
    assert again["error"]["code"] == "wechat.invalid_code"


async def test_access_token_is_cached_shared_through_the_db_and_refreshed_before_expiry(services, fake_wechat) -> None:
    first = await gateway(services).access_token()
    assert await gateway(services).access_token() == first
    other_process = WeChatGateway(services)  # a second process: no memory cache, same DB
    assert await other_process.access_token() == first
    assert fake_wechat.calls.count("token") == 1
    await services.store["wechat_access_tokens"].update_many(
        {}, {"$set": {"expires_at": dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2)}}
    )
    fake_wechat.access_tokens[first] = time.monotonic() + 120  # in its last minutes at WeChat too
    refreshed = await WeChatGateway(services).access_token()
    assert refreshed != first and fake_wechat.calls.count("token") == 2
    await other_process.aclose()


async def test_an_invalid_access_token_is_refreshed_once_and_the_call_retried(services, fake_wechat) -> None:
    await gateway(services).access_token()
    fake_wechat.access_tokens.clear()  # WeChat forgot it (40001)
    phone = await gateway(services).phone_number(fake_wechat.phone_code("13700000000"))
    assert phone.number == "13700000000" and phone.country_code == "86"
    assert fake_wechat.calls.count("token") == 2
