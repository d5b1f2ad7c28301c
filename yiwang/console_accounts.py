"""Console accounts: argon2 passwords, throttled logins, server-side sessions,
optional TOTP, and roles scoped to a place.

Roles and what they may touch (``authorise(user, action, place)``):

- ``province`` — everything, anywhere; the only role that edits an item's standard.
- ``city`` — its city (``scope.region``, e.g. ``440100``) and every hall in it;
  local implementation of catalogue items.
- ``hall_manager`` — only its hall(s) (``scope.halls``): content, hall info, fleet, figures.
- ``agent_supervisor`` — reads its halls' content and figures.
- ``department_staff`` — reads figures (its department's items).
- ``window`` — a clerk at a window of its hall(s) (``scope.halls``): calls queue tickets.

Sessions: the browser holds a random token (in a signed, HttpOnly, SameSite
cookie); the store keeps only its SM3 digest in ``console_sessions`` along with
the session's CSRF token. A login always starts a new session (no fixation).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from yiwang import audit, throttle
from yiwang.crypto import FieldCipher, random_token, token_digest
from yiwang.errors import Conflict, Forbidden, InvalidInput, NotAuthenticated, NotFound, RateLimited
from yiwang.rendering import qr_svg
from yiwang.store import Document, Store
from yiwang.timeutil import utcnow

if TYPE_CHECKING:
    from yiwang.blocking import Offloader
    from yiwang.runtime import Services

ROLES = ("province", "city", "hall_manager", "agent_supervisor", "department_staff", "window")
ROLE_LABELS: Mapping[str, str] = {
    "province": "省级管理员", "city": "市级管理员", "hall_manager": "大厅管理员",
    "agent_supervisor": "帮办代办主管", "department_staff": "部门工作人员", "window": "窗口工作人员",
}  # fmt: skip
SESSION_HOURS = 8
SESSION_IDLE_MINUTES = 60
TOTP_PURPOSE = "console_totp"
DEMO_FILE = Path(__file__).resolve().parent.parent / "data" / "demo" / "accounts.json"
MIN_PASSWORD = 12

# Modest argon2id parameters: ~20 ms per hash here, still far beyond offline guessing budgets.
_hasher = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)
# A real hash to verify against when the user does not exist, so timing does not reveal usernames.
_DUMMY_HASH = _hasher.hash("not-a-real-password-" + uuid.uuid4().hex)

ACTIONS = (
    "content.view", "content.edit", "hall.edit", "scenario.edit", "catalog.view", "catalog.standard",
    "catalog.local", "fleet.view", "fleet.command", "fleet.enrol", "figures.view", "audit.view", "calendar.edit",
    "queue.call", "queue.configure",
)  # fmt: skip

_ROLE_ACTIONS: Mapping[str, frozenset[str]] = {
    "province": frozenset(ACTIONS),
    "city": frozenset(ACTIONS) - {"catalog.standard", "scenario.edit", "calendar.edit"},
    "hall_manager": frozenset(
        {"content.view", "content.edit", "hall.edit", "catalog.view"}
        | {"fleet.view", "fleet.command", "fleet.enrol", "figures.view", "queue.call", "queue.configure"}
    ),
    "agent_supervisor": frozenset({"content.view", "catalog.view", "figures.view", "fleet.view"}),
    "department_staff": frozenset({"catalog.view", "figures.view"}),
    "window": frozenset({"queue.call"}),  # a clerk at a window of its hall(s): calls tickets
}


@dataclass(frozen=True)
class Place:
    """Where something lives: all of the province, a city, a hall (with its city) or a department."""

    kind: str  # province | city | hall | department
    code: str = ""
    city: str = ""

    @staticmethod
    def province() -> Place:
        return Place("province", "440000")


@dataclass(frozen=True)
class ConsoleUser:
    id: str
    username: str
    display_name: str
    role: str
    region: str = ""
    halls: tuple[str, ...] = ()
    department: str = ""
    totp_enabled: bool = False
    disabled: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.username} ({self.role})"

    @property
    def role_label(self) -> str:
        return ROLE_LABELS.get(self.role, self.role)

    @property
    def home_place(self) -> Place:
        """The place this account works in: what its pages show by default."""
        if self.role == "province":
            return Place.province()
        if self.role == "city":
            return Place("city", self.region, self.region)
        if self.role == "department_staff":
            return Place("department", self.department)
        return Place("hall", self.halls[0] if self.halls else "")


def _user(doc: Mapping[str, Any]) -> ConsoleUser:
    scope = doc.get("scope", {})
    return ConsoleUser(
        id=doc["_id"],
        username=doc["username"],
        display_name=doc.get("display_name", doc["username"]),
        role=doc["role"],
        region=str(scope.get("region", "")),
        halls=tuple(scope.get("halls", [])),
        department=str(scope.get("department", "")),
        totp_enabled=bool(doc.get("totp")),
        disabled=bool(doc.get("disabled")),
    )


# ---- authorisation --------------------------------------------------------------


def within(user: ConsoleUser, place: Place) -> bool:
    """Is ``place`` inside the user's scope?"""
    if user.role == "province":
        return True
    if user.role == "city":
        if place.kind == "city":
            return place.code == user.region
        if place.kind in ("hall", "department"):
            return bool(place.city) and place.city == user.region
        return False
    if user.role in ("hall_manager", "agent_supervisor", "window"):
        return place.kind == "hall" and place.code in user.halls
    if user.role == "department_staff":
        return place.kind == "department" and place.code == user.department
    return False


def authorise(user: ConsoleUser, action: str, place: Place) -> None:
    """Raise Forbidden unless ``user`` may do ``action`` at ``place``."""
    if action not in _ROLE_ACTIONS.get(user.role, frozenset()) or not within(user, place):
        raise Forbidden("console.forbidden", "您的账号无权在此范围内进行该操作")


def role_may(user: ConsoleUser, action: str) -> bool:
    """May the user's role do ``action`` somewhere (its own scope)? For menus; pages still ``authorise``."""
    return action in _ROLE_ACTIONS.get(user.role, frozenset())


def may(user: ConsoleUser, action: str, place: Place) -> bool:
    try:
        authorise(user, action, place)
    except Forbidden:
        return False
    return True


def visible_halls(user: ConsoleUser, halls: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Codes of the halls the user may see, in catalogue order."""
    return [code for code, hall in halls.items() if within(user, hall_place(code, halls))]


def hall_place(code: str, halls: Mapping[str, Mapping[str, Any]]) -> Place:
    return Place("hall", code, str(halls.get(code, {}).get("city", "")))


def target_place(target: Mapping[str, Any], halls: Mapping[str, Mapping[str, Any]]) -> Place:
    """The place a content target lies in (for authorising who may edit it)."""
    scope = target.get("scope")
    if scope in ("hall", "group"):
        return hall_place(str(target.get("hall", "")), halls)
    if scope == "city":
        return Place("city", str(target.get("city", "")), str(target.get("city", "")))
    return Place.province()


# ---- accounts -----------------------------------------------------------------


def validate_password(password: Any) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD or len(password) > 256:
        raise InvalidInput(
            "console.password_weak", f"密码长度须为 {MIN_PASSWORD}–256 位", fields={"password": "密码太短"}
        )
    return password


async def create_user(
    store: Store,
    offload: Offloader,
    *,
    username: str,
    password: str,
    role: str,
    scope: Mapping[str, Any],
    display_name: str = "",
) -> ConsoleUser:
    if role not in ROLES:
        raise InvalidInput("console.role_invalid", "角色不正确", fields={"role": "角色不正确"})
    if not isinstance(username, str) or not (3 <= len(username) <= 40) or not username.replace("_", "").isalnum():
        raise InvalidInput("console.username_invalid", "用户名格式不正确", fields={"username": "用户名格式不正确"})
    validate_password(password)
    password_hash = await offload.run(_hasher.hash, password)
    doc: Document = {
        "_id": uuid.uuid4().hex,
        "username": username.lower(),
        "display_name": display_name or username,
        "role": role,
        "scope": dict(scope),
        "password_hash": password_hash,
        "totp": None,
        "disabled": False,
        "created_at": utcnow(),
    }
    try:
        await store["console_users"].insert_one(doc)
    except DuplicateKeyError:
        raise Conflict("console.username_taken", "用户名已存在") from None
    return _user(doc)


async def list_users(store: Store) -> list[ConsoleUser]:
    return [_user(d) async for d in store["console_users"].find({}, sort=[("username", 1)])]


async def _user_by_name(store: Store, username: Any) -> Document:
    doc = await store["console_users"].find_one({"username": str(username).lower()})
    if doc is None:
        raise NotFound("console.user_not_found", "找不到该用户")
    return doc


async def disable_user(store: Store, username: Any, by: audit.Actor) -> ConsoleUser:
    """The account can no longer log in, and its open sessions end now."""
    doc = await _user_by_name(store, username)
    await store["console_users"].update_one({"_id": doc["_id"]}, {"$set": {"disabled": True, "disabled_at": utcnow()}})
    await end_all_sessions(store, [doc["_id"]])
    await audit.record(store, by, "console.user_disabled", f"console_user:{doc['_id']}", channel="system")
    return _user({**doc, "disabled": True})


async def reset_totp(store: Store, username: Any, by: audit.Actor) -> ConsoleUser:
    """A lost authenticator: TOTP off (the user sets it up again at the next login), sessions ended."""
    doc = await _user_by_name(store, username)
    await store["console_users"].update_one({"_id": doc["_id"]}, {"$set": {"totp": None}})
    await end_all_sessions(store, [doc["_id"]])
    await audit.record(store, by, "console.totp_reset", f"console_user:{doc['_id']}", channel="system")
    return _user({**doc, "totp": None})


async def load_demo_console_users(services: Services) -> int:
    """Demo console accounts from data/demo/accounts.json (idempotent: existing usernames are kept)."""
    accounts = json.loads(DEMO_FILE.read_text(encoding="utf-8")).get("console_users", [])
    created = 0
    for account in accounts:
        if await services.store["console_users"].find_one({"username": account["username"].lower()}, {"_id": 1}):
            continue
        try:
            await create_user(
                services.store,
                services.offload,
                username=account["username"],
                password=account["password"],
                role=account["role"],
                scope=account.get("scope", {}),
                display_name=account.get("display_name", ""),
            )
            created += 1
        except Conflict:
            continue
    return created


async def get_user(store: Store, user_id: str) -> ConsoleUser | None:
    doc = await store["console_users"].find_one({"_id": user_id, "disabled": {"$ne": True}})
    return _user(doc) if doc else None


# ---- login throttling (yiwang.throttle) --------------------------------------------

LOGIN_REFUSED = "登录失败次数过多，请 {minutes} 分钟后再试"
CEILING_REFUSED = "该账号近期登录失败次数过多，暂停仅凭密码登录；请 {minutes} 分钟后再试，或使用动态验证码登录"
TOTP_REFUSED = "动态验证码错误次数过多，请 {minutes} 分钟后再试"


def _pair(username: str, address: str) -> str:
    return f"{username}|{throttle.address_key(address)}"


def _login_checks(username: str, address: str) -> list[tuple[throttle.Limit, str]]:
    pair = _pair(username, address)
    return [(limit, pair) for limit in throttle.LOGIN_PAIR] + [(throttle.LOGIN_ADDRESS, throttle.address_key(address))]


async def _password_matches(offload: Offloader, doc: Document | None, password: str) -> bool:
    try:
        await offload.run(_hasher.verify, doc["password_hash"] if doc else _DUMMY_HASH, password[:256])
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return doc is not None


def published_demo_password(username: str, password: str) -> bool:
    """Whether this is a demo account's password as published in data/demo/accounts.json."""
    accounts = json.loads(DEMO_FILE.read_text(encoding="utf-8")).get("console_users", [])
    return any(a["username"].lower() == username and a["password"] == password for a in accounts)


async def verify_password(
    store: Store,
    offload: Offloader,
    username: Any,
    password: Any,
    address: str,
    *,
    refuse_demo_passwords: bool = False,
) -> ConsoleUser:
    """The user, or NotAuthenticated (same message whether the name or the password was wrong).

    ``refuse_demo_passwords`` (production): a demo account's published password never logs in, even in a
    database that was once loaded with demo data.

    Throttled before the hash is checked (``yiwang.throttle``): per (username, address) with
    growing delays, per address; above the account's ceiling only TOTP accounts are checked."""
    if not isinstance(username, str) or not isinstance(password, str) or not username or len(username) > 40:
        raise InvalidInput("console.login_invalid", "请输入用户名和密码")
    username = username.strip().lower()
    reservation = await throttle.reserve(
        store, _login_checks(username, address), code="console.login_throttled", message=LOGIN_REFUSED
    )
    refused: RateLimited | None = None
    ok = False
    try:
        doc = await store["console_users"].find_one({"username": username, "disabled": {"$ne": True}})
        failures, retry_after = await throttle.peek(store, throttle.LOGIN_ACCOUNT_CEILING, username)
        if failures >= throttle.LOGIN_ACCOUNT_CEILING.limit and not (doc and doc.get("totp")):
            refused = throttle.refusal("console.login_ceiling", CEILING_REFUSED, retry_after)
        else:
            ok = await _password_matches(offload, doc, password)
            if ok and refuse_demo_passwords and published_demo_password(username, password):
                ok = False  # counted as a failed login, like any wrong password
    except Exception:
        await reservation.release()
        raise
    if refused is not None:
        await reservation.release()
        raise refused
    if not ok or doc is None:
        await throttle.count(store, throttle.LOGIN_ACCOUNT_CEILING, username)
        raise NotAuthenticated("console.login_failed", "用户名或密码错误")
    if doc.get("totp"):
        await reservation.release()  # not a failure; the pair is cleared once the second factor passes
    else:
        await reservation.release(throttle.LOGIN_ADDRESS)
        await throttle.clear(store, throttle.LOGIN_PAIR, _pair(username, address))
    if _hasher.check_needs_rehash(doc["password_hash"]):
        new_hash = await offload.run(_hasher.hash, password)
        await store["console_users"].update_one({"_id": doc["_id"]}, {"$set": {"password_hash": new_hash}})
    return _user(doc)


# ---- TOTP -------------------------------------------------------------------------


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(secret: str, username: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name="一网管理后台")


def totp_qr_svg(secret: str, username: str) -> str:
    """The provisioning URI as an inline SVG QR code (a few ms, so made on the request; never cached or logged).

    The URI carries the secret: it goes into the QR only, never into the page text, a log or a cache."""
    return qr_svg(totp_uri(secret, username), 5, svgclass="qr-code")


def _valid_code(code: Any) -> str:
    if not isinstance(code, str) or not code.strip().isdigit() or len(code.strip()) != 6:
        raise InvalidInput("console.totp_invalid", "请输入 6 位动态验证码", fields={"code": "请输入 6 位数字"})
    return code.strip()


async def enable_totp(store: Store, cipher: FieldCipher, user: ConsoleUser, secret: str, code: Any) -> None:
    clean = _valid_code(code)
    if not pyotp.TOTP(secret).verify(clean, valid_window=1):
        raise InvalidInput("console.totp_wrong", "动态验证码不正确", fields={"code": "验证码不正确"})
    await store["console_users"].update_one(
        {"_id": user.id}, {"$set": {"totp": {"secret": cipher.seal(TOTP_PURPOSE, secret), "last_step": 0}}}
    )


async def verify_totp(store: Store, cipher: FieldCipher, user_id: str, code: Any, address: str) -> None:
    clean = _valid_code(code)
    doc = await store["console_users"].find_one({"_id": user_id})
    if doc is None or not doc.get("totp"):
        raise NotAuthenticated("console.login_failed", "请重新登录")
    checks = [(throttle.LOGIN_TOTP, user_id), (throttle.LOGIN_ADDRESS, throttle.address_key(address))]
    reservation = await throttle.reserve(store, checks, code="console.totp_throttled", message=TOTP_REFUSED)
    totp = pyotp.TOTP(cipher.open(TOTP_PURPOSE, doc["totp"]["secret"]))
    now = utcnow()
    step = None
    for offset in (-1, 0, 1):
        moment = now + dt.timedelta(seconds=30 * offset)
        if totp.at(moment) == clean:
            step = totp.timecode(moment)
            break
    # A code is good once: the step must move forward (no replay within the window).
    if step is None or step <= int(doc["totp"].get("last_step", 0)):
        raise NotAuthenticated("console.totp_wrong", "动态验证码不正确")
    updated = await store["console_users"].find_one_and_update(
        {"_id": user_id, "totp.last_step": {"$lt": step}}, {"$set": {"totp.last_step": step}}
    )
    if updated is None:
        raise NotAuthenticated("console.totp_wrong", "动态验证码不正确")
    await reservation.release(throttle.LOGIN_ADDRESS)
    await throttle.clear(store, [throttle.LOGIN_TOTP], user_id)
    await throttle.clear(store, throttle.LOGIN_PAIR, _pair(doc["username"], address))


# ---- sessions -----------------------------------------------------------------------


@dataclass(frozen=True)
class Session:
    token: str  # only ever in the cookie; the store has its digest
    user_id: str
    csrf: str
    stage: str  # "totp" (password ok, second factor pending) | "ok"


async def start_session(store: Store, user: ConsoleUser) -> Session:
    """A brand-new session (a new token every login: no fixation)."""
    token = random_token(32)
    csrf = random_token(24)
    now = utcnow()
    stage = "totp" if user.totp_enabled else "ok"
    await store["console_sessions"].insert_one(
        {
            "_id": token_digest(token),
            "user_id": user.id,
            "csrf": csrf,
            "stage": stage,
            "created_at": now,
            "last_seen": now,
            "expires_at": now + dt.timedelta(hours=SESSION_HOURS),
        }
    )
    return Session(token, user.id, csrf, stage)


async def promote_session(store: Store, session: Session) -> Session:
    """Second factor passed: replace the session with a fresh one at stage ok."""
    await end_session(store, session.token)
    token = random_token(32)
    csrf = random_token(24)
    now = utcnow()
    await store["console_sessions"].insert_one(
        {
            "_id": token_digest(token),
            "user_id": session.user_id,
            "csrf": csrf,
            "stage": "ok",
            "created_at": now,
            "last_seen": now,
            "expires_at": now + dt.timedelta(hours=SESSION_HOURS),
        }
    )
    return Session(token, session.user_id, csrf, "ok")


async def load_session(store: Store, token: str | None) -> Session | None:
    if not token or len(token) > 100:
        return None
    now = utcnow()
    doc = await store["console_sessions"].find_one_and_update(
        {
            "_id": token_digest(token),
            "expires_at": {"$gt": now},
            "last_seen": {"$gt": now - dt.timedelta(minutes=SESSION_IDLE_MINUTES)},
        },
        {"$set": {"last_seen": now}},
        return_document=ReturnDocument.AFTER,
    )
    if doc is None:
        return None
    return Session(token, doc["user_id"], doc["csrf"], doc["stage"])


async def end_session(store: Store, token: str | None) -> None:
    if token:
        await store["console_sessions"].delete_one({"_id": token_digest(token)})


async def end_all_sessions(store: Store, user_ids: Iterable[str]) -> None:
    await store["console_sessions"].delete_many({"user_id": {"$in": list(user_ids)}})
