"""A local fake of the WeChat HTTP API (the parts Yiwang calls), on loopback.

It follows the real contract: errcode/errmsg bodies, single-use login codes
that live 5 minutes, access tokens with expiry. Tests script it through
``FakeWeChat`` (add codes, force errors) and read what it received.
"""

from __future__ import annotations

import re
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
    # stable_token: the one current token (normal mode returns it while valid), forced refreshes made
    stable: str | None = None
    force_refreshes: list[float] = field(default_factory=list)
    # the account's subscribe templates (getTemplateList): priTmplId → content with {{keyword.DATA}}
    templates: dict[str, str] = field(default_factory=lambda: {
        "yiwang-application-status": "事项名称{{thing1.DATA}}\n办理状态{{phrase2.DATA}}\n"
                                     "受理编号{{character_string3.DATA}}\n更新时间{{time4.DATA}}",
        "yiwang-evaluation-invite": "事项名称{{thing1.DATA}}\n温馨提示{{thing2.DATA}}",
        "yiwang-certificate-expiry": "证照名称{{thing1.DATA}}\n有效期至{{date2.DATA}}\n温馨提示{{thing3.DATA}}",
        "yiwang-identity-rebound": "变更事项{{thing1.DATA}}\n变更时间{{time2.DATA}}\n温馨提示{{thing3.DATA}}",
        "yiwang-queue-near": "排队号码{{character_string1.DATA}}\n办理地点{{thing2.DATA}}\n"
                             "前面人数{{number3.DATA}}\n温馨提示{{thing4.DATA}}",
    })  # fmt: skip
    # msgSecCheck: words that make text risky / sent for review, and what was checked
    risky_words: set[str] = field(default_factory=lambda: {"违禁词"})
    review_words: set[str] = field(default_factory=lambda: {"待审词"})
    checked_texts: list[dict[str, Any]] = field(default_factory=list)
    media_jobs: list[dict[str, Any]] = field(default_factory=list)  # mediaCheckAsync requests, with trace_id
    phone_appid: str | None = None  # the appid the phone watermark names (default: this appid)
    phone_country: str = "86"

    def login_code(self, openid: str | None = None, unionid: str | None = None) -> str:
        """What `wx.login` gives the mini-program: a fresh single-use code."""
        code = secrets.token_hex(16)
        self.codes[code] = LoginCode(openid or "o" + secrets.token_hex(13), unionid)
        return code

    def phone_code(self, phone: str) -> str:
        code = secrets.token_hex(16)
        self.phone_codes[code] = phone
        return code

    def revoke(self, token: str) -> None:
        """As if the token had been cancelled (expired, or forced out elsewhere)."""
        self.access_tokens.pop(token, None)

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
        if request.path == "/cgi-bin/stable_token":
            return self._stable_token(bool(data.get("force_refresh")))
        token = "AT_" + secrets.token_urlsafe(24)
        self.access_tokens[token] = time.monotonic() + self.token_ttl
        return web.json_response({"access_token": token, "expires_in": self.token_ttl})

    def _stable_token(self, force: bool) -> web.Response:
        """Normal mode returns the current token while it is valid (a successor in its last 5 minutes);
        force mode cancels it and issues a new one, at most 20 times a day and 30 s apart (then 45009 /
        45011)."""
        now = time.monotonic()
        if force:
            if len(self.force_refreshes) >= 20:
                return web.json_response({"errcode": 45009, "errmsg": "reach max api daily quota limit"})
            if self.force_refreshes and now - self.force_refreshes[-1] < 30:
                return web.json_response({"errcode": 45011, "errmsg": "api minute-quota reach limit"})
            self.force_refreshes.append(now)
            if self.stable:
                self.revoke(self.stable)
        elif self.stable and self.access_tokens.get(self.stable, 0) - now > 300:
            # Normal mode: the same token while it has more than its last 5 minutes; then a successor,
            # the old one staying valid until it lapses.
            return web.json_response(
                {"access_token": self.stable, "expires_in": int(self.access_tokens[self.stable] - now)}
            )
        self.stable = "ST_" + secrets.token_urlsafe(24)
        self.access_tokens[self.stable] = now + self.token_ttl
        return web.json_response({"access_token": self.stable, "expires_in": self.token_ttl})

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
                    "phoneNumber": phone if self.phone_country == "86" else f"+{self.phone_country} {phone}",
                    "purePhoneNumber": phone,
                    "countryCode": self.phone_country,
                    "watermark": {"timestamp": int(time.time()), "appid": self.phone_appid or self.appid},
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
        content = self.templates.get(data["template_id"])
        if content is None:
            return web.json_response({"errcode": 40037, "errmsg": "invalid template_id"})
        keywords = set(re.findall(r"\{\{([a-z_]+\d+)\.DATA\}\}", content))
        if set(data.get("data") or {}) != keywords:
            return web.json_response({"errcode": 47003, "errmsg": "argument invalid! data.keyword"})
        if data.get("miniprogram_state", "formal") not in ("formal", "trial", "developer"):
            return web.json_response({"errcode": 47003, "errmsg": "argument invalid! miniprogram_state"})
        if data.get("lang", "zh_CN") not in ("zh_CN", "en_US", "zh_HK", "zh_TW"):
            return web.json_response({"errcode": 47003, "errmsg": "argument invalid! lang"})
        self.sent_messages.append(data)
        return web.json_response({"errcode": 0, "errmsg": "ok", "msgid": len(self.sent_messages)})

    async def msg_sec_check(self, request: web.Request) -> web.Response:
        self.calls.append("msg_sec_check")
        forced = self._forced(request.path)
        if forced:
            return forced
        if not self._valid_token(request.query.get("access_token")):
            return web.json_response({"errcode": 40001, "errmsg": "invalid credential"})
        data = await request.json()
        if data.get("version") != 2 or data.get("scene") not in (1, 2, 3, 4) or not data.get("openid"):
            return web.json_response({"errcode": 47001, "errmsg": "data format error"})
        self.checked_texts.append(data)
        content = str(data.get("content", ""))
        suggest = "risky" if any(w in content for w in self.risky_words) else (
            "review" if any(w in content for w in self.review_words) else "pass"
        )
        label = 100 if suggest == "pass" else 20001
        return web.json_response({"errcode": 0, "errmsg": "ok", "result": {"suggest": suggest, "label": label},
                                  "detail": [], "trace_id": secrets.token_hex(8)})  # fmt: skip

    async def media_check_async(self, request: web.Request) -> web.Response:
        """mediaCheckAsync v2: accepts the job and answers a trace_id; the verdict comes later, as a push
        the test sends (``media_jobs`` holds what was asked, the test fetches ``media_url`` as WeChat would)."""
        self.calls.append("media_check_async")
        forced = self._forced(request.path)
        if forced:
            return forced
        if not self._valid_token(request.query.get("access_token")):
            return web.json_response({"errcode": 40001, "errmsg": "invalid credential"})
        data = await request.json()
        if (data.get("version") != 2 or data.get("media_type") not in (1, 2) or data.get("scene") not in (1, 2, 3, 4)
                or not data.get("openid") or not str(data.get("media_url", "")).startswith(("http://", "https://"))):
            return web.json_response({"errcode": 47001, "errmsg": "data format error"})
        trace_id = secrets.token_hex(12)
        self.media_jobs.append({**data, "trace_id": trace_id})
        return web.json_response({"errcode": 0, "errmsg": "ok", "trace_id": trace_id})

    async def get_templates(self, request: web.Request) -> web.Response:
        self.calls.append("gettemplate")
        forced = self._forced(request.path)
        if forced:
            return forced
        if not self._valid_token(request.query.get("access_token")):
            return web.json_response({"errcode": 40001, "errmsg": "invalid credential"})
        data = [{"priTmplId": t, "title": t, "content": content, "type": 2} for t, content in self.templates.items()]
        return web.json_response({"errcode": 0, "errmsg": "ok", "data": data})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/sns/jscode2session", self.jscode2session)
        app.router.add_get("/cgi-bin/token", self.token)
        app.router.add_post("/cgi-bin/stable_token", self.token)
        app.router.add_post("/wxa/business/getuserphonenumber", self.phone_number)
        app.router.add_post("/cgi-bin/message/subscribe/send", self.subscribe_send)
        app.router.add_get("/wxaapi/newtmpl/gettemplate", self.get_templates)
        app.router.add_post("/wxa/msg_sec_check", self.msg_sec_check)
        app.router.add_post("/wxa/media_check_async", self.media_check_async)
        return app
