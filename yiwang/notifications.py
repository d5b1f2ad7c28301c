"""WeChat subscribe messages through an outbox.

A status change inserts a document in ``notifications`` (only for residents
who accepted that template in ``wx.requestSubscribeMessage``: each acceptance
allows one message). A background :class:`Sender` per process claims due
messages with a conditional update (so several processes never send the same
one), sends them through wechatpy off the loop, and retries failures with
exponential backoff; the transition that queued a message never waits for it.

The sender also runs the periodic jobs of the mobile side: evaluation
invitations 3 days after completion (``yiwang.evaluations``) and reminders of
certificates about to lapse (``yiwang.reminders``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pymongo import ReturnDocument

from yiwang.accounts import OPENID_PURPOSE, Principal
from yiwang.errors import Forbidden, InvalidInput, NotFound
from yiwang.timeutil import utcnow
from yiwang.wechat import PERMANENT, WeChatError, gateway

if TYPE_CHECKING:
    from yiwang.config import Config
    from yiwang.runtime import Services
    from yiwang.store import Store

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class Template:
    """A subscribe-message template as chosen in the mini-program's back office: its id, and
    which of its keywords (``thing1``, ``phrase2``…) carries each of our fields."""

    name: str
    id: str
    keywords: Mapping[str, str]


# Built-in choices (overridden per deployment by WECHAT_TEMPLATES, since each account picks its own).
DEFAULT_TEMPLATES: Mapping[str, Template] = {
    t.name: t
    for t in (
        Template(
            "application_status", "yiwang-application-status",
            {"item": "thing1", "status": "phrase2", "tracking_number": "character_string3", "time": "time4"},
        ),
        Template("evaluation_invite", "yiwang-evaluation-invite", {"item": "thing1", "hint": "thing2"}),
        Template(
            "certificate_expiry", "yiwang-certificate-expiry",
            {"certificate": "thing1", "valid_until": "date2", "hint": "thing3"},
        ),
        # the holder's identity moved to another account (yiwang.rebinding)
        Template("identity_rebound", "yiwang-identity-rebound", {"event": "thing1", "time": "time2", "hint": "thing3"}),
        Template(  # yiwang.hall_queue: a remote ticket is near its turn
            "queue_near", "yiwang-queue-near",
            {"number": "character_string1", "hall": "thing2", "ahead": "number3", "hint": "thing4"},
        ),
    )
}  # fmt: skip
# The built-in template ids by name (what a test or a development mini-program subscribes to).
TEMPLATES = {name: t.id for name, t in DEFAULT_TEMPLATES.items()}
# How long a value of each keyword kind may be (subscribeMessage.send), longer values are cut.
_KEYWORD_LIMITS = {"thing": 20, "phrase": 5, "name": 10, "character_string": 32, "number": 32, "letter": 32,
                   "symbol": 5, "amount": 32, "car_number": 8, "phone_number": 17}  # fmt: skip
_KEYWORD = re.compile(r"^([a-z_]+?)(\d+)$")


def templates(config: Config) -> dict[str, Template]:
    """The deployment's templates: the built-in ones, each replaced by WECHAT_TEMPLATES where given.
    Raises InvalidInput naming the setting when an entry is malformed (start-up stops)."""
    chosen = dict(DEFAULT_TEMPLATES)
    for name, entry in config.wechat_templates.items():
        default = DEFAULT_TEMPLATES.get(name)
        if default is None:
            raise InvalidInput("config.invalid", f"WECHAT_TEMPLATES 中的模板 {name} 未知")
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or not entry["id"]:
            raise InvalidInput("config.invalid", f"WECHAT_TEMPLATES.{name} 必须给出模板 id")
        keywords = entry.get("keywords", dict(default.keywords))
        if (
            not isinstance(keywords, dict)
            or set(keywords) != set(default.keywords)
            or not all(isinstance(k, str) and _KEYWORD.match(k) for k in keywords.values())
        ):
            fields = "、".join(sorted(default.keywords))
            raise InvalidInput("config.invalid", f"WECHAT_TEMPLATES.{name}.keywords 须为 {fields} 各指定一个关键词")
        chosen[name] = Template(name, entry["id"], dict(keywords))
    return chosen


def fit(keyword: str, value: Any) -> str:
    """A value cut to what WeChat accepts for the keyword's kind."""
    found = _KEYWORD.match(keyword)
    limit = _KEYWORD_LIMITS.get(found.group(1), 20) if found else 20
    return str(value)[:limit]


async def check_account_templates(services: Services) -> list[str]:
    """Problems with the configured templates against the account's own (``getTemplateList``):
    a missing template or a keyword its content lacks. Logged at start-up; empty when all is well."""
    try:
        listed = await gateway(services).account_templates()
    except WeChatError:
        log.warning("subscribe templates not checked: WeChat unreachable")
        return []
    by_id = {t.get("priTmplId"): str(t.get("content", "")) for t in listed}
    problems = []
    for template in templates(services.config).values():
        content = by_id.get(template.id)
        if content is None:
            problems.append(f"{template.name}: template {template.id} is not in the account")
            continue
        problems.extend(
            f"{template.name}: keyword {keyword} ({field}) is not in template {template.id}"
            for field, keyword in template.keywords.items()
            if "{{" + keyword + ".DATA}}" not in content
        )
    for problem in problems:
        log.error("subscribe template misconfigured", extra={"fields": {"problem": problem}})
    return problems
MAX_ATTEMPTS = 6
BACKOFF_BASE_SECONDS = 2.0
BACKOFF_MAX_SECONDS = 600.0
LEASE = dt.timedelta(seconds=60)
POLL_SECONDS = 1.0
JOBS_EVERY_SECONDS = 60.0


def backoff(attempts: int) -> dt.timedelta:
    return dt.timedelta(seconds=min(BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0), BACKOFF_MAX_SECONDS))


async def enqueue(  # noqa: PLR0917
    services: Services, account_id: str | None, template: str, data: Mapping[str, Any], page: str, subject: str
) -> bool:
    """Queue one message if the resident subscribed to ``template``; True when queued.
    ``data`` is keyed by our field names; the template's keyword mapping renames them."""
    chosen = templates(services.config)[template]
    template_id = chosen.id
    if account_id is None or not await take_subscription(services, account_id, template_id):
        return False
    now = utcnow()
    await services.store["notifications"].insert_one(
        {
            "_id": uuid.uuid4().hex,
            "account_id": account_id,
            "template_id": template_id,
            "data": {chosen.keywords[k]: {"value": fit(chosen.keywords[k], v)} for k, v in data.items()},
            "page": page,
            "subject": subject,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "last_error": None,
        }
    )
    sender = services.resources.find(Sender)
    if sender is not None:
        sender.wake()
    return True


# ---- subscriptions (wx.requestSubscribeMessage) -------------------------------------------


async def add_subscriptions(services: Services, principal: Principal, template_ids: Any) -> dict[str, int]:
    """Record templates the resident accepted in ``wx.requestSubscribeMessage``
    (each acceptance allows one message)."""
    if principal.kind != "resident":
        raise Forbidden("auth.resident_only", "仅限市民账号使用")
    known = {t.id for t in templates(services.config).values()}
    if (
        not isinstance(template_ids, list)
        or not template_ids
        or len(template_ids) > 10
        or any(not isinstance(t, str) or t not in known for t in template_ids)
    ):
        raise InvalidInput(
            "subscription.invalid", "订阅消息模板无效", fields={"template_ids": "请提供已知的模板 ID 列表"}
        )
    inc: dict[str, int] = {}
    for template_id in template_ids:  # accepting a template twice allows two messages
        inc[f"subscriptions.{template_id}"] = inc.get(f"subscriptions.{template_id}", 0) + 1
    updated = await services.store["wechat_accounts"].find_one_and_update(
        {"_id": principal.account_id}, {"$inc": inc}, return_document=True
    )
    if updated is None:
        raise NotFound("account.not_found", "找不到该账号")
    return {k: int(v) for k, v in (updated.get("subscriptions") or {}).items()}


async def take_subscription(services: Services, account_id: str, template_id: str) -> bool:
    """Use one subscription of ``template_id``; False if the resident has none left."""
    used = await services.store["wechat_accounts"].find_one_and_update(
        {"_id": account_id, f"subscriptions.{template_id}": {"$gt": 0}},
        {"$inc": {f"subscriptions.{template_id}": -1}},
    )
    return used is not None


async def backlog(store: Store, limit: int = 100_000) -> tuple[int, int]:
    """(waiting to be sent, failed for good), each an indexed count bounded by ``limit``."""
    outbox = store["notifications"]
    waiting = await outbox.count_documents({"status": {"$in": ["pending", "sending"]}}, limit=limit)
    return waiting, await outbox.count_documents({"status": "failed"}, limit=limit)


async def send_due(services: Services, limit: int = 20) -> int:
    """Send the messages that are due now; returns how many were handled."""
    handled = 0
    outbox = services.store["notifications"]
    while handled < limit:
        now = utcnow()
        claimed = await outbox.find_one_and_update(
            {"status": {"$in": ["pending", "sending"]}, "next_attempt_at": {"$lte": now}},
            {"$set": {"status": "sending", "next_attempt_at": now + LEASE}, "$inc": {"attempts": 1}},
            sort=[("next_attempt_at", 1)],
            return_document=ReturnDocument.AFTER,
        )
        if claimed is None:
            break
        handled += 1
        await _send_one(services, claimed)
    return handled


async def _send_one(services: Services, message: Mapping[str, Any]) -> None:
    outbox = services.store["notifications"]
    account = await services.store["wechat_accounts"].find_one({"_id": message["account_id"]}, {"openid": 1})
    if account is None:
        await outbox.update_one({"_id": message["_id"]}, {"$set": {"status": "failed", "last_error": "no account"}})
        return
    openid = services.cipher.open(OPENID_PURPOSE, account["openid"])
    try:
        await gateway(services).send_subscribe(openid, message["template_id"], dict(message["data"]), message["page"])
    except WeChatError as exc:
        permanent = exc.errcode in PERMANENT or message["attempts"] >= MAX_ATTEMPTS
        await outbox.update_one(
            {"_id": message["_id"]},
            {
                "$set": {
                    "status": "failed" if permanent else "pending",
                    "next_attempt_at": utcnow() + backoff(message["attempts"]),
                    "last_error": str(exc.errcode),
                }
            },
        )
        log.info("notification send failed", extra={"fields": {"errcode": exc.errcode, "permanent": permanent}})
        return
    except Exception as exc:  # never let one message kill the sender
        await outbox.update_one(
            {"_id": message["_id"]},
            {
                "$set": {
                    "status": "pending",
                    "next_attempt_at": utcnow() + backoff(message["attempts"]),
                    "last_error": type(exc).__name__,
                }
            },
        )
        log.warning("notification send error", extra={"fields": {"error": type(exc).__name__}})
        return
    await outbox.update_one({"_id": message["_id"]}, {"$set": {"status": "sent", "sent_at": utcnow()}})


# A periodic job that queues messages (evaluation invitations, expiry reminders): given at boot.
Job = Callable[["Services"], Awaitable[int]]


class Sender:
    """The background task sending the outbox (and the daily reminder jobs): started at boot
    (``yiwang.boot``), cancelled by aclose()."""

    def __init__(self, services: Services, jobs: Sequence[Job] = ()) -> None:
        self._services = services
        self._jobs = tuple(jobs)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_jobs = 0.0

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="notification-sender")

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                await send_due(self._services)
                if loop.time() - self._last_jobs >= JOBS_EVERY_SECONDS:
                    self._last_jobs = loop.time()
                    for job in self._jobs:
                        await job(self._services)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("notification sender round failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
