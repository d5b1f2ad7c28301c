"""The console's base handler: session from a signed HttpOnly SameSite cookie,
CSRF on every unsafe request, role checks, friendly HTML errors (JSON under
/console/api/)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import quote

from web.base import HTMLHandler
from yiwang import audit, console_accounts
from yiwang.catalog import region_name
from yiwang.console_accounts import ConsoleUser, Place, Session
from yiwang.crypto import constant_time_equal, random_token
from yiwang.errors import Forbidden, InvalidInput, NotAuthenticated
from yiwang.store import Document
from yiwang.timeutil import SHANGHAI

COOKIE = "yw_console"
CSRF_COOKIE = "yw_console_csrf"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class ConsoleHandler(HTMLHandler):
    error_template = "console/error.html"
    login_required = True

    session: Session | None = None
    user: ConsoleUser | None = None
    _login_csrf: str | None = None
    place_label = ""

    async def prepare(self) -> None:  # type: ignore[override]
        super().prepare()
        self.session = None
        self.user = None
        self._login_csrf = None
        self.set_header("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
        raw = self.get_signed_cookie(COOKIE, max_age_days=1)
        store = self.services.store
        self.session = await console_accounts.load_session(store, raw.decode() if raw else None)
        if self.session is not None and self.session.stage == "ok":
            self.user = await console_accounts.get_user(store, self.session.user_id)
        self.place_label = await self._place_label() if self.user is not None else ""
        if self.login_required and self.user is None:
            if self.request.method in SAFE_METHODS and not self.is_api:
                self.redirect("/console/login?next=" + quote(self.request.uri or "/console/", safe=""))
                return
            raise NotAuthenticated("console.login_required", "请先登录管理后台")

    def body_received(self) -> None:
        # The body streams in after prepare (login checked first); a form's token is in it.
        if self.request.method not in SAFE_METHODS:
            self.check_csrf()

    @property
    def is_api(self) -> bool:
        return self.request.path.startswith("/console/api/")

    def _wants_html(self) -> bool:
        return not self.is_api

    # ---- CSRF: session-bound token once logged in, double-submit cookie before ----

    def csrf_token(self) -> str:
        if self.session is not None:
            return self.session.csrf
        if self._login_csrf is None:
            raw = self.get_signed_cookie(CSRF_COOKIE, max_age_days=1)
            self._login_csrf = raw.decode() if raw else random_token(24)
            if raw is None:
                self.set_signed_cookie(
                    CSRF_COOKIE, self._login_csrf, expires_days=None, httponly=True, samesite="Strict",
                    secure=self.request.protocol == "https", path="/console",
                )
        return self._login_csrf

    def check_csrf(self) -> None:
        sent = self.get_body_argument("_xsrf", None) if not self.is_api else None
        sent = sent or self.request.headers.get("X-XSRFToken") or self.request.headers.get("X-CSRFToken")
        if not sent:
            raise Forbidden("console.csrf_missing", "页面已过期或来源不明，请刷新页面后重试")
        if self.session is not None:
            expected: str | None = self.session.csrf
        else:
            raw = self.get_signed_cookie(CSRF_COOKIE, max_age_days=1)
            expected = raw.decode() if raw else None
        if not expected or not constant_time_equal(sent, expected):
            raise Forbidden("console.csrf_invalid", "页面已过期或来源不明，请刷新页面后重试")

    def check_xsrf_cookie(self) -> None:
        # Our own check runs once the body is in (check_csrf), whatever the global xsrf_cookies setting is.
        return None

    # ---- session cookie ------------------------------------------------------------

    def set_session_cookie(self, session: Session) -> None:
        self.set_signed_cookie(
            COOKIE,
            session.token,
            expires_days=None,
            httponly=True,
            samesite="Strict",
            secure=self.request.protocol == "https",
            path="/console",
        )
        self.session = session

    def clear_session_cookie(self) -> None:
        self.clear_cookie(COOKIE, path="/console")

    # ---- helpers -------------------------------------------------------------------

    @property
    def current(self) -> ConsoleUser:
        if self.user is None:
            raise NotAuthenticated("console.login_required", "请先登录管理后台")
        return self.user

    def actor(self) -> audit.Actor:
        user = self.current
        return audit.Actor("console_user", user.id, user.label)

    async def record(self, action: str, subject: str, before: Any = None, after: Any = None, **extra: Any) -> None:
        await audit.record(
            self.services.store,
            self.actor(),
            action,
            subject,
            channel="console",
            purpose="console change",
            detail={"before": before, "after": after, **extra},
        )

    async def halls(self) -> dict[str, Document]:
        return (await self.services.catalog.snapshot()).halls

    async def authorise(self, action: str, place: Place) -> None:
        console_accounts.authorise(self.current, action, place)

    def form(self, name: str, default: str = "") -> str:
        return self.get_body_argument(name, default) or default

    def template_context(self) -> dict[str, Any]:
        context = super().template_context()
        context.update(
            user=self.user,
            csrf_token=self.csrf_token(),
            nav=self.nav_items(),
            place_label=self.place_label,
        )
        return context

    # Each menu entry with the action its page is for (None: every account).
    NAV: tuple[tuple[str, str, str | None], ...] = (
        ("/console/", "概览", None),
        ("/console/notices", "公告与横幅", "content.view"),
        ("/console/halls", "大厅信息", "hall.edit"),
        ("/console/catalog", "事项目录", "catalog.view"),
        ("/console/scenarios", "场景导航", "scenario.edit"),
        ("/console/fleet", "设备", "fleet.view"),
        ("/console/calls", "终端呼叫", "fleet.view"),
        ("/console/figures", "数据统计", "figures.view"),
        ("/console/queue", "排队叫号", "queue.call"),
        ("/console/calendar", "节假日安排", "calendar.edit"),
        ("/console/account", "账号安全", None),
    )

    def nav_items(self) -> list[tuple[str, str]]:
        """Only the pages this account's role is for (the pages themselves still authorise)."""
        user = self.user
        if user is None:
            return []
        return [(href, label) for href, label, action in self.NAV
                if action is None or console_accounts.role_may(user, action)]  # fmt: skip

    async def _place_label(self) -> str:
        """Where the account works, for the header: 广东省, 广州市, a hall's or a department's name."""
        user = self.current
        place = user.home_place
        if place.kind in ("province", "city"):
            return region_name(place.code)
        snapshot = await self.services.catalog.snapshot()
        if place.kind == "hall":
            names = [str(snapshot.halls.get(code, {}).get("name", code)) for code in user.halls]
            return "、".join(names)
        return str(snapshot.departments.get(place.code, {}).get("name", place.code))


def parse_local_datetime(value: str, field: str) -> dt.datetime | None:
    """A datetime-local form value in Beijing time → aware UTC; empty → None."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput("console.datetime_invalid", "时间格式不正确", fields={field: "时间格式不正确"}) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=SHANGHAI)
    return parsed.astimezone(dt.UTC)


def local_input(value: dt.datetime | None) -> str:
    return value.astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M") if value else ""
