"""Helpers for the console tests: accounts, a cookie-keeping client, form tokens."""

from __future__ import annotations

import re
from typing import Any

import aiohttp

from yiwang import console_accounts
from yiwang.catalog import load_catalog_files
from yiwang.runtime import Services

PASSWORD = "correct-horse-battery-9"
TOKEN = re.compile(r'name="_xsrf" value="([^"]+)"')


async def prepare(services: Services) -> None:
    await load_catalog_files(services.store)
    services.catalog.invalidate()
    for username, role, scope in (
        ("th_hall", "hall_manager", {"halls": ["gz-th-center"]}),
        ("yx_hall", "hall_manager", {"halls": ["gz-yx-center"]}),
        ("gz_admin", "city", {"region": "440100"}),
        ("gd_admin", "province", {"region": "440000"}),
    ):
        await services.store["console_users"].delete_one({"username": username})  # demo seed may have made it
        await console_accounts.create_user(
            services.store, services.offload, username=username, password=PASSWORD, role=role, scope=scope
        )


class Browserless:
    """An HTTP client that keeps cookies (also for 127.0.0.1) and reads form tokens."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.token = ""

    async def close(self) -> None:
        await self.session.close()

    async def get(self, path: str, **kwargs: Any) -> tuple[int, str]:
        kwargs.setdefault("headers", {"Accept": "text/html"})
        follow = kwargs.pop("allow_redirects", True)
        async with self.session.get(self.base + path, allow_redirects=follow, **kwargs) as r:
            text = await r.text()
            found = TOKEN.search(text)
            if found:
                self.token = found.group(1)
            return r.status, text

    async def post(
        self, path: str, data: dict[str, str], *, token: str | None = None, **kwargs: Any
    ) -> tuple[int, str]:
        form = dict(data)
        if token is None:
            token = self.token
        if token:
            form["_xsrf"] = token
        follow = kwargs.pop("allow_redirects", True)
        headers = {"Accept": "text/html"}
        url = self.base + path
        async with self.session.post(url, data=form, headers=headers, allow_redirects=follow, **kwargs) as r:
            text = await r.text()
            found = TOKEN.search(text)
            if found:
                self.token = found.group(1)
            return r.status, text

    async def login(self, username: str, password: str = PASSWORD) -> tuple[int, str]:
        await self.get("/console/login")
        return await self.post("/console/login", {"username": username, "password": password})

    def cookie(self, name: str) -> str | None:
        for cookie in self.session.cookie_jar:
            if cookie.key == name:
                return cookie.value
        return None
