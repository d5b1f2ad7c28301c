"""Notices: drafts, publish, rollback, targeting, schedule, sanitising."""

from __future__ import annotations

import datetime as dt

import pytest

from yiwang import content
from yiwang.catalog import load_catalog_files
from yiwang.errors import InvalidInput
from yiwang.store import Store
from yiwang.timeutil import utcnow


def notice(**overrides: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "title": "系统升级通知",
        "body_html": "<p>本周六<strong>暂停</strong>服务</p>",
        "level": "important",
        "target": {"scope": "hall", "hall": "gz-th-center"},
    }
    fields.update(overrides)
    return fields


async def test_draft_is_not_shown_until_published_then_rollback_restores_old_text(store: Store) -> None:
    await load_catalog_files(store)
    doc = await content.create_draft(store, "notice", notice(), by="u1")
    assert await content.published_notices(store, "gz-th-center") == []
    await content.publish(store, doc["_id"], by="u1")
    shown = await content.published_notices(store, "gz-th-center")
    assert [n["title"] for n in shown] == ["系统升级通知"]
    assert await content.published_notices(store, "gz-yx-center") == []
    await content.save_draft(store, doc["_id"], notice(title="新标题"), by="u1")
    assert (await content.published_notices(store, "gz-th-center"))[0]["title"] == "系统升级通知"
    await content.publish(store, doc["_id"], by="u1")
    assert (await content.published_notices(store, "gz-th-center"))[0]["title"] == "新标题"
    _, after = await content.rollback(store, doc["_id"], 1, by="u1")
    assert after["version"] == 3
    assert (await content.published_notices(store, "gz-th-center"))[0]["title"] == "系统升级通知"
    assert [v["version"] for v in await content.versions(store, doc["_id"])] == [3, 2, 1]


async def test_city_target_and_schedule(store: Store) -> None:
    await load_catalog_files(store)
    now = utcnow()
    doc = await content.create_draft(
        store,
        "banner",
        notice(target={"scope": "city", "city": "440100"}, starts_at=now + dt.timedelta(hours=1)),
        by="u1",
    )
    await content.publish(store, doc["_id"], by="u1")
    assert await content.published_notices(store, "gz-ch-center", now) == []
    later = now + dt.timedelta(hours=2)
    assert len(await content.published_notices(store, "gz-ch-center", later)) == 1
    assert await content.published_notices(store, "sz-ft-center", later) == []


async def test_html_is_sanitised_and_bad_input_changes_nothing(store: Store) -> None:
    await load_catalog_files(store)
    evil = '<p onclick="x()">hi<script>alert(1)</script><a href="javascript:x">l</a></p>'
    doc = await content.create_draft(store, "notice", notice(body_html=evil), by="u1")
    body = doc["draft"]["body_html"]
    assert "script" not in body and "onclick" not in body and "javascript" not in body
    with pytest.raises(InvalidInput) as caught:
        await content.save_draft(store, doc["_id"], notice(title="", target={"scope": "hall", "hall": "nope"}), by="u1")
    assert set(caught.value.fields or {}) >= {"title", "target"}
    assert (await content.get(store, doc["_id"]))["draft"]["title"] == "系统升级通知"
