"""Mobile accounts (one per WeChat openid), bearer tokens, real-name binding
and assurance levels.

* The openid and ``session_key`` are sealed; the openid is found again by its
  blind index. ``session_key`` never leaves the server.
* Bearer tokens are random, stored as their SM3 digest only, expire after
  ``TOKEN_DAYS``, are revocable, and there is one per device: logging in again
  from a device replaces that device's token.
* Assurance levels as Guangdong's unified login grades them: 1 WeChat login
  only, 2 self-declared, 3 name and number checked against the population
  database, 4 face-verified, 5 digital certificate or checked at a counter.
* One person's number is bound to one WeChat account at a time; moving it to
  another account is ``yiwang.rebinding`` (explicit, with a stronger proof, audited;
  the old account keeps its sign-in, unbound, and is told).
* Staff (department) tokens live in the same collection with ``kind="staff"``.
* Authentication is one indexed read: each token carries a copy of what the
  principal needs from its account (``principal``: level, person index, masks,
  agent, ``binding_version``). Whatever changes those fields bumps the account's
  ``binding_version`` and then rewrites its tokens (``_sync_tokens``); issuing a
  token re-reads the account after the insert. Either order of a concurrent
  login and binding change leaves the tokens matching the account, and a token
  without ``principal`` (cleared before a binding change, or issued by an older
  version) falls back to reading the account. There is no time-based cache: a
  sign-out or re-bind takes effect on the next request in every process.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from yiwang import audit, console_accounts, throttle
from yiwang.crypto import random_token, token_digest
from yiwang.departments import department as find_department
from yiwang.errors import Conflict, Forbidden, InvalidInput, NotAuthenticated, NotFound
from yiwang.identity import OneNumber, mask_name, mask_phone, parse_id_number, protect_number
from yiwang.identity_verification import Verification, verifier
from yiwang.people import NAME_PURPOSE, PHONE_PURPOSE, stored_person_index, validate_name, validate_phone
from yiwang.timeutil import utcnow
from yiwang.wechat import gateway

if TYPE_CHECKING:
    from yiwang.runtime import Services

OPENID_PURPOSE = "wechat_openid"
SESSION_KEY_PURPOSE = "wechat_session_key"
TOKEN_DAYS = 30
STAFF_TOKEN_HOURS = 12
MAX_DEVICE_ID = 64
LEVEL_NAMES = {1: "微信登录", 2: "自行声明", 3: "实名核验", 4: "人脸核验", 5: "数字证书或柜台核验"}

Kind = Literal["resident", "staff"]


@dataclass(frozen=True)
class Principal:
    """Who is calling, as the mobile API knows them."""

    kind: Kind
    account_id: str
    token_id: str
    level: int = 1
    person_index: str | None = None
    masked_name: str = ""
    masked_number: str = ""
    agent: str | None = None  # agent code when this account belongs to a village agent
    department: str | None = None  # staff only

    @property
    def actor(self) -> audit.Actor:
        if self.kind == "staff":
            return audit.Actor("department", self.account_id, self.department or "")
        return audit.Actor("resident", self.account_id, self.masked_name)

    def require_level(self, level: int) -> str:
        """The person's index if the account is bound at ``level`` or above."""
        if self.kind != "resident":
            raise Forbidden("auth.resident_only", "仅限市民账号使用")
        if self.person_index is None or self.level < level:
            raise Forbidden(
                "auth.level_insufficient",
                f"此操作需要实名认证等级 {level} 级及以上，请先完成实名认证",
                detail={"required_level": level, "level": self.level},
            )
        return self.person_index


def _validate_device(device_id: Any) -> str:
    if device_id is None or device_id == "":
        return "default"
    if not isinstance(device_id, str) or len(device_id) > MAX_DEVICE_ID or not device_id.isprintable():
        raise InvalidInput("session.device_invalid", "设备标识无效", fields={"device_id": "最长 64 个字符"})
    return device_id


PRINCIPAL_FIELDS = ("level", "person_index", "masked_name", "masked_number", "agent")


def _principal_copy(account: dict[str, Any]) -> dict[str, Any]:
    """What a token carries of its account so that authentication is one read."""
    copy = {name: account.get(name) for name in PRINCIPAL_FIELDS}
    copy["binding_version"] = int(account.get("binding_version", 0))
    return copy


async def _sync_tokens(services: Services, account: dict[str, Any]) -> None:
    """Rewrite the account's tokens after its binding changed (never with an older copy)."""
    copy = _principal_copy(account)
    await services.store["mobile_tokens"].update_many(
        {
            "account_id": account["_id"],
            "$or": [
                {"principal": {"$exists": False}},
                {"principal": None},
                {"principal.binding_version": {"$lt": copy["binding_version"]}},
            ],
        },
        {"$set": {"principal": copy}},
    )


async def _clear_token_copies(services: Services, account_id: str) -> None:
    """Before a binding change: the tokens fall back to reading the account until re-synced,
    so a failure between the account update and ``_sync_tokens`` never leaves a stale copy."""
    await services.store["mobile_tokens"].update_many({"account_id": account_id}, {"$unset": {"principal": ""}})


async def _issue_token(
    services: Services,
    account_id: str,
    device_id: str,
    kind: Kind,
    *,
    account: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    token = random_token(32)
    now = utcnow()
    ttl = dt.timedelta(days=TOKEN_DAYS) if kind == "resident" else dt.timedelta(hours=STAFF_TOKEN_HOURS)
    tokens = services.store["mobile_tokens"]
    await tokens.delete_many({"account_id": account_id, "device_id": device_id})  # one per device
    doc: dict[str, Any] = {
        "_id": token_digest(token),
        "account_id": account_id,
        "device_id": device_id,
        "kind": kind,
        "created_at": now,
        "expires_at": now + ttl,
        **extra,
    }
    if kind == "resident" and account is not None:
        doc["principal"] = _principal_copy(account)
    await tokens.insert_one(doc)
    if kind == "resident":
        # Read the account *after* the insert: a binding change that committed before
        # this read is copied now; one that commits later syncs this token itself.
        fresh = await services.store["wechat_accounts"].find_one({"_id": account_id})
        if fresh is None:
            await tokens.delete_one({"_id": doc["_id"]})
            raise NotFound("account.not_found", "找不到该账号")
        if doc.get("principal") != _principal_copy(fresh):
            await tokens.update_one({"_id": doc["_id"]}, {"$set": {"principal": _principal_copy(fresh)}})
    return {"token": token, "token_type": "Bearer", "expires_at": now + ttl}


async def login(services: Services, code: Any, device_id: Any = None) -> dict[str, Any]:
    """``wx.login`` code → our own bearer token (the account is created on first login)."""
    device = _validate_device(device_id)
    if not isinstance(code, str) or not code:
        raise InvalidInput("session.code_required", "缺少微信登录凭证", fields={"code": "请提供 wx.login 返回的 code"})
    wx = await gateway(services).code_to_session(code)
    cipher = services.cipher
    openid_indexes = cipher.blind_indexes(OPENID_PURPOSE, wx.openid)
    openid_index = openid_indexes[0]
    now = utcnow()
    accounts = services.store["wechat_accounts"]
    if len(openid_indexes) > 1:  # blind-index key rotation: an account not yet re-indexed keeps its index
        found = await accounts.find_one({"openid_index": {"$in": openid_indexes}}, {"openid_index": 1})
        openid_index = found["openid_index"] if found else openid_index
    account = await accounts.find_one_and_update(
        {"openid_index": openid_index},
        {
            "$set": {"session_key": cipher.seal(SESSION_KEY_PURPOSE, wx.session_key), "last_login_at": now},
            "$setOnInsert": {
                "_id": uuid.uuid4().hex,
                "openid": cipher.seal(OPENID_PURPOSE, wx.openid),
                "level": 1,
                "person_index": None,
                "created_at": now,
                "subscriptions": {},
            },
        },
        upsert=True,
        return_document=True,
    )
    assert account is not None
    issued = await _issue_token(services, account["_id"], device, "resident", account=account)
    await audit.record(
        services.store,
        audit.Actor("resident", account["_id"]),
        "session.login",
        account["_id"],
        channel="mobile",
        detail={"device": device},
    )
    return {**issued, "account": account_view(account)}


def account_view(account: dict[str, Any]) -> dict[str, Any]:
    level = int(account.get("level", 1))
    return {
        "id": account["_id"],
        "level": level,
        "level_name": LEVEL_NAMES.get(level, ""),
        "real_name_bound": account.get("person_index") is not None,
        "name": account.get("masked_name"),
        "id_number": account.get("masked_number"),
        "phone": (account.get("phone") or {}).get("masked"),
        "phone_country_code": (account.get("phone") or {}).get("country_code", "86" if account.get("phone") else None),
        "agent": account.get("agent"),
        "security_notice": _notice_view(account.get("security_notice")),
    }


def _notice_view(notice: Any) -> dict[str, Any] | None:
    if not isinstance(notice, dict):
        return None
    return {"kind": notice.get("kind"), "message": notice.get("message"), "at": notice.get("at")}


async def authenticate(services: Services, authorization: str | None) -> Principal:
    """``Authorization: Bearer …`` → the principal, or a clear 401."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 200:
        raise NotAuthenticated("auth.required", "请先登录")
    doc = await services.store["mobile_tokens"].find_one({"_id": token_digest(token)})
    if doc is None:
        raise NotAuthenticated("auth.token_invalid", "登录已失效，请重新登录")
    if doc["expires_at"] <= utcnow():
        raise NotAuthenticated("auth.token_expired", "登录已过期，请重新登录")
    if doc["kind"] == "staff":
        return Principal("staff", doc["account_id"], doc["_id"], department=doc["department"])
    account = doc.get("principal")
    if account is None:  # cleared during a binding change, or an older token: read the account
        account = await services.store["wechat_accounts"].find_one({"_id": doc["account_id"]})
        if account is None:
            raise NotAuthenticated("auth.token_invalid", "登录已失效，请重新登录")
    return Principal(
        "resident",
        doc["account_id"],
        doc["_id"],
        level=int(account.get("level", 1)),
        person_index=account.get("person_index"),
        masked_name=account.get("masked_name") or "",
        masked_number=account.get("masked_number") or "",
        agent=account.get("agent"),
    )


async def logout(services: Services, principal: Principal) -> None:
    await services.store["mobile_tokens"].delete_one({"_id": principal.token_id})
    await audit.record(services.store, principal.actor, "session.logout", principal.account_id, channel="mobile")


async def account(services: Services, account_id: str) -> dict[str, Any]:
    doc = await services.store["wechat_accounts"].find_one({"_id": account_id})
    if doc is None:
        raise NotFound("account.not_found", "找不到该账号")
    return doc


@dataclass(frozen=True)
class CheckedIdentity:
    """A name and number the verification provider accepted for this account's caller."""

    name: str
    one: OneNumber
    index: str
    verification: Verification


async def checked_identity(
    services: Services, principal: Principal, name: Any, id_number: Any, *, address: str = "",
    extra_problems: dict[str, str] | None = None,
) -> CheckedIdentity:
    """Validate name + number fully, then ask the provider (throttled, :func:`identity_check`);
    a failed check is audited and refused. Nothing is written to the account."""
    if principal.kind != "resident":
        raise Forbidden("auth.resident_only", "仅限市民账号使用")
    problems: dict[str, str] = dict(extra_problems or {})
    clean_name = ""
    number = ""
    try:
        clean_name = validate_name(name)
    except InvalidInput as exc:
        problems.update(exc.fields or {"name": exc.message})
    try:
        number = parse_id_number(id_number if isinstance(id_number, str) else "").number
    except InvalidInput as exc:
        problems["id_number"] = exc.message
    if problems:
        raise InvalidInput("identity.bind_invalid", "实名信息填写有误", fields=problems)
    one = OneNumber("person", number)
    index = await stored_person_index(services.store, services.cipher, one)
    result = await identity_check(services, principal.account_id, index, address, name=clean_name, one=one)
    if not result.verified:
        await audit.record(
            services.store,
            principal.actor,
            "identity.verify_failed",
            principal.account_id,
            channel="mobile",
            detail={"provider": result.provider},
        )
        raise Forbidden("identity.verification_failed", "姓名与身份证号码核验未通过，请核对后重试")
    return CheckedIdentity(clean_name, one, index, result)


async def holder_elsewhere(services: Services, principal: Principal, index: str) -> dict[str, Any] | None:
    """The other account this person is bound to, if any."""
    return await services.store["wechat_accounts"].find_one(
        {"person_index": index, "_id": {"$ne": principal.account_id}}
    )


async def bind_real_name(
    services: Services, principal: Principal, name: Any, id_number: Any, *, address: str = ""
) -> dict[str, Any]:
    """Check name + number with the verification provider and bind the person.

    Checks are throttled per account, per number (its blind index) and per ``address``
    (:func:`identity_check`): guessing whose number goes with a name costs a 429.
    A number bound to another account is refused here; moving it needs a proof stronger
    than a name and a number (``yiwang.rebinding.bind_real_name``)."""
    checked = await checked_identity(services, principal, name, id_number, address=address)
    if await holder_elsewhere(services, principal, checked.index) is not None:
        await audit.record(
            services.store, principal.actor, "identity.bind_refused", principal.account_id, channel="mobile",
            on_behalf_of=checked.index, detail={"reason": "bound_elsewhere"},
        )
        raise Conflict(
            "identity.bound_elsewhere",
            "该身份证号码已绑定另一个微信账号；如需改绑到本账号，请到政务服务自助终端刷身份证获取改绑码后确认改绑",
        )
    return await bind_to(services, principal, checked, max(checked.verification.level, 2),
                         checked.verification.provider)


async def bind_to(
    services: Services, principal: Principal, checked: CheckedIdentity, level: int, verified_by: str
) -> dict[str, Any]:
    """Write the binding on the caller's account at ``level`` (its tokens follow) and audit it."""
    accounts = services.store["wechat_accounts"]
    await _clear_token_copies(services, principal.account_id)
    updated = await accounts.find_one_and_update(
        {"_id": principal.account_id},
        {
            "$inc": {"binding_version": 1},
            "$set": {
                "person_index": checked.index,
                "level": level,
                "masked_name": one_mask_name(checked.name),
                "masked_number": checked.one.masked,
                "number": protect_number(services.cipher, checked.one),
                "name": {"sealed": services.cipher.seal(NAME_PURPOSE, checked.name)},
                "bound_at": utcnow(),
                "verified_by": verified_by,
            },
        },
        return_document=True,
    )
    if updated is None:
        raise NotFound("account.not_found", "找不到该账号")
    await _sync_tokens(services, updated)
    await audit.record(
        services.store,
        principal.actor,
        "identity.bind",
        principal.account_id,
        channel="mobile",
        on_behalf_of=checked.index,
        detail={"level": updated["level"]},
    )
    return account_view(updated)


async def unbind_moved(
    services: Services, account_id: str, index: str, notice: dict[str, Any]
) -> dict[str, Any] | None:
    """The person moved to another account: this one keeps its sign-in (level 1, unbound) and a
    notice saying what happened. None if it no longer held ``index``."""
    await _clear_token_copies(services, account_id)
    updated = await services.store["wechat_accounts"].find_one_and_update(
        {"_id": account_id, "person_index": index},
        {
            "$set": {"person_index": None, "level": 1, "masked_name": None, "masked_number": None, "number": None,
                     "name": None, "security_notice": notice},
            "$inc": {"binding_version": 1},
        },
        return_document=True,
    )
    fresh = updated or await services.store["wechat_accounts"].find_one({"_id": account_id})
    if fresh is not None:
        await _sync_tokens(services, fresh)
    return updated


IDENTITY_REFUSED = "实名核验尝试次数过多，请 {minutes} 分钟后再试"


async def identity_check(
    services: Services, account_id: str, index: str, address: str, *, name: str, one: OneNumber
) -> Verification:
    """The provider's answer, counted first (``yiwang.throttle``): every check counts against the
    account; failures count against the number and the address (a success gives those back)."""
    checks = [
        (throttle.IDENTITY_ACCOUNT, account_id),
        (throttle.IDENTITY_NUMBER, index),
        (throttle.IDENTITY_ADDRESS, throttle.address_key(address or "unknown")),
    ]
    reservation = await throttle.reserve(
        services.store, checks, code="identity.bind_throttled", message=IDENTITY_REFUSED
    )
    try:
        result = await verifier(services).verify(services, name, one)
    except Exception:
        await reservation.release()  # the provider failed: no check was made
        raise
    if result.verified:
        await reservation.release(throttle.IDENTITY_NUMBER, throttle.IDENTITY_ADDRESS)
    return result


def one_mask_name(name: str) -> str:

    return mask_name(name)


async def bind_phone(services: Services, principal: Principal, code: Any) -> dict[str, Any]:
    """``getPhoneNumber`` code → the phone number, stored sealed on the account."""
    if principal.kind != "resident":
        raise Forbidden("auth.resident_only", "仅限市民账号使用")
    if not isinstance(code, str) or not code:
        raise InvalidInput(
            "phone.code_required", "缺少手机号授权凭证", fields={"code": "请提供 getPhoneNumber 的 code"}
        )
    found = await gateway(services).phone_number(code)
    phone = validate_phone(found.number, found.country_code)
    sealed = {
        "sealed": services.cipher.seal(PHONE_PURPOSE, phone),
        "masked": mask_phone(phone),
        "country_code": found.country_code,  # kept: a +852 number is not a mainland one
    }
    updated = await services.store["wechat_accounts"].find_one_and_update(
        {"_id": principal.account_id}, {"$set": {"phone": sealed}}, return_document=True
    )
    if updated is None:
        raise NotFound("account.not_found", "找不到该账号")
    await audit.record(services.store, principal.actor, "account.phone_bound", principal.account_id, channel="mobile")
    return account_view(updated)


async def openid_of(services: Services, account_id: str) -> str | None:
    doc = await services.store["wechat_accounts"].find_one({"_id": account_id}, {"openid": 1})
    return services.cipher.open(OPENID_PURPOSE, doc["openid"]) if doc else None


async def accounts_for_person(services: Services, person_index: str) -> list[dict[str, Any]]:
    cursor = services.store["wechat_accounts"].find({"person_index": person_index})
    return [doc async for doc in cursor]


# ---- staff --------------------------------------------------------------


async def issue_staff_token(services: Services, department: str, label: str, device_id: str = "staff") -> str:
    """A department bearer token for the staff API (valid ``STAFF_TOKEN_HOURS``)."""

    find_department(department)  # unknown department → NotFound
    staff_id = f"staff:{department}:{label}"
    issued = await _issue_token(services, staff_id, device_id, "staff", department=department, label=label)
    return str(issued["token"])


async def staff_login(
    services: Services, username: Any, password: Any, address: str, code: Any = None
) -> dict[str, Any]:
    """A department staff account (a console account with role ``department_staff``) → a staff token.

    The same check as the console's login, throttled the same way (``console_accounts.verify_password``);
    an account with TOTP also needs ``code``."""

    if services.config.production:
        raise Forbidden("staff.demo_login_disabled", "生产环境请通过管理后台登录")
    if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
        raise InvalidInput("staff.credentials_required", "请输入账号和密码")
    store = services.store
    try:
        user = await console_accounts.verify_password(store, services.offload, username, password, address)
        if user.totp_enabled:
            if code is None or code == "":
                raise InvalidInput("staff.totp_required", "请输入动态验证码", fields={"code": "请输入 6 位数字"})
            await console_accounts.verify_totp(store, services.cipher, user.id, code, address)
    except NotAuthenticated:
        raise NotAuthenticated("staff.credentials_invalid", "账号或密码错误") from None
    if user.role != "department_staff" or not user.department:
        raise NotAuthenticated("staff.credentials_invalid", "账号或密码错误")
    token = await issue_staff_token(services, user.department, user.username)
    await audit.record(
        services.store,
        audit.Actor("department", f"staff:{user.department}:{user.username}", user.department),
        "staff.login",
        user.username,
        channel="console",
        detail={"address": address},
    )
    return {"token": token, "token_type": "Bearer", "department": user.department}


async def set_agent(services: Services, account_id: str, agent_code: str) -> None:
    """Link a mobile account to a village agent (called by yiwang.agents)."""
    await _clear_token_copies(services, account_id)
    updated = await services.store["wechat_accounts"].find_one_and_update(
        {"_id": account_id}, {"$set": {"agent": agent_code}, "$inc": {"binding_version": 1}}, return_document=True
    )
    if updated is not None:
        await _sync_tokens(services, updated)


