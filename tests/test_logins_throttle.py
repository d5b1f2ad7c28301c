"""Logins and guessable secrets are throttled atomically in the database (yiwang.throttle):
concurrent guesses are not all checked, forwarding headers from an untrusted peer count for
nothing, real-name binding and kiosk sign-in codes are throttled, and every 429 says when to
come back (Retry-After + the JSON error shape). Behind a trusted proxy: test_logins_behind_proxy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pyotp
import pytest_asyncio

from tests.console_support import prepare
from tests.kiosk_support import enrolled_kiosk
from tests.login_support import WRONG, LoginForm, bind, checked_failures, id_number, resident
from tests.mobile_support import LI, WANG
from tests.mobile_support import prepare as prepare_residents
from yiwang import agents, console_accounts, kiosk_agents
from yiwang.catalog import load_catalog_files
from yiwang.devices import authenticate
from yiwang.runtime import Services


@pytest_asyncio.fixture
async def console(services: Services, server: str) -> AsyncIterator[str]:
    await prepare(services)
    yield server


# ---- 1. atomic counting ------------------------------------------------------------------


async def test_forty_concurrent_wrong_passwords_get_five_checks_and_the_rest_429(
    console: str, services: Services
) -> None:
    async with LoginForm(console) as form:
        results = await asyncio.gather(*(form.login("th_hall", WRONG) for _ in range(40)))
    statuses = [status for status, _, _ in results]
    assert statuses.count(401) == 5 and statuses.count(429) == 35
    assert await checked_failures(services) == 5  # the hash was checked five times, not forty
    for status, text, headers in results:
        if status == 429:
            assert "登录失败次数过多" in text, text
            assert 0 < int(headers["Retry-After"]) <= 60


# ---- 2. client address -----------------------------------------------------------------------


async def test_rotating_forwarded_for_from_an_untrusted_peer_does_not_escape_the_address_limit(
    console: str, services: Services
) -> None:
    # 30 wrong passwords for 30 different names, each "from" another address: one socket peer.
    async with LoginForm(console) as form:
        for n in range(30):
            status, _, _ = await form.login(f"nobody{n}", WRONG, **{"X-Forwarded-For": f"198.51.100.{n}"})
            assert status == 401
        status, _, headers = await form.login("nobody99", WRONG, **{"X-Forwarded-For": "203.0.113.1"})
        assert status == 429 and int(headers["Retry-After"]) > 0
        status, _, _ = await form.login("th_hall", **{"X-Real-IP": "203.0.113.2"})
        assert status == 429  # the right password too: the socket address is still over its limit


async def test_wrong_totp_codes_stay_counted_when_the_password_is_entered_again(
    console: str, services: Services
) -> None:
    secret = console_accounts.new_totp_secret()
    doc = await services.store["console_users"].find_one({"username": "yx_hall"})
    user = await console_accounts.get_user(services.store, doc["_id"] if doc else "")
    assert user is not None
    await console_accounts.enable_totp(services.store, services.cipher, user, secret, pyotp.TOTP(secret).now())
    right = pyotp.TOTP(secret).now()
    wrong = "000000" if right != "000000" else "111111"
    async with LoginForm(console) as someone_with_the_password:
        assert (await someone_with_the_password.login("yx_hall"))[0] == 302
        await someone_with_the_password.refresh("/console/login/totp")
        for _ in range(5):
            status, _, _ = await someone_with_the_password.submit("/console/login/totp", {"code": wrong})
            assert status == 401
        assert (await someone_with_the_password.login("yx_hall"))[0] == 302  # the password again
        await someone_with_the_password.refresh("/console/login/totp")
        status, text, headers = await someone_with_the_password.submit("/console/login/totp", {"code": right})
        assert status == 429 and "动态验证码错误次数过多" in text and int(headers["Retry-After"]) > 0


async def test_an_untrusted_callers_forwarded_proto_changes_nothing(console: str) -> None:
    headers = {"X-Forwarded-Proto": "https"}
    async with aiohttp.ClientSession() as session, session.get(console + "/console/login", headers=headers) as r:
        cookie = r.headers["Set-Cookie"]
    assert "yw_console_csrf=" in cookie and "Secure" not in cookie


# ---- 5. identity guessing ----------------------------------------------------------------------


async def test_guessing_name_number_pairs_is_answered_429_with_retry_after(
    services: Services, client: Any, fake_wechat: Any
) -> None:
    await prepare_residents(services)
    mp = await resident(client, fake_wechat)
    results = await asyncio.gather(*(bind(mp, "张三", id_number(n)) for n in range(1, 31)))
    statuses = [status for status, _, _ in results]
    assert statuses.count(403) == 5 and statuses.count(429) == 25
    assert await services.store["audit"].count_documents({"action": "identity.verify_failed"}) == 5
    for status, body, response in results:
        if status == 429:
            assert body["error"]["code"] == "identity.bind_throttled" and "实名核验" in body["error"]["message"]
            assert 3000 < int(response.headers["Retry-After"]) <= 3600
    status, _, _ = await bind(mp, *LI)  # even the right pair waits: the account used its checks
    assert status == 429


async def test_one_id_number_can_be_guessed_five_times_whoever_guesses(
    services: Services, client: Any, fake_wechat: Any
) -> None:
    await prepare_residents(services)
    first, second, third = [await resident(client, fake_wechat) for _ in range(3)]
    for mp, names in ((first, ("张三", "李四", "王五")), (second, ("赵六", "钱七"))):
        for name in names:
            assert (await bind(mp, name, LI[1]))[0] == 403
    status, body, response = await bind(third, "孙八", LI[1])
    assert status == 429 and body["error"]["code"] == "identity.bind_throttled" and response.headers["Retry-After"]
    status, body, _ = await bind(third, *WANG)  # another number is not held up
    assert status == 200 and body["level"] == 3
    assert not await services.store["throttles"].find_one({"_id": {"$regex": LI[1]}})  # keyed by digest only


# ---- kiosk agent sign-in digits -------------------------------------------------------------


async def test_kiosk_sign_in_digits_are_limited_per_kiosk_across_requests(
    services: Services, client: Any, fake_wechat: Any
) -> None:
    await prepare_residents(services)
    await load_catalog_files(services.store)
    services.catalog.invalidate()
    kiosk = await enrolled_kiosk(services, client)
    device = await services.store["devices"].find_one({"_id": kiosk.device_id})
    assert device is not None
    phone = await resident(client, fake_wechat)
    await phone.bind(*LI)
    await agents.load_demo_agents(services)
    code = await agents.issue_activation_code(services, "ch-agent-001")
    await phone.post("/me/agent-activation", {"agent": "ch-agent-001", "activation_code": code})
    me = await authenticate(services, kiosk.device_id, kiosk.credential)

    async def confirmed_request() -> tuple[str, str]:
        opened = await kiosk_agents.open_sign_in(services, me)
        phone_says = await phone.post("/agent/kiosk-sign-in", {"code": opened["qr_text"]})
        return opened["request_id"], phone_says["confirmation_code"]

    async def type_digits(request_id: str, digits: str) -> tuple[int, Any]:
        status, _, response = await kiosk.post(
            "/kiosk/agent/sign-in",
            data={"request": request_id, "digits": digits},
            headers={"Accept": "text/html"},
            allow_redirects=False,
        )
        return status, response

    for _ in range(2):  # two requests, five wrong codes each (each request's own limit)
        request_id, right = await confirmed_request()
        wrong = "000000" if right != "000000" else "111111"
        for _ in range(5):
            assert (await type_digits(request_id, wrong))[0] == 403
    request_id, right = await confirmed_request()
    status, response = await type_digits(request_id, right)
    assert status == 429 and int(response.headers["Retry-After"]) > 0
