"""Editing the service catalogue (事项目录) from the console.

- The **standard** of an item (name, conditions, materials, legal time limit) is
  the province's: one item, one standard, one code across Guangdong.
- A city's **local implementation** (promised time limit, fee where the standard
  allows one, a note) lives beside it in ``items.local.<city>``; it never changes
  the standard. Windows per item are hall information (:func:`update_hall`).

Every change bumps the item's ``version`` (conditional update, so two editors
cannot both win), writes the whole item to ``item_versions`` and bumps the
catalogue version so every process's Catalog cache refreshes within a second.
Halls are versioned the same way in ``content_versions`` (``hall:<code>``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from pymongo import ReturnDocument

from yiwang.catalog import bump_version, region_name
from yiwang.errors import Conflict, InvalidInput, NotFound
from yiwang.store import Document, Store
from yiwang.timeutil import utcnow

MAX_TEXT = 200
_HOURS = re.compile(r"^\d{2}:\d{2}-\d{2}:\d{2}(, ?\d{2}:\d{2}-\d{2}:\d{2})*$")


def _text_list(value: Any, field: str, problems: dict[str, str], *, limit: int = 30) -> list[str]:
    if isinstance(value, str):
        value = [line.strip() for line in value.splitlines()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems[field] = "格式不正确"
        return []
    clean = [v.strip() for v in value if v.strip()]
    if len(clean) > limit or any(len(v) > MAX_TEXT for v in clean):
        problems[field] = f"最多 {limit} 条，每条不超过 {MAX_TEXT} 字"
    return clean


def _days(value: Any, field: str, problems: dict[str, str]) -> int:
    try:
        days = int(value)
    except (TypeError, ValueError):
        problems[field] = "请填写天数（整数）"
        return 0
    if not 0 <= days <= 365:
        problems[field] = "天数须在 0–365 之间"
    return days


async def get_item(store: Store, code: str) -> Document:
    doc = await store["items"].find_one({"_id": code}) if isinstance(code, str) and len(code) <= 40 else None
    if doc is None:
        raise NotFound("catalog.item_not_found", "找不到该事项")
    return doc


async def _write(store: Store, before: Document, changes: Mapping[str, Any], *, by: str, change: str) -> Document:
    version = int(before.get("version", 1)) + 1
    now = utcnow()
    after = await store["items"].find_one_and_update(
        {"_id": before["_id"], "version": before.get("version", 1)},
        {"$set": {**changes, "version": version, "updated_at": now}},
        return_document=ReturnDocument.AFTER,
    )
    if after is None:
        raise Conflict("catalog.item_changed", "事项已被他人修改，请刷新后再试")
    snapshot = {k: v for k, v in after.items() if k not in ("_id", "updated_at")}
    await store["item_versions"].insert_one(
        {"_id": f"{before['_id']}:{version}", "code": before["_id"], "version": version, "item": snapshot,
         "change": change, "at": now, "by": by}
    )
    await bump_version(store)
    return after


async def update_standard(store: Store, code: str, raw: Mapping[str, Any], *, by: str) -> tuple[Document, Document]:
    """Province: name, conditions, materials' names and notes, legal time limit."""
    before = await get_item(store, code)
    problems: dict[str, str] = {}
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 60:
        problems["name"] = "请填写事项名称（不超过 60 字）"
    conditions = _text_list(raw.get("conditions", []), "conditions", problems)
    legal_days = _days(raw.get("legal_days"), "legal_days", problems)
    materials = copy.deepcopy(before.get("materials", []))
    names = raw.get("material_names")
    if names is not None:
        listed = _text_list(names, "material_names", problems, limit=len(materials))
        if len(listed) != len(materials):
            problems["material_names"] = "材料条数须与现有材料一致（每行一条）"
        else:
            for material, new_name in zip(materials, listed, strict=True):
                material["name"] = new_name
    local = before.get("local", {})
    if not problems and any(int(impl.get("promised_days", 0)) > legal_days for impl in local.values()):
        problems["legal_days"] = "已有城市的承诺时限超过该法定时限，请先调整承诺时限"
    if not problems and int(before.get("promised_days", 0)) > legal_days:
        problems["legal_days"] = "法定时限不能短于默认承诺时限"
    if problems:
        raise InvalidInput("catalog.standard_invalid", "事项标准填写有误", fields=problems)
    changes = {"name": str(name).strip(), "conditions": conditions, "legal_days": legal_days, "materials": materials}
    return before, await _write(store, before, changes, by=by, change="standard")


def fee_allowed(item: Mapping[str, Any]) -> bool:
    """Fees are local only where the standard charges one (free by law stays free)."""
    fee = item.get("fee") or {}
    return bool(fee.get("amount_yuan")) or bool(fee.get("local_allowed"))


async def update_local(
    store: Store, code: str, city: str, raw: Mapping[str, Any], *, by: str
) -> tuple[Document, Document]:
    """City/county: promised time limit (≤ legal), fee where allowed, a local note."""
    before = await get_item(store, code)
    problems: dict[str, str] = {}
    promised = _days(raw.get("promised_days"), "promised_days", problems)
    legal = int(before.get("legal_days", 0))
    if not problems and legal and promised > legal:
        problems["promised_days"] = f"承诺时限不能超过法定时限（{legal} 个工作日）"
    note = raw.get("note", "")
    if not isinstance(note, str) or len(note) > MAX_TEXT:
        problems["note"] = f"说明不超过 {MAX_TEXT} 字"
    fee: dict[str, Any] | None = None
    fee_raw = raw.get("fee_yuan")
    if fee_raw not in (None, ""):
        if not fee_allowed(before):
            problems["fee_yuan"] = "该事项按标准不收费，不能设置地方收费"
        else:
            try:
                amount = float(str(fee_raw))
                if not 0 <= amount <= 100_000:
                    raise ValueError
                fee = {"amount_yuan": amount, "note": str(raw.get("fee_note", ""))[:MAX_TEXT]}
            except ValueError:
                problems["fee_yuan"] = "收费金额不正确"
    if problems:
        raise InvalidInput("catalog.local_invalid", "本地实施信息填写有误", fields=problems)
    implementation: dict[str, Any] = {"promised_days": promised, "note": str(note).strip()}
    if fee is not None:
        implementation["fee"] = fee
    return before, await _write(store, before, {f"local.{city}": implementation}, by=by, change=f"local:{city}")


async def item_versions(store: Store, code: str, limit: int = 50) -> list[Document]:
    cursor = store["item_versions"].find({"code": code}, sort=[("version", -1)], limit=limit)
    return [v async for v in cursor]


# ---- halls: windows, opening hours, which items each window handles ---------------


def validate_hall_info(raw: Mapping[str, Any], item_codes: set[str]) -> dict[str, Any]:
    problems: dict[str, str] = {}
    hours: list[dict[str, str]] = []
    for i, entry in enumerate(raw.get("opening_hours") or []):
        days, span = str(entry.get("days", "")).strip(), str(entry.get("hours", "")).strip()
        if not days and not span:
            continue
        if not days or len(days) > 20 or not _HOURS.match(span):
            problems[f"opening_hours.{i}"] = "时间格式应为 09:00-12:00, 13:30-17:30"
        hours.append({"days": days, "hours": span})
    windows: list[dict[str, Any]] = []
    numbers: set[str] = set()
    for i, window in enumerate(raw.get("windows") or []):
        number, name = str(window.get("number", "")).strip(), str(window.get("name", "")).strip()
        if not number and not name:
            continue
        if not number or len(number) > 8 or number in numbers:
            problems[f"windows.{i}.number"] = "窗口号必填且不能重复"
        if not name or len(name) > 40:
            problems[f"windows.{i}.name"] = "请填写窗口名称"
        codes = [c for c in window.get("items", []) if c]
        unknown = [c for c in codes if c not in item_codes]
        if unknown:
            problems[f"windows.{i}.items"] = "没有这些事项：" + "、".join(unknown[:5])
        numbers.add(number)
        windows.append({"number": number, "name": name, "items": codes})
    if problems:
        raise InvalidInput("hall.invalid", "大厅信息填写有误", fields=problems)
    return {"opening_hours": hours, "windows": windows}


async def update_hall(store: Store, code: str, raw: Mapping[str, Any], *, by: str) -> tuple[Document, Document]:
    before = await store["halls"].find_one({"_id": code})
    if before is None:
        raise NotFound("catalog.hall_not_found", "找不到该服务大厅")
    item_codes = {d["_id"] async for d in store["items"].find({}, {"_id": 1})}
    clean = validate_hall_info(raw, item_codes)
    version = int(before.get("info_version", 1)) + 1
    now = utcnow()
    after = await store["halls"].find_one_and_update(
        {"_id": code, "info_version": before.get("info_version")},  # None also matches "never edited"
        {"$set": {**clean, "info_version": version, "edited": True, "updated_at": now}},
        return_document=ReturnDocument.AFTER,
    )
    if after is None:
        raise Conflict("hall.changed", "大厅信息已被他人修改，请刷新后再试")
    await store["content_versions"].insert_one(
        {"_id": f"hall:{code}:{version}", "content_id": f"hall:{code}", "kind": "hall", "version": version,
         "fields": clean, "note": "hall info", "at": now, "by": by}
    )
    await bump_version(store)
    return before, after


# ---- halls and the whole catalogue, for operators (python -m yiwang.admin) ----------------

_HALL_CODE = re.compile(r"^[a-z0-9-]{1,64}$")
CATALOGUE_PARTS = ("departments", "halls", "scenarios", "items")
_NOT_CONTENT = ("_id", "edited", "updated_at", "created_at", "created_by")


async def create_hall(store: Store, raw: Mapping[str, Any], *, by: str) -> Document:
    """A new service hall; its hours and windows are then edited in the console."""

    code, name = str(raw.get("code", "")), str(raw.get("name", "")).strip()
    city, address = str(raw.get("city", "")), str(raw.get("address", "")).strip()
    problems: dict[str, str] = {}
    if not _HALL_CODE.match(code):
        problems["code"] = "只能用小写字母、数字和连字符"
    if not 2 <= len(name) <= 60:
        problems["name"] = "请填写大厅名称（2–60 字）"
    if not (len(city) == 6 and city.isdigit() and city.endswith("00") and region_name(city) != city):
        problems["city"] = "请填写地级市的行政区划代码，如 440100"
    if len(address) > MAX_TEXT:
        problems["address"] = "地址过长"
    if problems:
        raise InvalidInput("catalog.hall_invalid", "大厅信息有误", fields=problems)
    doc: Document = {
        "_id": code, "code": code, "name": name, "region": str(raw.get("region") or city), "city": city,
        "address": address, "opening_hours": [], "windows": [], "edited": True, "created_by": by,
        "created_at": utcnow(),
    }  # fmt: skip
    if await store["halls"].find_one({"_id": code}, {"_id": 1}):
        raise Conflict("catalog.hall_exists", "该大厅编码已存在")
    await store["halls"].insert_one(doc)
    await bump_version(store)
    return doc


async def export_catalogue(store: Store) -> dict[str, list[Document]]:
    """Departments, halls, scenarios and items as they stand (the format ``import_catalogue`` reads)."""
    out: dict[str, list[Document]] = {}
    for part in CATALOGUE_PARTS:
        drop = ("_id", "updated_at", "created_at", "edited") + (("version",) if part == "items" else ())
        out[part] = [
            {k: v for k, v in doc.items() if k not in drop} async for doc in store[part].find({}, sort=[("_id", 1)])
        ]
    return out


def _validate_catalogue(data: Any) -> dict[str, list[Document]]:
    if not isinstance(data, dict) or not set(data) <= set(CATALOGUE_PARTS):
        raise InvalidInput(
            "catalog.import_invalid", "目录文件格式不正确：应为包含 departments/halls/scenarios/items 的对象"
        )
    clean: dict[str, list[Document]] = {}
    for part in CATALOGUE_PARTS:
        entries = data.get(part, [])
        if not isinstance(entries, list):
            raise InvalidInput("catalog.import_invalid", f"{part} 应为列表")
        codes: set[str] = set()
        for index, entry in enumerate(entries):
            code = entry.get("code") if isinstance(entry, dict) else None
            if not isinstance(code, str) or not code or len(code) > 64 or code in codes:
                raise InvalidInput("catalog.import_invalid", f"{part} 第 {index + 1} 项缺少编码或编码重复")
            named = isinstance(entry.get("name"), str) and isinstance(entry.get("department"), str)
            if part == "items" and not named:
                raise InvalidInput("catalog.import_invalid", f"事项 {code} 缺少名称或部门")
            codes.add(code)
        clean[part] = entries
    return clean


async def import_catalogue(store: Store, data: Any, *, by: str) -> dict[str, int]:
    """Apply an exported catalogue: checked whole first (nothing is written if any entry is wrong);
    departments, halls and scenarios replaced by code (and kept over the seed files), items written
    as new versions where they differ. Returns how many entries changed per part."""
    clean = _validate_catalogue(data)
    changed = dict.fromkeys(CATALOGUE_PARTS, 0)
    for part in ("departments", "halls", "scenarios"):
        for entry in clean[part]:
            existing = await store[part].find_one({"_id": entry["code"]})
            current = {k: v for k, v in (existing or {}).items() if k not in _NOT_CONTENT}
            if current != entry:
                await store[part].replace_one({"_id": entry["code"]}, {"_id": entry["code"], **entry, "edited": True},
                                              upsert=True)  # fmt: skip
                changed[part] += 1
    for entry in clean["items"]:
        existing = await store["items"].find_one({"_id": entry["code"]})
        if existing is None:
            now = utcnow()
            await store["items"].insert_one({"_id": entry["code"], **entry, "version": 1, "updated_at": now})
            await store["item_versions"].insert_one(
                {"_id": f"{entry['code']}:1", "code": entry["code"], "version": 1, "item": entry, "at": now, "by": by,
                 "change": "import"}
            )  # fmt: skip
            changed["items"] += 1
            continue
        current = {k: v for k, v in existing.items() if k not in ("_id", "version", "updated_at")}
        if current != entry:
            removed = {k: "" for k in current if k not in entry}
            await _write(store, existing, {**entry}, by=by, change="import")
            if removed:
                await store["items"].update_one({"_id": entry["code"]}, {"$unset": removed})
            changed["items"] += 1
    await bump_version(store)
    return changed
