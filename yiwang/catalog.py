"""The service catalogue (事项目录): items, life-event scenarios, halls.

Read-mostly, so it is served from memory and invalidated through a version
number in ``meta`` (``yiwang.versioned``: a change made by any process is seen
by all after their next background check). Search understands Chinese, pinyin initials and typos.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from pypinyin import Style, lazy_pinyin
from rapidfuzz import fuzz

from yiwang import activity, versioned
from yiwang.errors import InvalidInput, NotFound
from yiwang.store import Document, Store
from yiwang.timeutil import utcnow
from yiwang.versioned import Rendered, Versioned

DATA_DIR = Path(__file__).resolve().parent.parent / "data"

log = logging.getLogger(__name__)
CATALOG_VERSION_ID = "catalog_version"
CHANNELS = ("kiosk", "mobile", "window")


def _read(name: str) -> Any:
    return json.loads((DATA_DIR / name).read_text(encoding="utf-8"))


@functools.cache
def _region_names() -> dict[str, str]:
    return {entry["code"]: entry["name"] for entry in _read("regions.json")}


def region_name(code: str) -> str:
    """广州市 for ``440100`` (the province and its 21 prefecture-level cities, data/regions.json); else the code."""
    return _region_names().get(code, code)


VERSION_SOURCES = {"seed": "种子数据", "standard": "省级标准", "local": "市级实施"}


def version_source(change: str | None) -> str:
    """A catalogue version's ``change`` in Chinese: 种子数据, 省级标准, 市级实施（广州市）."""
    kind, _, region = (change or "seed").partition(":")
    label = VERSION_SOURCES.get(kind, kind)
    return f"{label}（{region_name(region)}）" if region else label


async def bump_version(store: Store) -> None:
    """Tell every process that the catalogue changed."""
    await versioned.bump(store, CATALOG_VERSION_ID)


async def _upsert_unless_edited(store: Store, collection: str, entries: list[dict[str, Any]]) -> None:
    """Seed entries by code; an entry edited in the console wins over the seed file."""
    for entry in entries:
        existing = await store[collection].find_one({"_id": entry["code"]}, {"edited": 1})
        if existing is None or not existing.get("edited"):
            await store[collection].replace_one({"_id": entry["code"]}, {"_id": entry["code"], **entry}, upsert=True)


async def load_catalog_files(store: Store) -> None:
    """Upsert the catalogue from data/ (idempotent). What the console edited
    (halls and scenarios marked ``edited``, items at version > 1) is kept."""
    await _upsert_unless_edited(store, "departments", _read("departments.json"))
    await _upsert_unless_edited(store, "halls", _read("halls.json"))
    await _upsert_unless_edited(store, "scenarios", _read("scenarios.json"))
    now = utcnow()
    for item in _read("items.json"):
        existing = await store["items"].find_one({"_id": item["code"]}, {"version": 1})
        if existing is None:
            document = {"_id": item["code"], **item, "version": 1, "updated_at": now}
            await store["items"].insert_one(document)
            await store["item_versions"].insert_one(
                {"_id": f"{item['code']}:1", "code": item["code"], "version": 1, "item": item, "at": now, "by": "seed"}
            )
        elif existing.get("version", 1) == 1:
            await store["items"].update_one({"_id": item["code"]}, {"$set": item})
    await bump_version(store)


# ---- search ---------------------------------------------------------------


def _pinyin_forms(text: str) -> tuple[str, str]:
    syllables = lazy_pinyin(text, errors="ignore")
    initials = lazy_pinyin(text, style=Style.FIRST_LETTER, errors="ignore")
    return "".join(syllables).lower(), "".join(initials).lower()


@dataclass(frozen=True)
class SearchEntry:
    code: str
    texts: tuple[str, ...]
    pinyin: tuple[str, ...]
    initials: tuple[str, ...]
    syllables: tuple[tuple[str, ...], ...]


def _search_entry(item: Mapping[str, Any]) -> SearchEntry:
    texts = tuple(t for t in [item["name"], item.get("short_name", ""), *item.get("keywords", [])] if t)
    forms = [_pinyin_forms(t) for t in texts]
    return SearchEntry(
        item["code"],
        texts,
        tuple(f[0] for f in forms),
        tuple(f[1] for f in forms),
        tuple(tuple(lazy_pinyin(t, errors="ignore")) for t in texts),
    )


def _syllable_window_match(query: Sequence[str], text: Sequence[str]) -> float:
    """Best share of query syllables matched in order by a window of the text:
    a homophone typo (社宝卡 for 社保卡) sounds the same and matches fully."""
    if not query or len(text) < len(query):
        return 0.0
    best = 0
    for start in range(len(text) - len(query) + 1):
        best = max(best, sum(a == b for a, b in zip(query, text[start : start + len(query)], strict=True)))
    return best / len(query)


def _score(entry: SearchEntry, query: str) -> float:
    q = query.strip().lower()
    if not q:
        return 0.0
    if q.isascii():
        best = 0.0
        for full, initials in zip(entry.pinyin, entry.initials, strict=True):
            if initials.startswith(q) or full.startswith(q):
                best = max(best, 100.0)
            elif q in initials or q in full:
                best = max(best, 90.0)
            elif len(q) >= 4:
                best = max(best, fuzz.partial_ratio(q, full) * 0.9)
        return best
    best = 0.0
    q_syllables = lazy_pinyin(q, errors="ignore")
    for text, syllables in zip(entry.texts, entry.syllables, strict=True):
        if q in text:
            return 100.0
        best = max(best, 95.0 * _syllable_window_match(q_syllables, syllables))
        if len(q) >= 3:  # a wrong or missing character in a longer query
            best = max(best, fuzz.partial_ratio(q, text) * 0.9)
    return best


SEARCH_THRESHOLD = 80.0

# ---- cache ------------------------------------------------------------------


@dataclass
class CatalogSnapshot:
    version: int
    items: dict[str, Document]
    scenarios: dict[str, Document]
    halls: dict[str, Document]
    departments: dict[str, Document]
    search: list[SearchEntry] = field(default_factory=list)


class Catalog:
    """The catalogue in memory (``yiwang.versioned``: loaded once per version, checked in the background)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._data: Versioned[CatalogSnapshot] = Versioned(store, CATALOG_VERSION_ID, self._load)

    async def snapshot(self) -> CatalogSnapshot:
        """The snapshot in memory. Once loaded, a request never waits on the database: another process's
        change shows after the next background version check (``versioned.REFRESH_SECONDS``)."""
        return await self._data.get()

    async def rendered(self, key: Hashable, build: Callable[[CatalogSnapshot], Any]) -> Rendered:
        """A view of this version serialised once (bytes and ETag); ``build`` may raise NotFound."""
        return await self._data.rendered(key, build)

    @property
    def version(self) -> int | None:
        """The version in memory (None before the first load)."""
        return self._data.version

    async def check(self) -> bool:
        """The background version check, run now (tests)."""
        return await self._data.check()

    def invalidate(self) -> None:
        self._data.invalidate()

    async def aclose(self) -> None:
        await self._data.aclose()

    async def _load(self, version: int) -> CatalogSnapshot:
        async def by_id(name: str) -> dict[str, Document]:
            return {doc["_id"]: doc async for doc in self._store[name].find({})}

        items = await by_id("items")
        return CatalogSnapshot(
            version=version,
            items=items,
            scenarios=await by_id("scenarios"),
            halls=await by_id("halls"),
            departments=await by_id("departments"),
            search=[_search_entry(item) for item in items.values()],
        )

    # ---- queries ----------------------------------------------------------

    async def item(self, code: str) -> Document:
        snap = await self.snapshot()
        try:
            return snap.items[code]
        except KeyError:
            raise NotFound("catalog.item_not_found", "找不到该事项") from None

    async def scenario(self, code: str) -> Document:
        snap = await self.snapshot()
        try:
            return snap.scenarios[code]
        except KeyError:
            raise NotFound("catalog.scenario_not_found", "找不到该场景") from None

    async def hall(self, code: str) -> Document:
        snap = await self.snapshot()
        try:
            return snap.halls[code]
        except KeyError:
            raise NotFound("catalog.hall_not_found", "找不到该服务大厅") from None

    async def items_list(self, *, channel: str | None = None) -> list[Document]:
        snap = await self.snapshot()
        return [i for i in snap.items.values() if channel is None or channel in i.get("channels", [])]

    async def scenarios_list(self) -> list[Document]:
        return list((await self.snapshot()).scenarios.values())

    async def search(self, query: str, *, channel: str | None = None, limit: int = 20) -> list[Document]:
        if len(query) > 50:
            raise InvalidInput("catalog.query_too_long", "搜索词不能超过 50 个字")
        snap = await self.snapshot()
        scored = [(_score(entry, query), entry.code) for entry in snap.search]
        hits = sorted(((s, c) for s, c in scored if s >= SEARCH_THRESHOLD), key=lambda sc: (-sc[0], sc[1]))
        results = [snap.items[c] for _, c in hits]
        if channel is not None:
            results = [i for i in results if channel in i.get("channels", [])]
        return results[:limit]


async def hot_items(
    store: Store, catalog: Catalog, *, channel: str | None = None, limit: int = 10, days: int = 30,
    hall: Mapping[str, Any] | None = None,
) -> list[Document]:
    """Hot first: applications over the last 30 local days (maintained counts, yiwang.activity), then the
    seeded popularity. Reads no application: the same few lookups whatever the number of applications.

    With ``hall``: that hall's hot items — the items its windows handle come first, then the rest."""
    counts = await activity.recent_item_counts(store)
    items = await catalog.items_list(channel=channel)
    here = {code for w in (hall or {}).get("windows", []) for code in w.get("items", [])}
    items.sort(key=lambda i: (i["code"] not in here if here else False, -counts.get(i["code"], 0),
                              -int(i.get("popularity", 0)), i["code"]))
    return items[:limit]


HOT_CACHE_SECONDS = 30.0


class HotLists:
    """Hot lists as made for a surface (ranked, shaped, serialised), kept in the process for HOT_CACHE_SECONDS
    and one catalogue version (a resource of the process). Concurrent misses share one build."""

    def __init__(self) -> None:
        self._cached: dict[Hashable, tuple[float, int | None, Any]] = {}
        self._pending: dict[Hashable, asyncio.Future[Any]] = {}

    async def get[T](self, key: Hashable, version: int | None, build: Callable[[], Awaitable[T]]) -> T:
        hit = self._cached.get(key)
        if hit is not None and hit[1] == version and time.monotonic() - hit[0] < HOT_CACHE_SECONDS:
            return cast(T, hit[2])
        running = self._pending.get(key)
        if running is not None:
            return cast(T, await asyncio.shield(running))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            found = await build()
            self._cached[key] = (time.monotonic(), version, found)
            future.set_result(found)
            return found
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        finally:
            self._pending.pop(key, None)

    async def aclose(self) -> None:
        self._cached.clear()


# ---- browsing (自助终端: by department, by theme) ---------------------------------

THEMES = {"personal": "个人", "legal": "法人"}  # 个人办事 / 法人办事, as the item's ``audience`` says


def item_audience(item: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(item.get("audience") or ("个人",))


def departments_with_items(snap: CatalogSnapshot) -> list[dict[str, Any]]:
    """Every department that has items: ``{code, name, count}``, the busiest first."""
    counts: dict[str, int] = {}
    for item in snap.items.values():
        counts[item["department"]] = counts.get(item["department"], 0) + 1
    rows = [{"code": code, "name": (snap.departments.get(code) or {}).get("name", code), "count": n}
            for code, n in counts.items()]
    return sorted(rows, key=lambda r: (-r["count"], r["code"]))


def items_of_department(snap: CatalogSnapshot, department: str) -> tuple[dict[str, Any], list[Document]]:
    """The department and its items, by popularity. NotFound for a department without items."""
    items = [i for i in snap.items.values() if i["department"] == department]
    if not items:
        raise NotFound("catalog.department_not_found", "找不到该部门的事项")
    dept = snap.departments.get(department) or {"code": department, "name": department}
    return dict(dept), sorted(items, key=lambda i: (-int(i.get("popularity", 0)), i["code"]))


def items_of_theme(snap: CatalogSnapshot, theme: str) -> tuple[str, list[Document]]:
    """个人 or 法人 (``theme`` = personal | legal): its label and its items, by popularity."""
    label = THEMES.get(theme)
    if label is None:
        raise NotFound("catalog.theme_not_found", "找不到该主题")
    items = [i for i in snap.items.values() if label in item_audience(i)]
    return label, sorted(items, key=lambda i: (-int(i.get("popularity", 0)), i["code"]))


# ---- scenario guidance (一次性告知) -----------------------------------------


@dataclass(frozen=True)
class PlannedMaterial:
    id: str
    name: str
    form: str
    copies: int
    required: bool
    note: str
    certificate_type: str | None
    no_need_to_bring: bool  # 免提交: the resident holds it as an e-certificate


@dataclass(frozen=True)
class PlannedItem:
    code: str
    name: str
    department: str
    channels: tuple[str, ...]
    window_required: bool
    promised_days: int
    legal_days: int
    fee: Mapping[str, Any]
    materials: tuple[PlannedMaterial, ...]
    windows: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    scenario: str
    name: str
    answers: Mapping[str, str]
    items: tuple[PlannedItem, ...]
    notes: tuple[str, ...]


def localised(item: Mapping[str, Any], city: str | None) -> dict[str, Any]:
    """The item as it is done in ``city``: the province's standard with the city's local
    implementation (promised time limit, fee where allowed, a note) laid over it."""
    local = (item.get("local") or {}).get(city or "") or {}
    result = dict(item)
    if "promised_days" in local:
        result["promised_days"] = int(local["promised_days"])
    if "fee" in local:
        result["fee"] = local["fee"]
    if local.get("note"):
        result["local_note"] = local["note"]
    return result


def ask_if_values(question: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """A question's ``ask_if``: ``{earlier question: answer or [answers]}`` → ``{qid: (answers, …)}``.
    Empty: always asked."""
    raw = question.get("ask_if") or {}
    return {str(k): (str(v),) if isinstance(v, str) else tuple(str(x) for x in v) for k, v in raw.items()}


def is_asked(question: Mapping[str, Any], answers: Mapping[str, Any]) -> bool:
    """Asked when every condition of its ``ask_if`` holds for the answers given so far."""
    return all(answers.get(qid) in values for qid, values in ask_if_values(question).items())


def asked_questions(scenario: Mapping[str, Any], answers: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The questions asked for these answers, in order (an ``ask_if`` looks only at earlier questions)."""
    asked: list[Mapping[str, Any]] = []
    given: dict[str, Any] = {}
    for question in scenario["questions"]:
        if is_asked(question, given):
            asked.append(question)
            if question["id"] in answers:
                given[question["id"]] = answers[question["id"]]
    return asked


def answer_combinations(questions: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Every way of answering (one option for each question that is asked), in order."""
    paths: list[dict[str, str]] = [{}]
    for question in questions:
        grown: list[dict[str, str]] = []
        for path in paths:
            if is_asked(question, path):
                grown.extend({**path, question["id"]: o["value"]} for o in question["options"])
            else:
                grown.append(path)
        paths = grown
    return paths


def validate_answers(scenario: Mapping[str, Any], answers: Mapping[str, Any]) -> dict[str, str]:
    """Every question that is asked answered with one of its options; answers to questions that
    these answers do not ask are dropped (the plan ignores them)."""
    problems: dict[str, str] = {}
    clean: dict[str, str] = {}
    known = {q["id"] for q in scenario["questions"]}
    for key in answers:
        if key not in known:
            problems[key] = "没有这个问题"
    questions = {q["id"]: q for q in asked_questions(scenario, answers)}
    for qid, question in questions.items():
        value = answers.get(qid)
        allowed = {o["value"] for o in question["options"]}
        if value is None:
            problems[qid] = "请回答：" + question["text"]
        elif value not in allowed:
            problems[qid] = "请选择给出的选项之一"
        else:
            clean[qid] = str(value)
    if problems:
        raise InvalidInput("scenario.answers_invalid", "请完整回答所有问题", fields=problems)
    return clean


def plan_scenario(
    scenario: Mapping[str, Any],
    answers: Mapping[str, Any],
    items: Mapping[str, Mapping[str, Any]],
    *,
    held_certificate_types: Iterable[str] = (),
    hall: Mapping[str, Any] | None = None,
) -> Plan:
    """The personal checklist: items in order, each with its exact materials."""
    clean = validate_answers(scenario, answers)
    held = set(held_certificate_types)
    ordered: list[str] = []
    for rule in scenario["rules"]:
        if all(clean.get(k) == v for k, v in rule["when"].items()):
            ordered.extend(code for code in rule["items"] if code not in ordered)
    windows_by_item: dict[str, list[str]] = {}
    for window in (hall or {}).get("windows", []):
        for code in window.get("items", []):
            windows_by_item.setdefault(code, []).append(window["number"])
    planned = []
    for code in ordered:
        item = localised(items[code], (hall or {}).get("city"))
        planned.append(
            PlannedItem(
                code=code,
                name=item["name"],
                department=item["department"],
                channels=tuple(item.get("channels", [])),
                window_required=bool(item.get("window_required")),
                promised_days=int(item.get("promised_days", 0)),
                legal_days=int(item.get("legal_days", 0)),
                fee=item.get("fee", {}),
                materials=tuple(_plan_material(m, held) for m in item.get("materials", [])),
                windows=tuple(windows_by_item.get(code, [])),
            )
        )
    return Plan(scenario["code"], scenario["name"], clean, tuple(planned), tuple(scenario.get("notes", [])))


def _plan_material(material: Mapping[str, Any], held: set[str]) -> PlannedMaterial:
    cert_type = material.get("certificate_type")
    return PlannedMaterial(
        id=material["id"],
        name=material["name"],
        form=material.get("form", "original"),
        copies=int(material.get("copies", 1)),
        required=bool(material.get("required", True)),
        note=material.get("note", ""),
        certificate_type=cert_type,
        no_need_to_bring=bool(cert_type and cert_type in held),
    )


def time_limit_text(promised_days: int, legal_days: int | None = None) -> str:
    """The time limit in a citizen's words: 即办 for same-day items, not "0 个工作日"."""
    promised, legal = int(promised_days or 0), int(legal_days or 0)
    if promised <= 0:
        return f"即办（法定 {legal} 个工作日）" if legal else "即办"
    return f"{promised} 个工作日（法定 {legal} 个）" if legal else f"{promised} 个工作日"


def item_summary(item: Mapping[str, Any]) -> dict[str, Any]:
    """The public fields of an item, for lists."""
    keys: Sequence[str] = (
        "code", "name", "short_name", "department", "kind", "legal_days", "promised_days", "fee", "channels",
        "window_required",
    )  # fmt: skip
    return {k: item.get(k) for k in keys}


def where_to_go(plan: Plan) -> dict[str, str]:
    """Per item of a plan, where the citizen does it (this hall's windows, this kiosk, the phone)."""
    labels = {}
    for item in plan.items:
        if item.windows:
            labels[item.code] = "到窗口办理：" + "、".join(f"{w} 号窗口" for w in item.windows)
        elif item.window_required:
            labels[item.code] = "需到窗口办理（本厅未设，请咨询导办台）"
        elif "kiosk" in item.channels:
            labels[item.code] = "本机可办"
        elif "mobile" in item.channels:
            labels[item.code] = "手机上办理"
        else:
            labels[item.code] = "请咨询导办台"
    return labels
