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
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pymongo import ReturnDocument

from yiwang.accounts import OPENID_PURPOSE, take_subscription
from yiwang.timeutil import format_local, utcnow
from yiwang.wechat import NOT_SUBSCRIBED, WeChatError, gateway

if TYPE_CHECKING:
    from yiwang.runtime import Services

log = logging.getLogger(__name__)

# Template ids as registered in the mini-program's back office.
TEMPLATES = {
    "application_status": "yiwang-application-status",
    "evaluation_invite": "yiwang-evaluation-invite",
    "certificate_expiry": "yiwang-certificate-expiry",
}
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
    """Queue one message if the resident subscribed to ``template``; True when queued."""
    template_id = TEMPLATES[template]
    if account_id is None or not await take_subscription(services, account_id, template_id):
        return False
    now = utcnow()
    await services.store["notifications"].insert_one(
        {
            "_id": uuid.uuid4().hex,
            "account_id": account_id,
            "template_id": template_id,
            "data": {k: {"value": str(v)[:20]} for k, v in data.items()},
            "page": page,
            "subject": subject,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "last_error": None,
        }
    )
    sender = services.extras.get("notification_sender")
    if isinstance(sender, Sender):
        sender.wake()
    return True


async def enqueue_status_change(services: Services, application: Mapping[str, Any]) -> bool:
    from yiwang.applications import STATUS_LABELS

    account_id = application["applicant"].get("account_id")
    if account_id is None:  # filed at a kiosk or by an agent authorised at a kiosk
        bound = await services.store["wechat_accounts"].find_one(
            {"person_index": application["applicant"]["index"]}, {"_id": 1}
        )
        account_id = bound["_id"] if bound else None
    return await enqueue(
        services,
        account_id,
        "application_status",
        {
            "thing1": application["item_name"],
            "phrase2": STATUS_LABELS[application["status"]],
            "character_string3": application["tracking_number"],
            "time4": format_local(application["updated_at"]),
        },
        f"pages/applications/detail?id={application['_id']}",
        application["_id"],
    )


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
        permanent = exc.errcode in NOT_SUBSCRIBED or message["attempts"] >= MAX_ATTEMPTS
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


class Sender:
    """The background task: started on first use by the app, cancelled by aclose()."""

    def __init__(self, services: Services) -> None:
        self._services = services
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
                    from yiwang.evaluations import send_due_invitations
                    from yiwang.reminders import push_expiry_reminders

                    await send_due_invitations(self._services)
                    await push_expiry_reminders(self._services)
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


def ensure_sender(services: Services) -> Sender:
    """The process's sender, started if it is not running (call from the event loop)."""
    sender = services.extras.get("notification_sender")
    if not isinstance(sender, Sender):
        gateway(services)  # registered first, so it is closed after the sender stops
        sender = services.extras["notification_sender"] = Sender(services)
    sender.start()
    return sender
