"""投诉举报: filed from the phone, with a tracking number and a deadline for
the answer (``ANSWER_WORKING_DAYS`` working days). The text is sealed.

Each complaint carries the place it concerns, so the console's figures can count
it where it belongs: ``department`` (code), ``hall`` (code) and ``city`` (the
six-digit city code, e.g. 440100), derived from what the resident files it
about — one of their applications (its department, item and hall if it was
filed at one), or a department / hall chosen from the catalogue. A complaint
about nothing in particular, or about a provincial department, has no city and
counts at province level only.

Department staff answer the complaints about their department
(:func:`answer_complaint`); the resident sees the answer, when it came and
whether it was within the deadline.
"""

from __future__ import annotations

import secrets
import uuid
from typing import TYPE_CHECKING, Any

from pymongo import ReturnDocument

from yiwang import audit
from yiwang.applications import for_applicant
from yiwang.content_check import SCENE_FORUM, check_text
from yiwang.errors import Conflict, InvalidInput, NotFound
from yiwang.timeutil import add_working_days, local, local_today, utcnow

if TYPE_CHECKING:
    from yiwang.applications import Staff
    from yiwang.runtime import Services
    from yiwang.store import Document

KINDS = {"complaint": "投诉", "report": "举报", "suggestion": "建议"}
CONTENT_PURPOSE = "complaint_content"
ANSWER_PURPOSE = "complaint_answer"
ANSWER_WORKING_DAYS = 15
MAX_CONTENT = 2000
MAX_ANSWER = 2000
MAX_CODE = 64


def _city_of_region(region: Any) -> str | None:
    """440106 → 440100; a provincial region (440000) has no city."""
    text = str(region or "")
    if len(text) != 6 or not text.isdigit() or text.endswith("0000"):
        return None
    return text[:4] + "00"


def _on_time(doc: Document) -> bool | None:
    if doc.get("answered_at") is None:
        return None
    return local(doc["answered_at"]).date().isoformat() <= doc["answer_due"]


def _view(services: Services, doc: Document, *, detail: bool = False) -> dict[str, Any]:
    answered = doc["status"] == "answered"
    answer = doc.get("answer")
    out: dict[str, Any] = {
        "id": doc["_id"],
        "tracking_number": doc["tracking_number"],
        "kind": doc["kind"],
        "kind_label": KINDS[doc["kind"]],
        "subject": doc["subject"],
        "status": doc["status"],
        "status_label": "已答复" if answered else "处理中",
        "answer_due": doc["answer_due"],
        "overdue": (not answered) and local_today().isoformat() > doc["answer_due"],
        "created_at": doc["created_at"],
        "answer": services.cipher.open(ANSWER_PURPOSE, answer) if answered and isinstance(answer, str) else None,
        "answered_at": doc.get("answered_at"),
        "answered_on_time": _on_time(doc),
        "place": {
            "department": doc.get("department"),
            "department_name": doc.get("department_name"),
            "hall": doc.get("hall"),
            "hall_name": doc.get("hall_name"),
            "city": doc.get("city"),
        },
    }
    if detail:
        out["content"] = services.cipher.open(CONTENT_PURPOSE, doc["content"])
        out["application"] = doc.get("application")
    return out


def _code(value: Any, name: str, problems: dict[str, str]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_CODE:
        problems[name] = "编码格式不正确"
        return None
    return value


async def _place(
    services: Services, owner: str, application_id: str | None, department: str | None, hall: str | None
) -> dict[str, Any]:
    """The place the complaint concerns, checked against the catalogue (all problems at once)."""
    snap = await services.catalog.snapshot()
    problems: dict[str, str] = {}
    place: dict[str, Any] = {"item": None, "department": None, "hall": None, "city": None}
    if application_id is not None:

        try:
            app = await for_applicant(services, owner, application_id)
        except NotFound:
            problems["application"] = "找不到该申请"
        else:
            place["item"] = app.get("item")
            place["department"] = app.get("department")
            place["hall"] = app.get("hall")
    if department is not None:
        if department not in snap.departments:
            problems["department"] = "找不到该部门"
        elif place["department"] not in (None, department):
            problems["department"] = "与所投诉申请的办理部门不一致"
        else:
            place["department"] = department
    if hall is not None:
        if hall not in snap.halls:
            problems["hall"] = "找不到该政务服务大厅"
        else:
            place["hall"] = hall
    dept_doc = snap.departments.get(place["department"] or "")
    hall_doc = snap.halls.get(place["hall"] or "")
    dept_city = _city_of_region(dept_doc.get("region")) if dept_doc else None
    hall_city = (str(hall_doc.get("city") or "") or None) if hall_doc else None
    if dept_city and hall_city and dept_city != hall_city and "hall" not in problems:
        problems["hall"] = "该大厅与所投诉部门不在同一城市"
    if problems:
        raise InvalidInput("complaint.invalid", "投诉举报内容有误", fields=problems)
    place["city"] = hall_city or dept_city
    place["department_name"] = dept_doc.get("name") if dept_doc else None
    place["hall_name"] = hall_doc.get("name") if hall_doc else None
    return place


async def file_complaint(
    services: Services,
    owner: str,
    actor: audit.Actor,
    *,
    kind: Any,
    subject: Any,
    content: Any,
    application_id: Any = None,
    department: Any = None,
    hall: Any = None,
) -> dict[str, Any]:
    problems: dict[str, str] = {}
    if not isinstance(kind, str) or kind not in KINDS:
        problems["kind"] = "请选择 complaint（投诉）、report（举报）或 suggestion（建议）"
    if not isinstance(subject, str) or not 2 <= len(subject.strip()) <= 60:
        problems["subject"] = "请填写标题（2–60 字）"
    if not isinstance(content, str) or not 5 <= len(content.strip()) <= MAX_CONTENT:
        problems["content"] = "请填写具体内容（5–2000 字）"
    if application_id is not None and (not isinstance(application_id, str) or len(application_id) > MAX_CODE):
        problems["application"] = "申请编号格式不正确"
    department_code = _code(department, "department", problems)
    hall_code = _code(hall, "hall", problems)
    if problems:
        raise InvalidInput("complaint.invalid", "投诉举报内容有误", fields=problems)
    assert isinstance(subject, str) and isinstance(content, str)
    place = await _place(services, owner, application_id, department_code, hall_code)
    account = actor.id if actor.kind == "resident" else None
    checked = await check_text(services, account, subject.strip() + "\n" + content.strip(), SCENE_FORUM, "content")
    now = utcnow()
    doc: Document = {
        "_id": uuid.uuid4().hex,
        "tracking_number": "TS" + local_today().strftime("%Y%m%d") + secrets.token_hex(3).upper(),
        "owner": owner,
        "kind": kind,
        "subject": subject.strip(),
        "content": services.cipher.seal(CONTENT_PURPOSE, content.strip()),
        "application": application_id,
        **place,
        "status": "open",
        "answer_due": add_working_days(local_today(), ANSWER_WORKING_DAYS).isoformat(),
        "answer": None,
        "answered_at": None,
        "answered_by": None,
        "content_check": checked,
        "created_at": now,
    }
    await services.store["complaints"].insert_one(doc)
    await audit.record(
        services.store,
        actor,
        "complaint.file",
        doc["_id"],
        channel="mobile",
        detail={"kind": kind, "department": place["department"], "hall": place["hall"], "city": place["city"]},
    )
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


# ---- department staff ------------------------------------------------------------------


async def complaints_for_department(services: Services, staff: Staff, status: Any = None) -> list[dict[str, Any]]:
    """The department's complaints, newest first (subjects only: the text is read one at a time)."""
    query: dict[str, Any] = {"department": staff.department}
    if status is not None:
        if status not in ("open", "answered"):
            raise InvalidInput("complaint.status_invalid", "状态无效", fields={"status": "open 或 answered"})
        query["status"] = status
    cursor = services.store["complaints"].find(query, sort=[("created_at", -1)], limit=200)
    return [_view(services, doc) async for doc in cursor]


async def _department_complaint(services: Services, staff: Staff, complaint_id: Any) -> Document:
    doc = None
    if isinstance(complaint_id, str) and len(complaint_id) <= MAX_CODE:
        doc = await services.store["complaints"].find_one({"_id": complaint_id, "department": staff.department})
    if doc is None:
        raise NotFound("complaint.not_found", "找不到该投诉举报")
    return doc


async def complaint_for_staff(services: Services, staff: Staff, complaint_id: Any) -> dict[str, Any]:
    """One complaint of the department with its text (the resident's words): the read is audited."""
    doc = await _department_complaint(services, staff, complaint_id)
    await audit.record(services.store, staff.actor, "complaint.read", doc["_id"], channel="console")
    return _view(services, doc, detail=True)


async def answer_complaint(services: Services, staff: Staff, complaint_id: Any, answer: Any) -> dict[str, Any]:
    """Record the department's answer (once); the resident sees it and whether it was on time."""
    if not isinstance(answer, str) or not 2 <= len(answer.strip()) <= MAX_ANSWER:
        raise InvalidInput("complaint.answer_invalid", "请填写答复内容（2–2000 字）", fields={"answer": "2–2000 字"})
    doc = await _department_complaint(services, staff, complaint_id)
    if doc["status"] != "open":
        raise Conflict("complaint.already_answered", "该投诉举报已答复")
    now = utcnow()
    updated = await services.store["complaints"].find_one_and_update(
        {"_id": doc["_id"], "department": staff.department, "status": "open"},
        {
            "$set": {
                "status": "answered",
                "answer": services.cipher.seal(ANSWER_PURPOSE, answer.strip()),
                "answered_at": now.replace(microsecond=now.microsecond // 1000 * 1000),
                "answered_by": {"kind": staff.actor.kind, "id": staff.actor.id, "label": staff.actor.label},
            }
        },
        return_document=ReturnDocument.AFTER,
    )
    if updated is None:
        raise Conflict("complaint.already_answered", "该投诉举报已答复")
    on_time = _on_time(updated)
    await audit.record(
        services.store,
        staff.actor,
        "complaint.answer",
        doc["_id"],
        channel="console",
        detail={"on_time": on_time, "answer_due": updated["answer_due"]},
    )
    return _view(services, updated, detail=True)
