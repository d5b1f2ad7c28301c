"""WeChat to the letter: the stable_token refresh rule across processes, errors a
retry cannot mend, subscribe templates as configuration (checked against the
account's own), miniprogram_state and lang, and the phone number's watermark."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid

import pytest

from tests.support.miniprogram import MiniProgram
from yiwang import notifications
from yiwang.boot import open_services
from yiwang.config import Config, load_config
from yiwang.errors import InvalidInput
from yiwang.runtime import Services
from yiwang.store import Store
from yiwang.wechat import WeChatError, WeChatGateway

PREFIX = "/api/mobile/v1"


async def _queue_one(services: Services, template: str = "evaluation_invite") -> str:
    """One message in the outbox for a subscribed resident, as the product queues it."""
    account_id = uuid.uuid4().hex
    chosen = notifications.templates(services.config)[template]
    await services.store["wechat_accounts"].insert_one(
        {"_id": account_id, "openid": services.cipher.seal("wechat_openid", "o-" + account_id),
         "subscriptions": {chosen.id: 1}}
    )  # fmt: skip
    fields = {field: "测试" for field in chosen.keywords}
    assert await notifications.enqueue(services, account_id, template, fields, "pages/index/index", "s1")
    return account_id


async def test_a_refused_token_is_replaced_from_the_shared_cache_before_anything_is_refreshed(
    services: Services, fake_wechat
) -> None:
    first, second = WeChatGateway(services), WeChatGateway(services)  # two processes, one database
    token = await first.access_token()
    assert await second.access_token() == token
    fake_wechat.revoke(token)  # it lapsed
    replaced = await first.recover_token(token)
    assert replaced != token
    assert await second.recover_token(token) == replaced  # read from the shared cache, not fetched
    assert fake_wechat.calls.count("token") == 2 and fake_wechat.force_refreshes == []
    await first.aclose()
    await second.aclose()


async def test_a_forced_refresh_happens_once_across_processes(services: Services, fake_wechat) -> None:
    gateways = [WeChatGateway(services) for _ in range(4)]
    token = await gateways[0].access_token()
    # WeChat refuses a token that stable_token in normal mode still hands out: only a forced refresh mends it.
    results = await asyncio.gather(*(g.recover_token(token) for g in gateways), return_exceptions=True)
    assert len(fake_wechat.force_refreshes) == 1
    fresh = [r for r in results if isinstance(r, str)]
    assert fresh and all(r == fake_wechat.stable != token for r in fresh)
    assert all(isinstance(r, WeChatError) and r.code == "wechat.busy" for r in results if not isinstance(r, str))
    # Whoever was told "busy" finds the new token on its next try, with no second forced refresh.
    for g in gateways:
        assert await g.recover_token(token) == fake_wechat.stable
        await g.aclose()
    assert len(fake_wechat.force_refreshes) == 1


@pytest.mark.parametrize("errcode", [47003, 40037, 41030, 43101])
async def test_an_error_a_retry_cannot_mend_is_not_retried(services: Services, fake_wechat, errcode: int) -> None:
    await _queue_one(services)
    fake_wechat.fail_next("/cgi-bin/message/subscribe/send", errcode)
    assert await notifications.send_due(services) == 1
    message = await services.store["notifications"].find_one({})
    assert message is not None and message["status"] == "failed" and message["attempts"] == 1
    assert message["last_error"] == str(errcode)


async def test_a_busy_wechat_is_retried_later(services: Services, fake_wechat) -> None:
    await _queue_one(services)
    fake_wechat.fail_next("/cgi-bin/message/subscribe/send", -1)
    await notifications.send_due(services)
    message = await services.store["notifications"].find_one({})
    assert message is not None and message["status"] == "pending"


async def test_a_user_wechat_marks_as_risky_is_told_so_plainly(client, fake_wechat) -> None:
    fake_wechat.fail_next("/sns/jscode2session", 40226)
    status, body, _ = await client.post(PREFIX + "/session", json={"code": fake_wechat.login_code()})
    assert status == 403
    assert body["error"]["code"] == "wechat.risky_user" and "微信安全中心" in body["error"]["message"]


async def test_configured_templates_keywords_state_and_lang_reach_wechat(
    config: Config, store: Store, fake_wechat
) -> None:
    fake_wechat.templates["tmpl-eval-ours"] = "服务事项{{thing7.DATA}}\n提示{{thing9.DATA}}"
    chosen = {"evaluation_invite": {"id": "tmpl-eval-ours", "keywords": {"item": "thing7", "hint": "thing9"}}}
    configured = dataclasses.replace(
        config, wechat_templates=chosen, wechat_miniprogram_state="trial", wechat_lang="zh_HK"
    )
    services = await open_services(configured, store=store)
    try:
        await _queue_one(services)
        await notifications.send_due(services)
        [sent] = fake_wechat.sent_messages
        assert sent["template_id"] == "tmpl-eval-ours" and set(sent["data"]) == {"thing7", "thing9"}
        assert sent["miniprogram_state"] == "trial" and sent["lang"] == "zh_HK"
        assert await notifications.check_account_templates(services) == []
    finally:
        await services.close(close_store=False)


async def test_templates_the_account_lacks_are_named_at_start_up(services: Services, fake_wechat) -> None:
    del fake_wechat.templates["yiwang-certificate-expiry"]
    fake_wechat.templates["yiwang-evaluation-invite"] = "事项名称{{thing1.DATA}}"  # thing2 missing
    problems = await notifications.check_account_templates(services)
    assert any("certificate_expiry" in p and "not in the account" in p for p in problems)
    assert any("evaluation_invite" in p and "thing2" in p for p in problems)
    assert len(problems) == 2


@pytest.mark.parametrize(
    "value",
    [
        "{not json",
        json.dumps({"nonexistent": {"id": "x"}}),
        json.dumps({"evaluation_invite": {"keywords": {"item": "thing1", "hint": "thing2"}}}),
        json.dumps({"evaluation_invite": {"id": "x", "keywords": {"item": "thing1"}}}),
        json.dumps({"evaluation_invite": {"id": "x", "keywords": {"item": "thing1", "hint": "not a keyword"}}}),
    ],
)
async def test_a_malformed_template_setting_stops_start_up_naming_it(tmp_path, value: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        config = load_config({"DATA_DIR": str(tmp_path), "WECHAT_TEMPLATES": value})
        notifications.templates(config)
    assert "WECHAT_TEMPLATES" in raised.value.message


async def test_a_phone_number_issued_to_another_mini_program_is_refused(client, fake_wechat) -> None:
    mp = MiniProgram(client, fake_wechat)
    await mp.login()
    fake_wechat.phone_appid = "wx-someone-else"
    refused = await mp.post("/me/phone", {"code": fake_wechat.phone_code("13912345678")}, expect=400)
    assert refused["error"]["code"] == "wechat.phone_foreign"
    assert (await mp.get("/me"))["phone"] is None


async def test_the_country_code_is_kept_with_the_number(services: Services, client, fake_wechat) -> None:
    mp = MiniProgram(client, fake_wechat)
    await mp.login()
    fake_wechat.phone_country = "852"
    account = await mp.post("/me/phone", {"code": fake_wechat.phone_code("91234567")})
    assert account["phone_country_code"] == "852" and account["phone"].endswith("4567")
    fake_wechat.phone_country = "86"
    account = await mp.post("/me/phone", {"code": fake_wechat.phone_code("13912345678")})
    assert account["phone_country_code"] == "86" and account["phone"] == "139****5678"


async def test_normal_mode_gets_the_successor_only_when_the_token_lapses(services: Services, fake_wechat) -> None:
    gateway = WeChatGateway(services)
    token = await gateway.access_token()
    fake_wechat.access_tokens[token] = time.monotonic() + 120  # in its last minutes at WeChat too
    await services.store["wechat_access_tokens"].update_many({}, {"$set": {"expires_at": _soon()}})
    successor = await WeChatGateway(services).access_token()
    assert successor != token and fake_wechat.force_refreshes == []
    assert fake_wechat.access_tokens.get(token)  # the old token still works until it lapses
    await gateway.aclose()


def _soon():
    import datetime as dt

    return dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2)
