"""A local fake of the WeChat HTTP API (the parts Yiwang calls), on loopback.

It follows the real contract: errcode/errmsg bodies, single-use login codes
that live 5 minutes, access tokens with expiry. Tests script it through
``FakeWeChat`` (add codes, force errors) and read what it received.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class LoginCode:
    openid: str
    unionid: str | None
    created: float = field(default_factory=time.monotonic)
    used: bool = False


@dataclass
class FakeWeChat:
    appid: str
    secret: str
    codes: dict[str, LoginCode] = field(default_factory=dict)
    phone_codes: dict[str, str] = field(default_factory=dict)
    access_tokens: dict[str, float] = field(default_factory=dict)
    sent_messages: list[dict[str, Any]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    # errcode to answer on the next call of a path, e.g. {"/sns/jscode2session": [45011]}
    forced_errors: dict[str, list[int]] = field(default_factory=dict)
    token_ttl: int = 7200
    url: str = ""

    def login_code(self, openid: str | None = None, unionid: str | None = None) -> str:
        """What `wx.login` gives the mini-program: a fresh single-use code."""
        code = secrets.token_hex(16)
        self.codes[code] = LoginCode(openid or "o" + secrets.token_hex(13), unionid)
        return code

    def phone_code(self, phone: str) -> str:
        code = secrets.token_hex(16)
        self.phone_codes[code] = phone
        return code

    def fail_next(self, path: str, errcode: int) -> None:
        self.forced_errors.setdefault(path, []).append(errcode)

    def _forced(self, path: str) -> web.Response | None:
        queue = self.forced_errors.get(path)
        if queue:
            errcode = queue.pop(0)
            if errcode == 503:
                return web.Response(status=503, text="service unavailable")
            return web.json_response({"errcode": errcode, "errmsg": f"forced error {errcode}"})
        return None

    def _valid_token(self, token: str | None) -> bool:
        expiry = self.access_tokens.get(token or "")
        return expiry is not None and expiry > time.monotonic()

    # ---- handlers ---------------------------------------------------------

    async def jscode2session(self, request: web.Request) -> web.Response:
        self.calls.append("jscode2session")
        forced = self._forced("/sns/jscode2session")
        if forced:
            return forced
        q = request.query
        if q.get("appid") != self.appid or q.get("secret") != self.secret:
            return web.json_response({"errcode": 40013, "errmsg": "invalid appid"})
        if q.get("grant_type") != "authorization_code":
            return web.json_response({"errcode": 40002, "errmsg": "invalid grant_type"})
        login = self.codes.get(q.get("js_code", ""))
        if login is None or login.used or time.monotonic() - login.created > 300:
            return web.json_response({"errcode": 40029, "errmsg": "invalid code"})
        login.used = True
        body: dict[str, Any] = {"openid": login.openid, "session_key": secrets.token_urlsafe(16)}
        if login.unionid:
            body["unionid"] = login.unionid
        return web.json_response(body)

    async def token(self, request: web.Request) -> web.Response:
        self.calls.append("token")
        forced = self._forced(request.path)
        if forced:
            return forced
        if request.method == "POST":
            data = await request.json()
        else:
            data = dict(request.query)
        if data.get("appid") != self.appid or data.get("secret") != self.secret:
            return web.json_response({"errcode": 40013, "errmsg": "invalid appid"})
        token = "AT_" + secrets.token_urlsafe(24)
        self.access_tokens[token] = time.monotonic() + self.token_ttl
        return web.json_response({"access_token": token, "expires_in": self.token_ttl})

    async def phone_number(self, request: web.Request) -> web.Response:
        self.calls.append("getuserphonenumber")
        forced = self._forced(request.path)
        if forced:
            return forced
        if not self._valid_token(request.query.get("access_token")):
            return web.json_response({"errcode": 40001, "errmsg": "invalid credential"})
        data = await request.json()
        phone = self.phone_codes.pop(data.get("code", ""), None)
        if phone is None:
            return web.json_response({"errcode": 40029, "errmsg": "invalid code"})
        return web.json_response(
            {
                "errcode": 0,
                "errmsg": "ok",
                "phone_info": {
                    "phoneNumber": phone,
                    "purePhoneNumber": phone,
                    "countryCode": "86",
                    "watermark": {"timestamp": int(time.time()), "appid": self.appid},
                },
            }
        )

    async def subscribe_send(self, request: web.Request) -> web.Response:
        self.calls.append("subscribe.send")
        forced = self._forced(request.path)
        if forced:
            return forced
        if not self._valid_token(request.query.get("access_token")):
            return web.json_response({"errcode": 40001, "errmsg": "invalid credential"})
        data = await request.json()
        if not data.get("touser") or not data.get("template_id"):
            return web.json_response({"errcode": 47003, "errmsg": "argument invalid"})
        self.sent_messages.append(data)
        return web.json_response({"errcode": 0, "errmsg": "ok", "msgid": len(self.sent_messages)})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/sns/jscode2session", self.jscode2session)
        app.router.add_get("/cgi-bin/token", self.token)
        app.router.add_post("/cgi-bin/stable_token", self.token)
        app.router.add_post("/wxa/business/getuserphonenumber", self.phone_number)
        app.router.add_post("/cgi-bin/message/subscribe/send", self.subscribe_send)
        return app
