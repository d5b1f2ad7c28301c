"""好差评: one rating per completed application, with the national indicators;
a bad rating opens a rectification (整改) due in 15 working days whose outcome
the resident sees; an invitation goes out 3 days after completion if none was
given."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from yiwang import audit
from yiwang.applications import COMPLETED, Staff, for_applicant
from yiwang.content_check import SCENE_COMMENT, check_text
from yiwang.errors import Conflict, InvalidInput, NotFound
from yiwang.notifications import enqueue
from yiwang.timeutil import add_working_days, local_today, utcnow

if TYPE_CHECKING:
    from yiwang.runtime import Services
    from yiwang.store import Document

LEVELS = {5: "非常满意", 4: "满意", 3: "基本满意", 2: "不满意", 1: "非常不满意"}
INDICATORS = {
    "overall": "整体满意度",
    "efficiency": "办事效率",
    "guide_accuracy": "办事指南精确度",
    "convenience": "办事便捷度",
    "usability": "平台操作性",
}
REASONS = (
    "办事指南不准确",
    "材料要求反复",
    "办理时间过长",
    "多次跑动",
    "工作人员态度差",
    "系统操作不便",
    "其他",
)
BAD_AT_OR_BELOW = 2
RECTIFICATION_WORKING_DAYS = 15
INVITE_AFTER = dt.timedelta(days=3)
MAX_COMMENT = 500


def _validate(level: Any, indicators: Any, reasons: Any, comment: Any) -> tuple[int, dict[str, int], list[str], str]:
    problems: dict[str, str] = {}
    if not isinstance(level, int) or isinstance(level, bool) or level not in LEVELS:
        problems["level"] = "请选择 1–5 级（5 为非常满意）"
    clean_indicators: dict[str, int] = {}
    if not isinstance(indicators, dict):
        problems["indicators"] = "请对每项指标评分"
    else:
        for key, label in INDICATORS.items():
            value = indicators.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value not in LEVELS:
                problems[f"indicators.{key}"] = f"请为「{label}」选择 1–5 级"
            else:
                clean_indicators[key] = value
        for key in indicators:
            if key not in INDICATORS:
                problems[f"indicators.{key}"] = "没有这项指标"
    if reasons is None:
        reasons = []
    if not isinstance(reasons, list) or any(r not in REASONS for r in reasons):
        problems["reasons"] = "请从给出的原因中选择"
        reasons = []
    if comment is None:
        comment = ""
    if not isinstance(comment, str) or len(comment) > MAX_COMMENT:
        problems["comment"] = "最多 500 字"
        comment = ""
    if not problems and level <= BAD_AT_OR_BELOW and not reasons:
        problems["reasons"] = "差评请至少选择一个原因"
    if problems:
        raise InvalidInput("evaluation.invalid", "评价内容有误", fields=problems)
    return int(level), clean_indicators, list(dict.fromkeys(reasons)), comment.strip()


async def evaluate(
    services: Services,
    person_index: str,
    actor: audit.Actor,
    application_id: Any,
    *,
    level: Any,
    indicators: Any,
    reasons: Any = None,
    comment: Any = "",
) -> dict[str, Any]:
    """Rate a completed application once; a bad rating opens a rectification."""
    clean_level, clean_indicators, clean_reasons, clean_comment = _validate(level, indicators, reasons, comment)
    app = await for_applicant(services, person_index, application_id)
    if app["status"] not in COMPLETED:
        raise Conflict("evaluation.not_completed", "办结后才能评价")
    account = actor.id if actor.kind == "resident" else None
    checked = await check_text(services, account, clean_comment, SCENE_COMMENT, "comment")
    now = utcnow()
    doc: Document = {
        "_id": app["_id"],  # one per application
        "application": app["_id"],
        "item": app["item"],
        "department": app["department"],
        "level": clean_level,
        "level_label": LEVELS[clean_level],
        "indicators": clean_indicators,
        "reasons": clean_reasons,
        "comment": clean_comment,
        "content_check": checked,
        "channel": "mobile",
        "created_at": now,
        "rectification": None,
    }
    if clean_level <= BAD_AT_OR_BELOW:
        doc["rectification"] = uuid.uuid4().hex
    try:
        await services.store["evaluations"].insert_one(doc)
    except DuplicateKeyError:
        raise Conflict("evaluation.already_given", "该申请已评价过") from None
    if doc["rectification"]:
        await services.store["rectifications"].insert_one(
            {
                "_id": doc["rectification"],
                "evaluation": doc["_id"],
                "application": app["_id"],
                "department": app["department"],
                "deadline": add_working_days(local_today(), RECTIFICATION_WORKING_DAYS).isoformat(),
                "status": "open",
                "outcome": None,
                "created_at": now,
                "closed_at": None,
            }
        )
    await services.store["applications"].update_one({"_id": app["_id"]}, {"$set": {"evaluation": doc["_id"]}})
    await audit.record(
        services.store, actor, "evaluation.create", app["_id"], channel="mobile", detail={"level": clean_level}
    )
    return await evaluation_view(services, doc)


async def evaluation_view(services: Services, doc: Document) -> dict[str, Any]:
    rect = None
    if doc.get("rectification"):
        found = await services.store["rectifications"].find_one({"_id": doc["rectification"]})
        if found:
            rect = {
                "id": found["_id"],
                "deadline": found["deadline"],
                "status": found["status"],
                "status_label": "整改中" if found["status"] == "open" else "已整改",
                "outcome": found["outcome"],
                "closed_at": found["closed_at"],
            }
    return {
        "application": doc["application"],
        "level": doc["level"],
        "level_label": doc["level_label"],
        "indicators": doc["indicators"],
        "reasons": doc["reasons"],
        "comment": doc["comment"],
        "created_at": doc["created_at"],
        "rectification": rect,
    }


async def evaluation_for(services: Services, person_index: str, application_id: Any) -> dict[str, Any]:
    app = await for_applicant(services, person_index, application_id)
    doc = await services.store["evaluations"].find_one({"_id": app["_id"]})
    if doc is None:
        raise NotFound("evaluation.not_found", "尚未评价")
    return await evaluation_view(services, doc)


async def close_rectification(services: Services, staff: Staff, rectification_id: Any, outcome: Any) -> dict[str, Any]:
    """The department records what it changed; the resident sees the outcome."""
    if not isinstance(outcome, str) or not 2 <= len(outcome.strip()) <= MAX_COMMENT:
        raise InvalidInput("rectification.outcome_required", "请填写整改结果（2–500 字）", fields={"outcome": "必填"})
    if not isinstance(rectification_id, str):
        raise NotFound("rectification.not_found", "找不到该整改记录")
    updated = await services.store["rectifications"].find_one_and_update(
        {"_id": rectification_id, "department": staff.department, "status": "open"},
        {"$set": {"status": "closed", "outcome": outcome.strip(), "closed_at": utcnow()}},
        return_document=ReturnDocument.AFTER,
    )
    if updated is None:
        raise NotFound("rectification.not_found", "找不到待整改的记录")
    await audit.record(services.store, staff.actor, "rectification.close", rectification_id, channel="console")
    return {"id": updated["_id"], "status": updated["status"], "outcome": updated["outcome"]}


async def rectifications_for_department(services: Services, staff: Staff) -> list[dict[str, Any]]:
    cursor = services.store["rectifications"].find(
        {"department": staff.department}, sort=[("created_at", -1)], limit=200
    )
    return [
        {
            "id": d["_id"],
            "application": d["application"],
            "deadline": d["deadline"],
            "status": d["status"],
            "outcome": d["outcome"],
        }
        async for d in cursor
    ]


async def send_due_invitations(services: Services, limit: int = 50) -> int:
    """Invite residents to rate applications completed 3+ days ago and not yet rated."""

    cutoff = utcnow() - INVITE_AFTER
    cursor = services.store["applications"].find(
        {
            "status": {"$in": sorted(COMPLETED)},
            "completed_at": {"$lte": cutoff},
            "evaluation": None,
            "invited_at": None,
        },
        limit=limit,
    )
    sent = 0
    async for app in cursor:
        claimed = await services.store["applications"].find_one_and_update(
            {"_id": app["_id"], "invited_at": None}, {"$set": {"invited_at": utcnow()}}
        )
        if claimed is None:
            continue
        await enqueue(
            services,
            app["applicant"].get("account_id"),
            "evaluation_invite",
            {"item": app["item_name"], "hint": "请对本次办事服务进行评价"},
            f"pages/evaluate/index?id={app['_id']}",
            app["_id"],
        )
        sent += 1
    return sent
