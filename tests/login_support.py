"""Helpers for the login and throttle tests: a login form at one address, residents binding."""

from __future__ import annotations

import re
from typing import Any

import aiohttp

from tests.console_support import PASSWORD
from tests.support.miniprogram import PREFIX, MiniProgram
from yiwang.identity import id_check_character
from yiwang.runtime import Services

TOKEN = re.compile(r'name="_xsrf" value="([^"]+)"')
WRONG = "wrong-password-123"


class LoginForm:
    """The console's login form as a browser at one address submits it (cookies, CSRF token)."""

    def __init__(self, base: str, forwarded_for: str | None = None) -> None:
        self.base = base
        self.headers = {"Accept": "text/html"} | ({"X-Forwarded-For": forwarded_for} if forwarded_for else {})
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.token = ""

    async def __aenter__(self) -> LoginForm:
        async with self.session.get(self.base + "/console/login", headers=self.headers) as r:
            found = TOKEN.search(await r.text())
            assert found
            self.token = found.group(1)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.session.close()

    async def submit(self, path: str, form: dict[str, str], **headers: str) -> tuple[int, str, Any]:
        data = {**form, "_xsrf": self.token}
        async with self.session.post(
            self.base + path, data=data, headers=self.headers | headers, allow_redirects=False
        ) as r:
            text = await r.text()
            found = TOKEN.search(text)
            if found:
                self.token = found.group(1)
            return r.status, text, r.headers

    async def refresh(self, path: str) -> None:
        """Read the form token of ``path`` (after a login the session has its own)."""
        async with self.session.get(self.base + path, headers=self.headers) as r:
            found = TOKEN.search(await r.text())
            assert found
            self.token = found.group(1)

    async def login(self, username: str, password: str = PASSWORD, **headers: str) -> tuple[int, str, Any]:
        return await self.submit("/console/login", {"username": username, "password": password}, **headers)


async def checked_failures(services: Services) -> int:
    """Wrong passwords whose hash was actually verified (throttled ones are audited with another reason)."""
    return await services.store["audit"].count_documents(
        {"action": "console.login_failed", "detail.reason": "console.login_failed"}
    )


def id_number(serial: int) -> str:
    first17 = f"44010619900101{serial:03d}"
    return first17 + id_check_character(first17)


async def resident(client: Any, fake_wechat: Any) -> MiniProgram:
    mp = MiniProgram(client, fake_wechat)
    await mp.login()
    return mp


async def bind(mp: MiniProgram, name: str, number: str) -> tuple[int, Any, Any]:
    status, body, response = await mp.client.post(
        PREFIX + "/me/identity", json={"name": name, "id_number": number}, headers=mp.headers
    )
    return status, body, response
