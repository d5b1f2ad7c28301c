"""Login (password, then TOTP when enabled), logout, second-factor enrolment."""

from __future__ import annotations

from markupsafe import Markup

from console.base import ConsoleHandler
from yiwang import audit, console_accounts
from yiwang.errors import InvalidInput, NotAuthenticated, RateLimited


def _safe_next(value: str | None) -> str:
    # Only paths inside the console: no open redirects, no header injection (refused before any write).
    if value and any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise InvalidInput("console.next_invalid", "跳转地址无效")
    if value and value.startswith("/console/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/console/"


class LoginHandler(ConsoleHandler):
    login_required = False

    def get(self) -> None:
        self.render_page("console/login.html", error=None, username="", next=_safe_next(self.get_argument("next", "")))

    async def post(self) -> None:
        store = self.services.store
        username = self.form("username").strip()
        next_url = _safe_next(self.form("next"))
        address = self.client_address
        try:
            user = await console_accounts.verify_password(
                store, self.services.offload, username, self.form("password"), address,
                refuse_demo_passwords=self.services.config.production,
            )  # fmt: skip
        except (NotAuthenticated, InvalidInput, RateLimited) as error:
            await audit.record(
                store, audit.Actor("console_user", "anonymous", "login"), "console.login_failed",
                "console_user:" + username.lower()[:40], channel="console",
                detail={"reason": error.code, "address": address},
            )
            self.set_error_status(error)
            self.render_page("console/login.html", error=error.message, username=username, next=next_url)
            return
        # A new session on every login; whatever session cookie came in is dropped (no fixation).
        if self.session is not None:
            await console_accounts.end_session(store, self.session.token)
        session = await console_accounts.start_session(store, user)
        self.set_session_cookie(session)
        await audit.record(
            store, audit.Actor("console_user", user.id, user.label), "console.login", "console_user:" + user.id,
            channel="console", detail={"stage": session.stage, "address": address},
        )
        self.redirect("/console/login/totp?next=" + next_url if session.stage == "totp" else next_url)


class TotpLoginHandler(ConsoleHandler):
    login_required = False

    def get(self) -> None:
        if self.session is None or self.session.stage != "totp":
            self.redirect("/console/login")
            return
        self.render_page("console/totp.html", error=None, next=_safe_next(self.get_argument("next", "")))

    async def post(self) -> None:
        if self.session is None or self.session.stage != "totp":
            raise NotAuthenticated("console.login_required", "请先输入用户名和密码")
        store = self.services.store
        next_url = _safe_next(self.form("next"))
        try:
            await console_accounts.verify_totp(
                store, self.services.cipher, self.session.user_id, self.form("code"), self.client_address
            )
        except (NotAuthenticated, InvalidInput, RateLimited) as error:
            self.set_error_status(error)
            self.render_page("console/totp.html", error=error.message, next=next_url)
            return
        session = await console_accounts.promote_session(store, self.session)
        self.set_session_cookie(session)
        self.redirect(next_url)


class LogoutHandler(ConsoleHandler):
    login_required = False

    async def post(self) -> None:
        if self.session is not None:
            await console_accounts.end_session(self.services.store, self.session.token)
        self.clear_session_cookie()
        self.redirect("/console/login")


class AccountHandler(ConsoleHandler):
    """Second factor: show a new secret (kept in a hidden field until confirmed), confirm with a code."""

    def get(self) -> None:
        secret = console_accounts.new_totp_secret()
        self.render_page(
            "console/account.html", secret=secret, qr=self.totp_qr(secret), error=None, done=False,
        )

    def totp_qr(self, secret: str) -> Markup:
        # segno's own SVG of the provisioning URI: no user-supplied markup in it.
        return Markup(console_accounts.totp_qr_svg(secret, self.current.username))

    async def post(self) -> None:
        secret = self.form("secret")
        if len(secret) != 32 or not secret.isalnum():
            raise InvalidInput("console.totp_secret_invalid", "密钥无效，请刷新页面重试")
        try:
            await console_accounts.enable_totp(
                self.services.store, self.services.cipher, self.current, secret, self.form("code")
            )
        except InvalidInput as error:
            self.set_error_status(error)
            self.render_page(
                "console/account.html", secret=secret, qr=self.totp_qr(secret), error=error.message, done=False,
            )
            return
        await self.record("console.totp_enabled", "console_user:" + self.current.id, {"totp": False}, {"totp": True})
        self.render_page("console/account.html", secret="", qr="", error=None, done=True)
