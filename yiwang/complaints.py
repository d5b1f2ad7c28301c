"""投诉举报: filed from the phone, with a tracking number and a deadline for
the answer (``ANSWER_WORKING_DAYS`` working days). The text is sealed."""

from __future__ import annotations

import secrets
import uuid
from typing import TYPE_CHECKING, Any

from yiwang import audit
from yiwang.errors import InvalidInput, NotFound
from yiwang.timeutil import add_working_days, local_today, utcnow

if TYPE_CHECKING:
    from yiwang.runtime import Services
    from yiwang.store import Document

KINDS = {"complaint": "投诉", "report": "举报", "suggestion": "建议"}
CONTENT_PURPOSE = "complaint_content"
ANSWER_WORKING_DAYS = 15
MAX_CONTENT = 2000


def _view(services: Services, doc: Document, *, detail: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": doc["_id"],
        "tracking_number": doc["tracking_number"],
        "kind": doc["kind"],
        "kind_label": KINDS[doc["kind"]],
        "subject": doc["subject"],
        "status": doc["status"],
        "status_label": "已答复" if doc["status"] == "answered" else "处理中",
        "answer_due": doc["answer_due"],
        "created_at": doc["created_at"],
        "answer": doc.get("answer"),
    }
    if detail:
        out["content"] = services.cipher.open(CONTENT_PURPOSE, doc["content"])
        out["application"] = doc.get("application")
    return out


async def file_complaint(
    services: Services,
    owner: str,
    actor: audit.Actor,
    *,
    kind: Any,
    subject: Any,
    content: Any,
    application_id: Any = None,
) -> dict[str, Any]:
    problems: dict[str, str] = {}
    if kind not in KINDS:
        problems["kind"] = "请选择 complaint（投诉）、report（举报）或 suggestion（建议）"
    if not isinstance(subject, str) or not 2 <= len(subject.strip()) <= 60:
        problems["subject"] = "请填写标题（2–60 字）"
    if not isinstance(content, str) or not 5 <= len(content.strip()) <= MAX_CONTENT:
        problems["content"] = "请填写具体内容（5–2000 字）"
    if application_id is not None and not isinstance(application_id, str):
        problems["application"] = "申请编号格式不正确"
    if problems:
        raise InvalidInput("complaint.invalid", "投诉举报内容有误", fields=problems)
    assert isinstance(subject, str) and isinstance(content, str)
    if application_id is not None:
        from yiwang.applications import for_applicant

        try:
            await for_applicant(services, owner, application_id)
        except NotFound:
            raise InvalidInput("complaint.invalid", "找不到该申请", fields={"application": "找不到该申请"}) from None
    now = utcnow()
    doc: Document = {
        "_id": uuid.uuid4().hex,
        "tracking_number": "TS" + local_today().strftime("%Y%m%d") + secrets.token_hex(3).upper(),
        "owner": owner,
        "kind": kind,
        "subject": subject.strip(),
        "content": services.cipher.seal(CONTENT_PURPOSE, content.strip()),
        "application": application_id,
        "status": "open",
        "answer_due": add_working_days(local_today(), ANSWER_WORKING_DAYS).isoformat(),
        "answer": None,
        "created_at": now,
    }
    await services.store["complaints"].insert_one(doc)
    await audit.record(services.store, actor, "complaint.file", doc["_id"], channel="mobile", detail={"kind": kind})
    return _view(services, doc, detail=True)


async def complaints_of(services: Services, owner: str) -> list[dict[str, Any]]:
    cursor = services.store["complaints"].find({"owner": owner}, sort=[("created_at", -1)], limit=100)
    return [_view(services, doc) async for doc in cursor]


async def complaint_of(services: Services, owner: str, complaint_id: Any) -> dict[str, Any]:
    doc = None
    if isinstance(complaint_id, str):
        doc = await services.store["complaints"].find_one({"_id": complaint_id, "owner": owner})
    if doc is None:
        raise NotFound("complaint.not_found", "找不到该投诉举报")
    return _view(services, doc, detail=True)
