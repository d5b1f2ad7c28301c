"""Guidance content edited in the console: notices and banners shown on kiosks.

One document per piece in ``content``; every publish writes an immutable
snapshot to ``content_versions`` (``_id`` = ``"<content_id>:<version>"``).

Life cycle: ``create_draft`` → ``save_draft`` (any number of times) →
``publish`` (snapshot version n+1, now live) → ``rollback(k)`` (re-publishes
the fields of version k as version n+2) or ``withdraw``.

Targeting: ``{"scope": "all"}``, ``{"scope": "city", "city": "440100"}``,
``{"scope": "hall", "hall": "gz-th-center"}`` or
``{"scope": "group", "hall": "gz-th-center", "group": "lobby"}`` (a device
group inside one hall). Schedule: ``starts_at`` / ``ends_at`` (UTC, optional).

Readers (kiosk pages, device pushes) call :func:`published_notices`.
Rich text is sanitised with nh3 on the way in, so what is stored is safe to
render with ``|safe``.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import nh3
from pymongo import ReturnDocument

from yiwang import versioned
from yiwang.errors import Conflict, InvalidInput, NotFound
from yiwang.store import Document, Store
from yiwang.timeutil import utcnow
from yiwang.versioned import Versioned

KINDS = ("notice", "banner")
LEVELS = ("info", "important", "urgent")
SCOPES = ("all", "city", "hall", "group")
MAX_TITLE = 60
MAX_BODY = 20_000
ALLOWED_TAGS = {"p", "br", "strong", "b", "em", "i", "u", "ul", "ol", "li", "h3", "h4", "span", "a", "blockquote"}
ALLOWED_ATTRIBUTES: dict[str, set[str]] = {"a": {"href", "title"}}
FIELDS = ("title", "body_html", "level", "target", "starts_at", "ends_at", "image")
_IMAGE_ID = re.compile(r"^[0-9a-f]{32}$")


def sanitise_html(raw: str) -> str:
    """Only harmless formatting survives; scripts, styles, handlers and javascript: links go."""
    return nh3.clean(
        raw,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"https", "http", "mailto"},
        link_rel="noopener noreferrer",
    ).strip()


def _place_code(value: Any, field: str, problems: dict[str, str]) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        problems[field] = "请选择投放范围"
        return ""
    return value.strip()


def validate_target(target: Any, halls: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """A clean target, with the hall's city filled in so readers need no lookup."""
    problems: dict[str, str] = {}
    if not isinstance(target, Mapping) or target.get("scope") not in SCOPES:
        raise InvalidInput("content.target_invalid", "投放范围不正确", fields={"target": "投放范围不正确"})
    scope = str(target["scope"])
    clean: dict[str, str] = {"scope": scope}
    if scope == "city":
        clean["city"] = _place_code(target.get("city"), "target", problems)
        if clean["city"] and not any(h.get("city") == clean["city"] for h in halls.values()):
            problems["target"] = "没有这个城市的服务大厅"
    elif scope in ("hall", "group"):
        hall = _place_code(target.get("hall"), "target", problems)
        if hall and hall not in halls:
            problems["target"] = "没有这个服务大厅"
        clean["hall"] = hall
        clean["city"] = str(halls.get(hall, {}).get("city", ""))
        if scope == "group":
            group = target.get("group")
            if not isinstance(group, str) or not group.strip() or len(group) > 40:
                problems["group"] = "请填写设备分组"
            else:
                clean["group"] = group.strip()
    if problems:
        raise InvalidInput("content.target_invalid", "投放范围不正确", fields=problems)
    return clean


def validate_fields(raw: Mapping[str, Any], halls: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Validate every editable field at once; raises with all problems, changes nothing."""
    problems: dict[str, str] = {}
    title = raw.get("title")
    if not isinstance(title, str) or not title.strip():
        problems["title"] = "请填写标题"
    elif len(title.strip()) > MAX_TITLE:
        problems["title"] = f"标题不能超过 {MAX_TITLE} 个字"
    body = raw.get("body_html", "")
    if not isinstance(body, str):
        problems["body_html"] = "正文格式不正确"
        body = ""
    elif len(body) > MAX_BODY:
        problems["body_html"] = f"正文不能超过 {MAX_BODY} 个字符"
    level = raw.get("level") or "info"
    if level not in LEVELS:
        problems["level"] = "重要程度不正确"
    starts_at, ends_at = raw.get("starts_at"), raw.get("ends_at")
    for name, value in (("starts_at", starts_at), ("ends_at", ends_at)):
        if value is not None and not (isinstance(value, dt.datetime) and value.tzinfo is not None):
            problems[name] = "时间格式不正确"
    if (
        isinstance(starts_at, dt.datetime)
        and isinstance(ends_at, dt.datetime)
        and starts_at.tzinfo
        and ends_at.tzinfo
        and ends_at <= starts_at
    ):
        problems["ends_at"] = "结束时间必须晚于开始时间"
    try:
        target = validate_target(raw.get("target"), halls)
    except InvalidInput as error:
        problems.update(error.fields or {"target": error.message})
        target = {}
    image = raw.get("image")
    if image is not None:  # set by yiwang.content_images after re-encoding; kept as it is
        if not isinstance(image, Mapping) or not _IMAGE_ID.match(str(image.get("id", ""))):
            problems["image"] = "图片不正确"
        else:
            image = {"id": str(image["id"]), "width": int(image.get("width", 0)), "height": int(image.get("height", 0))}
    if problems:
        raise InvalidInput("content.invalid", "内容填写有误", fields=problems)
    return {
        "title": str(title).strip(),
        "body_html": sanitise_html(body),
        "level": level,
        "target": target,
        "starts_at": starts_at,
        "ends_at": ends_at,
        "image": image,
    }


async def _halls(store: Store) -> dict[str, Document]:
    return {h["_id"]: h async for h in store["halls"].find({}, {"city": 1, "name": 1})}


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise InvalidInput("content.kind_invalid", "内容类型不正确", fields={"kind": "内容类型不正确"})


# ---- writing ------------------------------------------------------------------


async def create_draft(store: Store, kind: str, fields: Mapping[str, Any], *, by: str) -> Document:
    _check_kind(kind)
    clean = validate_fields(fields, await _halls(store))
    now = utcnow()
    document: Document = {
        "_id": uuid.uuid4().hex,
        "kind": kind,
        "status": "draft",
        "draft": clean,
        "target": clean["target"],  # where it lives, for scoping lists; follows the draft
        "published": None,
        "version": 0,
        "created_at": now,
        "created_by": by,
        "updated_at": now,
        "updated_by": by,
    }
    await store["content"].insert_one(document)
    return document


async def get(store: Store, content_id: str) -> Document:
    if not isinstance(content_id, str) or len(content_id) > 64:
        raise NotFound("content.not_found", "找不到该内容")
    document = await store["content"].find_one({"_id": content_id})
    if document is None:
        raise NotFound("content.not_found", "找不到该内容")
    return document


async def save_draft(
    store: Store, content_id: str, fields: Mapping[str, Any], *, by: str, expected_updated_at: dt.datetime | None = None
) -> tuple[Document, Document]:
    """Replace the draft; returns (before, after). Published version stays live.
    Without an ``image`` key in ``fields`` the draft keeps its image."""
    before = await get(store, content_id)
    if "image" not in fields:
        fields = {**fields, "image": (before.get("draft") or {}).get("image")}
    clean = validate_fields(fields, await _halls(store))
    condition: Document = {"_id": content_id}
    if expected_updated_at is not None:
        condition["updated_at"] = expected_updated_at
    after = await store["content"].find_one_and_update(
        condition,
        {"$set": {"draft": clean, "target": clean["target"], "updated_at": utcnow(), "updated_by": by}},
        return_document=ReturnDocument.AFTER,
    )
    if after is None:
        raise Conflict("content.changed", "内容已被他人修改，请刷新后再试")
    return before, after


def _snapshot(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {k: fields.get(k) for k in FIELDS}


async def _publish_fields(
    store: Store, before: Document, fields: Mapping[str, Any], *, by: str, note: str
) -> Document:
    now = utcnow()
    version = int(before.get("version", 0)) + 1
    published = {**_snapshot(fields), "version": version, "published_at": now, "published_by": by}
    # Claim the version number first: a concurrent publish of the same piece loses cleanly.
    after = await store["content"].find_one_and_update(
        {"_id": before["_id"], "version": before.get("version", 0)},
        {
            "$set": {
                "version": version,
                "status": "published",
                "published": published,
                "draft": _snapshot(fields),
                "target": fields["target"],
                "updated_at": now,
                "updated_by": by,
            }
        },
        return_document=ReturnDocument.AFTER,
    )
    if after is None:
        raise Conflict("content.changed", "内容已被他人发布，请刷新后再试")
    await versioned.bump(store, CONTENT_VERSION_ID)
    await store["content_versions"].insert_one(
        {
            "_id": f"{before['_id']}:{version}",
            "content_id": before["_id"],
            "kind": before["kind"],
            "version": version,
            "fields": _snapshot(fields),
            "note": note,
            "at": now,
            "by": by,
        }
    )
    return after


async def publish(store: Store, content_id: str, *, by: str) -> tuple[Document, Document]:
    """Publish the current draft as a new version; returns (before, after)."""
    before = await get(store, content_id)
    # Revalidate: a hall may have been removed since the draft was saved.
    fields = validate_fields(before["draft"], await _halls(store))
    return before, await _publish_fields(store, before, fields, by=by, note="publish")


async def rollback(store: Store, content_id: str, to_version: int, *, by: str) -> tuple[Document, Document]:
    """Publish the fields of an earlier version again, as a new version."""
    before = await get(store, content_id)
    old = await store["content_versions"].find_one({"_id": f"{content_id}:{int(to_version)}"})
    if old is None:
        raise NotFound("content.version_not_found", "找不到该历史版本")
    return before, await _publish_fields(store, before, old["fields"], by=by, note=f"rollback to {to_version}")


async def withdraw(store: Store, content_id: str, *, by: str) -> tuple[Document, Document]:
    before = await get(store, content_id)
    if before["status"] != "published":
        raise Conflict("content.not_published", "该内容未发布")
    after = await store["content"].find_one_and_update(
        {"_id": content_id, "status": "published"},
        {"$set": {"status": "withdrawn", "updated_at": utcnow(), "updated_by": by}},
        return_document=ReturnDocument.AFTER,
    )
    if after is None:
        raise Conflict("content.changed", "内容状态已变化，请刷新后再试")
    await versioned.bump(store, CONTENT_VERSION_ID)
    return before, after


async def versions(store: Store, content_id: str) -> list[Document]:
    cursor = store["content_versions"].find({"content_id": content_id}, sort=[("version", -1)], limit=100)
    return [v async for v in cursor]


async def list_content(
    store: Store, *, halls: Sequence[str] | None = None, cities: Sequence[str] | None = None, limit: int = 200
) -> list[Document]:
    """Content whose target lies within the given halls/cities (None = everything)."""
    query: Document = {}
    if halls is not None or cities is not None:
        ors: list[Document] = []
        if halls:
            ors.append({"target.hall": {"$in": list(halls)}})
        if cities:
            ors.append({"target.city": {"$in": list(cities)}})
        query = {"$or": ors} if ors else {"_id": {"$in": []}}
    cursor = store["content"].find(query, sort=[("updated_at", -1)], limit=limit)
    return [c async for c in cursor]


# ---- reading (kiosk pages, pushes) ----------------------------------------------


def target_matches(target: Mapping[str, Any], hall: str, city: str, device_group: str | None = None) -> bool:
    scope = target.get("scope")
    if scope == "all":
        return True
    if scope == "city":
        return target.get("city") == city
    if scope == "hall":
        return target.get("hall") == hall
    if scope == "group":
        return target.get("hall") == hall and device_group is not None and target.get("group") == device_group
    return False


def is_live(published: Mapping[str, Any], now: dt.datetime) -> bool:
    starts, ends = published.get("starts_at"), published.get("ends_at")
    return (starts is None or starts <= now) and (ends is None or now < ends)


def public_view(document: Mapping[str, Any], fields: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What a kiosk shows: no editor names, no drafts."""
    shown = fields if fields is not None else document["published"]
    return {
        "id": document["_id"],
        "kind": document["kind"],
        "version": shown.get("version", document.get("version", 0)),
        "title": shown["title"],
        "body_html": shown["body_html"],  # sanitised on the way in
        "level": shown.get("level", "info"),
        "starts_at": shown.get("starts_at"),
        "ends_at": shown.get("ends_at"),
        "published_at": shown.get("published_at"),
        "image": _image_view(shown.get("image")),
    }


def _image_view(image: Any) -> dict[str, Any] | None:
    if not isinstance(image, Mapping) or not image.get("id"):
        return None
    return {"url": f"/kiosk/media/{image['id']}.jpg", "width": image.get("width"), "height": image.get("height")}


CONTENT_VERSION_ID = "content_version"  # bumped when a piece is published, rolled back or withdrawn
PUBLISHED_CONTENT = "published_content"


async def _published_documents(store: Store, kinds: Sequence[str] = KINDS) -> list[Document]:
    cursor = store["content"].find({"kind": {"$in": list(kinds)}, "status": "published"})
    return [document async for document in cursor]


def _notices_from(
    documents: Sequence[Document],
    *,
    hall_code: str,
    city: str,
    moment: dt.datetime,
    device_group: str | None,
    kinds: Sequence[str],
) -> list[dict[str, Any]]:
    shown: list[dict[str, Any]] = []
    for document in documents:
        published = document.get("published") or {}
        if document.get("kind") not in kinds or not published:
            continue
        if not target_matches(published.get("target", {}), hall_code, city, device_group):
            continue
        if not is_live(published, moment):
            continue
        shown.append(public_view(document))
    rank = {level: i for i, level in enumerate(reversed(LEVELS))}
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    shown.sort(key=lambda n: (rank.get(n["level"], 9), -(n["published_at"] or epoch).timestamp()))
    return shown


async def published_notices(
    store: Store,
    hall_code: str,
    now: dt.datetime | None = None,
    *,
    device_group: str | None = None,
    kinds: Sequence[str] = KINDS,
) -> list[dict[str, Any]]:
    """Notices and banners live now on a kiosk in ``hall_code`` (urgent first, newest first), read from the
    database (pushes). Pages read the same from memory: :func:`live_notices`."""
    hall = await store["halls"].find_one({"_id": hall_code}, {"city": 1})
    city = str(hall.get("city", "")) if hall else ""
    documents = await _published_documents(store, kinds)
    return _notices_from(
        documents, hall_code=hall_code, city=city, moment=now or utcnow(), device_group=device_group, kinds=kinds
    )


class PublishedContent(Versioned[list[Document]]):
    """Every published piece in memory, reloaded when one is published or withdrawn (``yiwang.versioned``):
    a resource of the process."""

    def __init__(self, store: Store) -> None:
        async def load(_version: int) -> list[Document]:
            return await _published_documents(store)

        super().__init__(store, CONTENT_VERSION_ID, load)


async def live_notices(
    published: PublishedContent, hall: Mapping[str, Any], *, device_group: str | None = None
) -> list[dict[str, Any]]:
    """What :func:`published_notices` says for ``hall`` (a catalogue hall document), from memory: no database
    query per page (the live window is checked against the clock on every call)."""
    documents = await published.get()
    return _notices_from(
        documents, hall_code=str(hall.get("code", "")), city=str(hall.get("city", "")), moment=utcnow(),
        device_group=device_group, kinds=KINDS,
    )  # fmt: skip


async def set_push_message(store: Store, content_id: str, message_id: str) -> None:
    """Remember the device message of the latest publish, to show its delivery per kiosk."""
    await store["content"].update_one({"_id": content_id}, {"$set": {"push_message": message_id}})
