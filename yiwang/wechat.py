"""The WeChat mini-program API as Yiwang uses it.

* ``jscode2session`` and subscribe messages go through wechatpy 1.8 (synchronous
  ``requests``), always off the event loop via ``services.offload.run``.
* ``stable_token`` and ``getuserphonenumber`` (missing from wechatpy 1.8) go
  through aiohttp.
* The access token is cached in ``wechat_access_tokens`` (shared by every
  process) and in memory, and refreshed ``REFRESH_MARGIN`` before it expires.
  ``stable_token`` in normal mode returns the same token to every caller, so
  processes refreshing at once do not invalidate each other. A forced refresh
  cancels the token every other process holds (and WeChat allows 20 a day,
  30 s apart), so after 40001/42001 a process first re-reads the shared token,
  then asks in normal mode, and forces only when both give back the token that
  failed, and only after claiming a shared lease that one process in 30 s gets
  (:meth:`WeChatGateway.recover_token`).

WeChat errors become domain errors with a clear code: invalid code (40029) is
the caller's fault (400), a user WeChat marks as risky (40226) is told so
(403), rate limiting (45011) is 429, a busy or unreachable WeChat (-1, 5xx,
timeouts) is 503 with ``retry_after``. Errors that a retry cannot mend
(``PERMANENT``: bad arguments, unknown template, bad page, not subscribed) are
not retried by the outbox.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp

from yiwang.errors import Forbidden, InvalidInput, RateLimited, UpstreamUnavailable, YiwangError
from yiwang.timeutil import as_utc, utcnow

if TYPE_CHECKING:
    from yiwang.runtime import Services

log = logging.getLogger(__name__)

REFRESH_MARGIN = dt.timedelta(minutes=5)
TIMEOUT_SECONDS = 5.0
RETRY_AFTER_BUSY = 5
RETRY_AFTER_LIMITED = 60
# errcodes meaning "the access token is bad": refresh once and retry.
TOKEN_ERRORS = frozenset({40001, 40014, 42001})
# errcodes meaning the user has not (or no longer) subscribed: do not retry.
NOT_SUBSCRIBED = frozenset({43101, 43107})
RISKY_USER = 40226
# errcodes a retry cannot mend: argument invalid, invalid template_id, invalid page, not subscribed, risky user.
PERMANENT = frozenset({47003, 40037, 41030, RISKY_USER}) | NOT_SUBSCRIBED
# WeChat allows a forced stable_token refresh 20 times a day, at least 30 s apart, for the whole appid.
FORCE_REFRESH_INTERVAL = dt.timedelta(seconds=30)


@dataclass(frozen=True)
class PhoneNumber:
    """A number as WeChat gives it: without the country code, and the code apart (86 for mainland China)."""

    number: str
    country_code: str


@dataclass(frozen=True)
class WxSession:
    openid: str
    unionid: str | None
    session_key: str


class WeChatError(UpstreamUnavailable):
    """A WeChat failure; ``errcode`` tells callers (the outbox) what happened."""

    def __init__(self, code: str, message: str, errcode: int | None, *, retry_after: int | None = None) -> None:
        super().__init__(code, message, detail={"retry_after": retry_after} if retry_after else None)
        self.errcode = errcode


def map_errcode(errcode: int | None, *, login: bool = False) -> YiwangError:
    """The domain error for a WeChat errcode (None: HTTP or network failure)."""
    if errcode == 40029 or (login and errcode == 40163):
        return InvalidInput("wechat.invalid_code", "微信登录凭证无效或已使用，请重新登录")
    if errcode == RISKY_USER:
        return Forbidden(
            "wechat.risky_user",
            "您的微信账号存在安全风险，暂时无法使用。请在微信“我 > 设置 > 账号与安全 > 微信安全中心”处理后再试",
        )
    if errcode == 45011:
        return RateLimited(
            "wechat.rate_limited", "微信登录过于频繁，请稍后再试", detail={"retry_after": RETRY_AFTER_LIMITED}
        )
    if errcode is None or errcode == -1:
        return WeChatError("wechat.busy", "微信服务繁忙，请稍后再试", errcode, retry_after=RETRY_AFTER_BUSY)
    return WeChatError("wechat.error", "微信服务返回错误，请稍后再试", errcode, retry_after=RETRY_AFTER_BUSY)


class WeChatGateway:
    """One per process (a resource started at boot); owns the aiohttp session."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._session: aiohttp.ClientSession | None = None
        self._token: tuple[str, dt.datetime] | None = None
        self._lock = asyncio.Lock()

    @property
    def appid(self) -> str:
        return self._services.config.wechat_appid

    @property
    def base(self) -> str:
        return self._services.config.wechat_api_base.rstrip("/")

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS))
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ---- wechatpy, off the loop -----------------------------------------

    def _client(self, access_token: str | None = None) -> Any:
        from wechatpy import WeChatClient

        client = WeChatClient(
            self.appid,
            self._services.config.wechat_secret,
            access_token=access_token,
            timeout=TIMEOUT_SECONDS,
            auto_retry=False,
        )
        client.API_BASE_URL = self.base + "/cgi-bin/"
        client.wxa.API_BASE_URL = self.base + "/"
        return client

    def _code_to_session_blocking(self, js_code: str) -> dict[str, Any]:
        import requests
        from wechatpy.exceptions import WeChatClientException

        client = self._client()
        try:
            # Same request as WeChatWxa.code_to_session; the explicit None keeps
            # wechatpy from fetching an access token jscode2session never needs.
            result: dict[str, Any] = client.wxa._get(
                "sns/jscode2session",
                params={
                    "appid": self.appid,
                    "secret": self._services.config.wechat_secret,
                    "js_code": js_code,
                    "grant_type": "authorization_code",
                    "access_token": None,
                },
            )
        except WeChatClientException as exc:
            return {"errcode": exc.errcode}
        except requests.RequestException:
            return {"errcode": None}
        return result

    async def code_to_session(self, js_code: str) -> WxSession:
        if not isinstance(js_code, str) or not 1 <= len(js_code) <= 128:
            raise InvalidInput("wechat.invalid_code", "微信登录凭证无效", fields={"code": "缺少 wx.login 的 code"})
        result = await self._services.offload.run(self._code_to_session_blocking, js_code)
        if "openid" not in result or "session_key" not in result:
            raise map_errcode(result.get("errcode"), login=True)
        return WxSession(result["openid"], result.get("unionid"), result["session_key"])

    def _send_subscribe_blocking(
        self, token: str, openid: str, template_id: str, data: dict[str, Any], page: str | None
    ) -> int | None:
        """0 on success, else the errcode (None for network/HTTP failure)."""
        import requests
        from wechatpy.exceptions import WeChatClientException

        client = self._client(token)
        body: dict[str, Any] = {
            "touser": openid,
            "template_id": template_id,
            "data": data,
            "miniprogram_state": self._services.config.wechat_miniprogram_state,
            "lang": self._services.config.wechat_lang,
        }
        if page:
            body["page"] = page
        try:
            # wechatpy's send_subscribe_message sends neither miniprogram_state nor lang.
            client.wxa._post("cgi-bin/message/subscribe/send", data=body)
        except WeChatClientException as exc:
            return int(exc.errcode) if exc.errcode is not None else None
        except requests.RequestException:
            return None
        return 0

    async def send_subscribe(self, openid: str, template_id: str, data: dict[str, Any], page: str | None) -> None:
        """Send one subscribe message; raises WeChatError with the errcode on failure."""
        token = await self.access_token()
        for attempt in range(2):
            errcode = await self._services.offload.run(
                self._send_subscribe_blocking, token, openid, template_id, data, page
            )
            if errcode == 0:
                return
            if errcode in TOKEN_ERRORS and attempt == 0:
                token = await self.recover_token(token)
                continue
            error = map_errcode(errcode)
            if isinstance(error, WeChatError):
                raise error
            raise WeChatError("wechat.error", error.message, errcode)

    # ---- aiohttp: stable_token, getuserphonenumber ---------------------

    async def _post_json(self, path: str, body: dict[str, Any], params: dict[str, str] | None = None) -> dict[str, Any]:
        try:
            async with self._http().post(self.base + path, json=body, params=params) as response:
                if response.status >= 400:
                    return {"errcode": None}
                data = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return {"errcode": None}
        return data if isinstance(data, dict) else {"errcode": None}

    def _remember(self, token: str, expires_at: dt.datetime) -> str:
        self._token = (token, expires_at)
        return token

    async def _shared(self) -> tuple[str, dt.datetime] | None:
        cached = await self._services.store["wechat_access_tokens"].find_one({"_id": self.appid})
        if cached and cached.get("token"):
            return cached["token"], as_utc(cached["expires_at"])
        return None

    async def _stable_token(self, *, force: bool) -> str:
        now = utcnow()
        result = await self._post_json(
            "/cgi-bin/stable_token",
            {
                "grant_type": "client_credential",
                "appid": self.appid,
                "secret": self._services.config.wechat_secret,
                "force_refresh": force,
            },
        )
        if "access_token" not in result:
            raise map_errcode(result.get("errcode"))
        expires_at = now + dt.timedelta(seconds=int(result.get("expires_in", 7200)))
        await self._services.store["wechat_access_tokens"].update_one(
            {"_id": self.appid},
            {"$set": {"token": result["access_token"], "expires_at": expires_at, "refreshed_at": now}},
            upsert=True,
        )
        log.info("wechat access token fetched", extra={"fields": {"forced": force}})
        return self._remember(result["access_token"], expires_at)

    async def access_token(self) -> str:
        """The cached access token, fetched in normal mode shortly before it expires."""
        now = utcnow()
        if self._token and self._token[1] - REFRESH_MARGIN > now:
            return self._token[0]
        async with self._lock:
            now = utcnow()
            if self._token and self._token[1] - REFRESH_MARGIN > now:
                return self._token[0]
            shared = await self._shared()
            if shared and shared[1] - REFRESH_MARGIN > now:
                return self._remember(*shared)
            return await self._stable_token(force=False)

    async def recover_token(self, failed: str) -> str:
        """A token WeChat refused (40001/42001): another process may already hold its successor.

        Re-read the shared token; else ask in normal mode; force a refresh only
        when both give back the refused token, and only under the shared lease.
        """
        async with self._lock:
            shared = await self._shared()
            if shared and shared[0] != failed:
                return self._remember(*shared)
            fresh = await self._stable_token(force=False)
            if fresh != failed:
                return fresh
            now = utcnow()
            leased = await self._services.store["wechat_access_tokens"].find_one_and_update(
                {
                    "_id": self.appid,
                    "token": failed,
                    "$or": [{"forced_at": None}, {"forced_at": {"$lt": now - FORCE_REFRESH_INTERVAL}}],
                },
                {"$set": {"forced_at": now}},
            )
            if leased is None:  # another process forced (or is forcing) a refresh: use what it got
                shared = await self._shared()
                if shared and shared[0] != failed:
                    return self._remember(*shared)
                raise WeChatError("wechat.busy", "微信服务繁忙，请稍后再试", None, retry_after=RETRY_AFTER_BUSY)
            return await self._stable_token(force=True)

    async def msg_sec_check(self, openid: str, content: str, scene: int) -> str:
        """msgSecCheck v2: ``pass``, ``review`` or ``risky`` for ``content`` written by ``openid``."""
        token = await self.access_token()
        body = {"content": content, "version": 2, "scene": scene, "openid": openid}
        for attempt in range(2):
            result = await self._post_json("/wxa/msg_sec_check", body, {"access_token": token})
            errcode = result.get("errcode", 0)
            verdict = result.get("result")
            if errcode == 0 and isinstance(verdict, dict) and verdict.get("suggest") in ("pass", "review", "risky"):
                return str(verdict["suggest"])
            if errcode in TOKEN_ERRORS and attempt == 0:
                token = await self.recover_token(token)
                continue
            error = map_errcode(errcode)
            raise error if isinstance(error, WeChatError) else WeChatError("wechat.error", error.message, errcode)
        raise map_errcode(None)

    async def media_check_async(self, openid: str, media_url: str, scene: int) -> str:
        """mediaCheckAsync v2 for an image WeChat fetches from ``media_url``; returns the ``trace_id``
        that WeChat's ``wxa_media_check`` push (``/api/wechat/push``) will carry with the verdict."""
        token = await self.access_token()
        body = {"media_url": media_url, "media_type": 2, "version": 2, "scene": scene, "openid": openid}
        for attempt in range(2):
            result = await self._post_json("/wxa/media_check_async", body, {"access_token": token})
            errcode = result.get("errcode", 0)
            trace_id = result.get("trace_id")
            if errcode == 0 and isinstance(trace_id, str) and 0 < len(trace_id) <= 128:
                return trace_id
            if errcode in TOKEN_ERRORS and attempt == 0:
                token = await self.recover_token(token)
                continue
            error = map_errcode(errcode)
            raise error if isinstance(error, WeChatError) else WeChatError("wechat.error", error.message, errcode)
        raise map_errcode(None)

    async def account_templates(self) -> list[dict[str, Any]]:
        """The account's own subscribe-message templates (``getTemplateList``)."""
        token = await self.access_token()
        for attempt in range(2):
            try:
                async with self._http().get(
                    self.base + "/wxaapi/newtmpl/gettemplate", params={"access_token": token}
                ) as response:
                    raw = await response.json(content_type=None) if response.status < 400 else None
            except (aiohttp.ClientError, TimeoutError, ValueError):
                raw = None
            result: dict[str, Any] = raw if isinstance(raw, dict) else {"errcode": None}
            errcode = result.get("errcode", 0)
            listed = result.get("data")
            if errcode == 0 and isinstance(listed, list):
                return [t for t in listed if isinstance(t, dict)]
            if errcode in TOKEN_ERRORS and attempt == 0:
                token = await self.recover_token(token)
                continue
            error = map_errcode(errcode)
            raise error if isinstance(error, WeChatError) else WeChatError("wechat.error", error.message, errcode)
        raise map_errcode(None)

    async def phone_number(self, code: str) -> PhoneNumber:
        """Exchange a ``getPhoneNumber`` code for the pure phone number."""
        if not isinstance(code, str) or not 1 <= len(code) <= 128:
            raise InvalidInput(
                "wechat.invalid_code", "手机号授权凭证无效", fields={"code": "缺少 getPhoneNumber 的 code"}
            )
        token = await self.access_token()
        for attempt in range(2):
            result = await self._post_json("/wxa/business/getuserphonenumber", {"code": code}, {"access_token": token})
            errcode = result.get("errcode", 0)
            if errcode == 0 and isinstance(result.get("phone_info"), dict):
                return self._checked_phone(result["phone_info"])
            if errcode in TOKEN_ERRORS and attempt == 0:
                token = await self.recover_token(token)
                continue
            raise map_errcode(errcode, login=True)
        raise map_errcode(None)

    def _checked_phone(self, info: dict[str, Any]) -> PhoneNumber:
        """The number, only if WeChat's watermark says it was issued to this mini-program."""
        watermark = info.get("watermark")
        if not isinstance(watermark, dict) or watermark.get("appid") != self.appid:
            log.warning("phone number watermark does not name this appid")
            raise InvalidInput("wechat.phone_foreign", "手机号授权凭证不属于本小程序，请重新授权")
        phone, country = info.get("purePhoneNumber"), info.get("countryCode")
        if not isinstance(phone, str) or not isinstance(country, str) or not country.isdigit():
            raise map_errcode(None)
        return PhoneNumber(phone, country)


def gateway(services: Services) -> WeChatGateway:
    """The process's gateway (one aiohttp session, started at boot)."""
    return services.resources.get(WeChatGateway)
