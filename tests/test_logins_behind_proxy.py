"""The server behind a reverse proxy on loopback (``TRUSTED_PROXIES=127.0.0.1/32``): its
X-Forwarded-For is believed, so these tests can be attackers and users at different addresses.
An attacker cannot lock the real user out; staff logins are throttled like the console's;
identity guesses are limited per address across accounts."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pyotp
import pytest
import pytest_asyncio

from tests.console_support import PASSWORD, prepare
from tests.login_support import WRONG, LoginForm, id_number, resident
from tests.mobile_support import HUANG
from tests.mobile_support import prepare as prepare_residents
from tests.support.miniprogram import PREFIX
from yiwang import console_accounts
from yiwang.config import Config
from yiwang.runtime import Services


@pytest.fixture
def config(config: Config) -> Config:
    return dataclasses.replace(config, trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),))


@pytest_asyncio.fixture
async def console(services: Services, server: str) -> AsyncIterator[str]:
    await prepare(services)
    yield server


async def test_a_trusted_proxys_forwarded_for_is_honoured_and_the_real_user_gets_in(
    console: str, services: Services
) -> None:
    async with LoginForm(console, forwarded_for="203.0.113.7") as attacker:
        statuses = [(await attacker.login("th_hall", WRONG))[0] for _ in range(12)]
        assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}
        assert (await attacker.login("th_hall"))[0] == 429  # that pair waits, even with the right password
    # 3. no aimable lockout: the real user, at another address, signs in at once
    async with LoginForm(console, forwarded_for="10.9.8.7, 198.51.100.20") as user:
        status, _, headers = await user.login("th_hall")
        assert status == 302 and headers["Location"] == "/console/"
    entry = await services.store["audit"].find_one({"action": "console.login"})
    assert entry is not None and entry["detail"]["address"] == "198.51.100.20"


async def test_an_account_attacked_from_many_addresses_still_lets_password_and_totp_in(
    console: str, services: Services
) -> None:
    secret = console_accounts.new_totp_secret()
    user = await console_accounts.get_user(
        services.store, (await services.store["console_users"].find_one({"username": "yx_hall"}) or {})["_id"]
    )
    assert user is not None
    await console_accounts.enable_totp(services.store, services.cipher, user, secret, pyotp.TOTP(secret).now())
    for n in range(4):  # 4 addresses × 5 failures = the per-account ceiling (20)
        async with LoginForm(console, forwarded_for=f"203.0.113.{n}") as attacker:
            for username in ("th_hall", "yx_hall"):
                for _ in range(5):
                    assert (await attacker.login(username, WRONG))[0] == 401
    async with LoginForm(console, forwarded_for="198.51.100.30") as owner:
        # password only: refused while the account is under attack (429, with when to retry)
        status, text, headers = await owner.login("th_hall")
        assert status == 429 and "动态验证码" in text and int(headers["Retry-After"]) > 0
        # password + TOTP: in
        status, _, headers = await owner.login("yx_hall")
        assert status == 302 and headers["Location"].startswith("/console/login/totp")
        await owner.refresh("/console/login/totp")
        code = pyotp.TOTP(secret).now()
        status, _, headers = await owner.submit("/console/login/totp", {"code": code, "next": "/console/"})
        assert status == 302 and headers["Location"] == "/console/"


async def test_staff_login_is_throttled_like_the_consoles(services: Services, client: Any) -> None:
    await console_accounts.create_user(
        services.store,
        services.offload,
        username="gz_hrss_staff",
        password=PASSWORD,
        role="department_staff",
        scope={"department": "gz-hrss"},
    )
    attacker = {"X-Forwarded-For": "203.0.113.9"}
    results = await asyncio.gather(
        *(
            client.post(
                PREFIX + "/staff/session", json={"username": "gz_hrss_staff", "password": WRONG}, headers=attacker
            )
            for _ in range(40)
        )
    )
    statuses = [status for status, _, _ in results]
    assert statuses.count(401) == 5 and statuses.count(429) == 35
    for status, body, response in results:
        if status == 429:
            assert body["error"]["code"] == "console.login_throttled" and body["error"]["message"]
            assert int(response.headers["Retry-After"]) == body["error"]["retry_after"] > 0
    status, body, _ = await client.post(
        PREFIX + "/staff/session",
        json={"username": "gz_hrss_staff", "password": PASSWORD},
        headers={"X-Forwarded-For": "198.51.100.40"},
    )
    assert status == 201 and body["department"] == "gz-hrss"


async def test_identity_guesses_are_limited_per_address_across_accounts(
    services: Services, client: Any, fake_wechat: Any
) -> None:
    await prepare_residents(services)
    headers = {"X-Forwarded-For": "203.0.113.50"}
    serial = 0
    for _ in range(5):  # five accounts, four failures each, one address
        mp = await resident(client, fake_wechat)
        for _ in range(4):
            serial += 1
            status, _, _ = await mp.client.post(
                PREFIX + "/me/identity",
                json={"name": "张三", "id_number": id_number(serial)},
                headers=mp.headers | headers,
            )
            assert status == 403
    fresh = await resident(client, fake_wechat)
    status, body, response = await fresh.client.post(
        PREFIX + "/me/identity", json={"name": HUANG[0], "id_number": HUANG[1]}, headers=fresh.headers | headers
    )
    assert status == 429 and int(response.headers["Retry-After"]) > 0
    status, body, _ = await fresh.client.post(  # from another address the same request is checked
        PREFIX + "/me/identity",
        json={"name": HUANG[0], "id_number": HUANG[1]},
        headers=fresh.headers | {"X-Forwarded-For": "198.51.100.50"},
    )
    assert status == 200 and body["level"] == 3


async def test_a_trusted_proxys_https_makes_the_console_cookies_secure(console: str) -> None:
    headers = {"X-Forwarded-Proto": "https"}
    async with aiohttp.ClientSession() as session, session.get(console + "/console/login", headers=headers) as r:
        cookie = r.headers["Set-Cookie"]
    assert "yw_console_csrf=" in cookie and "Secure" in cookie
