"""Moving a real-name identity from one WeChat account to another (改绑).

A name and an ID number are not a secret: anyone who knows them passes the
population check (level 3). So an identity that another account holds moves
only with a proof *stronger* than the one that bound it:

* **the ID card read at a kiosk** (level 5, as at a counter): the resident puts
  the card on the reader of an enrolled kiosk, asks for 改绑码 there, and gets a
  short-lived single-use code (:func:`issue_kiosk_code`, ``CODE_TTL``), shown as
  digits and as a QR (``YWR1:<digits>``, no personal data); the phone sends it
  with the binding (``rebind_code``). A code belongs to one person, one use, and
  ``MAX_CODE_ATTEMPTS`` wrong tries burn every live code of that person;
* **face verification** (level 4): a verification provider that answers at level
  4 or more for this name and number (``yiwang.identity_verification``).

The proof must reach :func:`required_level` (one above the holder's level, at
least 4, at most 5). Without it: 403 ``identity.rebind_proof_required`` (or
``identity.rebind_proof_insufficient`` / ``identity.rebind_code_invalid``), and
nothing changes. When it moves, the old account is *not* signed out: it stays
signed in, unbound (level 1), carries a ``security_notice`` it sees in ``/me``,
and gets a subscribe message (``identity_rebound``) if it accepted that template.
Every attempt, refused or done, is audited (``identity.rebind_refused`` /
``identity.rebind``).
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from typing import TYPE_CHECKING, Any

from pymongo import ReturnDocument

from yiwang import accounts, audit, notifications
from yiwang.crypto import token_digest
from yiwang.errors import Forbidden, InvalidInput
from yiwang.timeutil import format_local, utcnow

if TYPE_CHECKING:
    from yiwang.accounts import CheckedIdentity, Principal
    from yiwang.devices import Device
    from yiwang.kiosk_sessions import KioskSession
    from yiwang.runtime import Services

CODE_TTL = dt.timedelta(minutes=5)
CODE_DIGITS = 8
MAX_CODE_ATTEMPTS = 5
QR_PREFIX = "YWR1:"
LEVEL_FACE = 4
LEVEL_CARD_READ = 5
NOTICE_MESSAGE = "您的实名身份已于 {time} 经{method}改绑到另一个微信账号；如非本人操作，请立即到政务服务中心窗口处理。"
METHOD_LABELS = {"kiosk_id_card": "自助终端刷身份证核验", "face": "人脸核验"}


def required_level(holder_level: int) -> int:
    """The proof a move needs: stronger than what bound the holder (4 at least; 5 is the top)."""
    return min(LEVEL_CARD_READ, max(LEVEL_FACE, holder_level + 1))


def _clean_code(raw: Any) -> str | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise InvalidInput("identity.rebind_code_invalid_format", "改绑码格式不正确",
                           fields={"rebind_code": "请输入自助终端显示的 8 位数字"})
    text = raw.strip().removeprefix(QR_PREFIX).replace(" ", "").replace("-", "")
    if len(text) != CODE_DIGITS or not text.isdigit():
        raise InvalidInput("identity.rebind_code_invalid_format", "改绑码格式不正确",
                           fields={"rebind_code": "请输入自助终端显示的 8 位数字"})
    return text


# ---- the kiosk side -----------------------------------------------------------------------


async def issue_kiosk_code(services: Services, session: KioskSession, device: Device) -> dict[str, Any]:
    """改绑码 for the resident whose ID card this kiosk's reader just read (never after 扫码取证,
    which the phone itself started, nor in agent mode). Earlier codes of the person end."""
    if session.mode != "resident" or session.resident_index is None or session.method != "id_card":
        raise Forbidden("identity.rebind_card_required", "改绑码仅在本人将身份证放在本机读卡器上识别后提供")
    code = "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS))
    now = utcnow()
    codes = services.store["rebind_codes"]
    await codes.delete_many({"person_index": session.resident_index})
    await codes.insert_one({
        "_id": uuid.uuid4().hex, "person_index": session.resident_index, "digest": token_digest(code),
        "device": device.id, "hall": device.hall, "created_at": now, "expires_at": now + CODE_TTL,
        "used_at": None, "attempts": 0,
    })
    await audit.record(services.store, device.actor, "identity.rebind_code_issued",
                       f"resident:{session.resident_id}", channel="kiosk", purpose="微信账号改绑",
                       detail={"hall": device.hall})
    return {"code": f"{code[:4]} {code[4:]}", "qr_text": QR_PREFIX + code, "expires_at": now + CODE_TTL,
            "minutes": int(CODE_TTL.total_seconds() // 60)}


async def _use_code(services: Services, index: str, code: str, account_id: str) -> bool:
    codes = services.store["rebind_codes"]
    now = utcnow()
    used = await codes.find_one_and_update(
        {"person_index": index, "digest": token_digest(code), "used_at": None, "expires_at": {"$gt": now},
         "attempts": {"$lt": MAX_CODE_ATTEMPTS}},
        {"$set": {"used_at": now, "used_by": account_id}},
        return_document=ReturnDocument.AFTER,
    )
    if used is None:  # a wrong guess counts against every live code of this person
        await codes.update_many({"person_index": index, "used_at": None}, {"$inc": {"attempts": 1}})
        return False
    return True


# ---- the phone side -----------------------------------------------------------------------


async def rebind_identity(
    services: Services, principal: Principal, name: Any, id_number: Any, rebind_code: Any, *, address: str = ""
) -> dict[str, Any]:
    """Bind name + number to the caller's account, moving it from another account only with proof."""
    try:
        code = _clean_code(rebind_code)
    except InvalidInput as exc:  # every bad field at once, and no provider check for bad input
        await accounts.checked_identity(services, principal, name, id_number, address=address,
                                        extra_problems=exc.fields)
        raise
    checked = await accounts.checked_identity(services, principal, name, id_number, address=address)
    holder = await accounts.holder_elsewhere(services, principal, checked.index)
    if holder is None:  # nobody else holds it: an ordinary binding
        return await accounts.bind_to(services, principal, checked, max(checked.verification.level, 2),
                                      checked.verification.provider)
    needed = required_level(int(holder.get("level", 1)))
    if code is not None:
        if not await _use_code(services, checked.index, code, principal.account_id):
            await _refused(services, principal, checked, holder, "code_invalid", needed)
            raise Forbidden("identity.rebind_code_invalid", "改绑码无效、已使用或已过期，请在自助终端重新刷身份证获取")
        method, level = "kiosk_id_card", LEVEL_CARD_READ
    elif checked.verification.level >= LEVEL_FACE:
        method, level = "face", checked.verification.level
    else:
        await _refused(services, principal, checked, holder, "proof_required", needed)
        raise Forbidden(
            "identity.rebind_proof_required",
            "该身份已绑定另一个微信账号。改绑需要更强的核验：请到政务服务自助终端刷身份证获取改绑码，"
            "或完成人脸核验后再试",
            detail={"required_level": needed},
        )
    if level < needed:
        await _refused(services, principal, checked, holder, "proof_insufficient", needed)
        raise Forbidden("identity.rebind_proof_insufficient",
                        "原账号的实名等级更高，请到政务服务自助终端刷身份证获取改绑码后再试",
                        detail={"required_level": needed})
    return await _move(services, principal, checked, holder, method, level)


async def _refused(  # noqa: PLR0917
    services: Services, principal: Principal, checked: CheckedIdentity, holder: dict[str, Any], reason: str,
    needed: int,
) -> None:
    await audit.record(
        services.store, principal.actor, "identity.rebind_refused", principal.account_id, channel="mobile",
        on_behalf_of=checked.index,
        detail={"reason": reason, "from_account": holder["_id"], "required_level": needed},
    )


async def _move(  # noqa: PLR0917
    services: Services, principal: Principal, checked: CheckedIdentity, holder: dict[str, Any], method: str,
    level: int,
) -> dict[str, Any]:

    now = utcnow()
    when = format_local(now, "%Y-%m-%d %H:%M")
    notice = {"kind": "identity_moved", "at": now, "method": method, "to_account": principal.account_id,
              "message": NOTICE_MESSAGE.format(time=when, method=METHOD_LABELS[method])}
    await accounts.unbind_moved(services, holder["_id"], checked.index, notice)
    await audit.record(
        services.store, principal.actor, "identity.rebind", principal.account_id, channel="mobile",
        on_behalf_of=checked.index, detail={"from_account": holder["_id"], "method": method, "level": level},
    )
    view = await accounts.bind_to(services, principal, checked, level, method)
    await notifications.enqueue(
        services, holder["_id"], "identity_rebound",
        {"event": "实名身份已改绑到其他微信账号", "time": when, "hint": "如非本人操作，请到窗口处理"},
        "pages/me/index", holder["_id"],
    )
    return view


async def bind_real_name(
    services: Services, principal: Principal, name: Any, id_number: Any, *, rebind: Any = False,
    rebind_code: Any = None, address: str = "",
) -> dict[str, Any]:
    """Bind the person to this account (``POST /me/identity``): a plain bind, or with ``rebind``
    the move of an identity another account holds, on a stronger proof (:func:`rebind`)."""
    if not isinstance(rebind, bool):
        await accounts.checked_identity(services, principal, name, id_number, address=address,
                                        extra_problems={"rebind": "必须是 true 或 false"})
    if rebind:
        return await rebind_identity(services, principal, name, id_number, rebind_code, address=address)
    return await accounts.bind_real_name(services, principal, name, id_number, address=address)
