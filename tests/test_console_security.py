"""Console security: CSRF, session fixation, brute force, role escalation, hall scoping, HTML injection."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest_asyncio

from tests.console_support import Browserless, prepare
from yiwang import audit
from yiwang.runtime import Services


@pytest_asyncio.fixture
async def console(services: Services, server: str) -> AsyncIterator[str]:
    await prepare(services)
    yield server


async def new_client(base: str) -> Browserless:
    return Browserless(base)


NOTICE = {"kind": "notice", "title": "天河大厅停电通知", "body_html": "<p>周六停电</p>", "level": "important",
          "target_scope": "hall", "target_hall": "gz-th-center"}  # fmt: skip


async def create_notice(c: Browserless) -> str:
    await c.get("/console/notices/new")
    status, text = await c.post("/console/notices", NOTICE)
    assert status == 200, text
    found = re.search(r"/console/notices/([0-9a-f]{32})/publish", text)
    assert found
    return found.group(1)


async def test_pages_need_login_and_wrong_password_is_refused(console: str) -> None:
    c = await new_client(console)
    try:
        status, text = await c.get("/console/notices")
        assert status == 200 and "管理后台登录" in text  # redirected to the login page
        status, text = await c.login("th_hall", "wrong-password-123")
        assert status == 401 and "用户名或密码错误" in text
        status, text = await c.login("th_hall")
        assert status == 200 and "您好" in text
    finally:
        await c.close()


async def test_missing_or_wrong_csrf_token_is_refused_and_changes_nothing(console: str, services: Services) -> None:
    c = await new_client(console)
    try:
        await c.get("/console/login")
        status, text = await c.post("/console/login", {"username": "th_hall", "password": "x" * 12}, token="")
        assert status == 403 and "页面已过期" in text
        await c.login("th_hall")
        status, _ = await c.post("/console/notices", NOTICE, token="")
        assert status == 403
        status, _ = await c.post("/console/notices", NOTICE, token="forged-token")
        assert status == 403
        assert await services.store["content"].count_documents({}) == 0
    finally:
        await c.close()


async def test_session_fixation_a_planted_cookie_never_becomes_a_session(console: str) -> None:
    c = await new_client(console)
    try:
        await c.get("/console/login")
        c.session.cookie_jar.update_cookies({"yw_console": "attacker-chosen"})
        await c.login("th_hall")
        after = c.cookie("yw_console")
        assert after and after != "attacker-chosen"
        # The cookie from before login is not a session: a second client using it is not logged in.
        other = await new_client(console)
        other.session.cookie_jar.update_cookies({"yw_console": "attacker-chosen"})
        _, text = await other.get("/console/notices")
        assert "管理后台登录" in text
        await other.close()
        # Logging in again issues yet another session.
        await c.login("th_hall")
        assert c.cookie("yw_console") not in (after, None)
    finally:
        await c.close()


async def test_session_cookie_is_httponly_and_samesite(console: str) -> None:
    c = await new_client(console)
    try:
        await c.get("/console/login")
        async with c.session.post(
            console + "/console/login",
            data={"username": "th_hall", "password": "correct-horse-battery-9", "_xsrf": c.token},
            allow_redirects=False,
        ) as response:
            assert response.status == 302
            header = next(v for v in response.headers.getall("Set-Cookie") if v.startswith("yw_console="))
        assert "HttpOnly" in header and "SameSite=Strict" in header and "Path=/console" in header
    finally:
        await c.close()


async def test_brute_force_is_throttled_even_with_the_right_password(console: str, services: Services) -> None:
    c = await new_client(console)
    try:
        for _ in range(5):
            status, _ = await c.login("th_hall", "wrong-password-123")
            assert status == 401
        status, text = await c.login("th_hall")
        assert status == 429 and "登录失败次数过多" in text
        entries = await services.store["audit"].count_documents({"action": "console.login_failed"})
        assert entries == 6
    finally:
        await c.close()


async def test_hall_manager_cannot_see_or_change_another_halls_notice(console: str, services: Services) -> None:
    owner, other = await new_client(console), await new_client(console)
    try:
        await owner.login("th_hall")
        content_id = await create_notice(owner)
        await other.login("yx_hall")
        status, text = await other.get("/console/notices")
        assert "天河大厅停电通知" not in text
        status, _ = await other.get(f"/console/notices/{content_id}")
        assert status == 403
        status, _ = await other.post(f"/console/notices/{content_id}", {**NOTICE, "title": "篡改"})
        assert status == 403
        status, _ = await other.post(f"/console/notices/{content_id}/publish", {})
        assert status == 403
        # Through the JSON API too, with a valid CSRF header.
        async with other.session.get(console + f"/console/api/notices/{content_id}") as r:
            assert r.status == 403 and (await r.json())["error"]["code"] == "console.forbidden"
        async with other.session.post(
            console + f"/console/api/notices/{content_id}", json={"title": "篡改", "target": {"scope": "all"}},
            headers={"X-XSRFToken": other.token},
        ) as r:
            assert r.status == 403
        doc = await services.store["content"].find_one({"_id": content_id})
        assert doc is not None and doc["draft"]["title"] == "天河大厅停电通知" and doc["status"] == "draft"
    finally:
        await owner.close()
        await other.close()


async def test_role_escalation_hall_manager_cannot_target_city_or_other_hall(console: str, services: Services) -> None:
    c = await new_client(console)
    try:
        await c.login("th_hall")
        await c.get("/console/notices/new")
        for target in (
            {"target_scope": "all"},
            {"target_scope": "city", "target_city": "440100"},
            {"target_scope": "hall", "target_hall": "gz-yx-center"},
            {"target_scope": "group", "target_hall": "sz-ft-center", "target_group": "lobby"},
        ):
            status, _ = await c.post("/console/notices", {**NOTICE, **target})
            assert status == 403, target
        content_id = await create_notice(c)
        # Moving one's own notice into another hall is refused as well.
        status, _ = await c.post(f"/console/notices/{content_id}", {**NOTICE, "target_hall": "gz-yx-center"})
        assert status == 403
        assert await services.store["content"].count_documents({}) == 1
    finally:
        await c.close()


async def test_html_injection_is_sanitised_and_escaped(console: str, services: Services) -> None:
    c = await new_client(console)
    try:
        await c.login("th_hall")
        await c.get("/console/notices/new")
        body = '<p>正文</p><script>alert(1)</script><a href="javascript:alert(1)" onclick="x()">点</a>'
        evil = {**NOTICE, "title": '<img src=x onerror="alert(1)">标题', "body_html": body}
        status, text = await c.post("/console/notices", evil)
        assert status == 200
        assert "<img src=x" not in text and "&lt;img src=x" in text
        content_id = re.search(r"/console/notices/([0-9a-f]{32})/publish", text).group(1)  # type: ignore[union-attr]
        status, rendered = await c.get(f"/console/notices/{content_id}/render")
        assert "<script>" not in rendered and "javascript:" not in rendered and "onclick" not in rendered
        assert "<p>正文</p>" in rendered
    finally:
        await c.close()


async def test_every_change_is_audited_with_before_and_after(console: str, services: Services) -> None:
    c = await new_client(console)
    try:
        await c.login("th_hall")
        content_id = await create_notice(c)
        await c.post(f"/console/notices/{content_id}", {**NOTICE, "title": "新标题"})
        await c.post(f"/console/notices/{content_id}/publish", {})
        entries = await audit.history(services.store, "content:" + content_id)
        actions = [e["action"] for e in entries]
        assert actions == ["content.publish", "content.save_draft", "content.create"]
        save = entries[1]
        assert save["detail"]["before"]["title"] == "天河大厅停电通知" and save["detail"]["after"]["title"] == "新标题"
        assert save["actor"]["kind"] == "console_user" and save["channel"] == "console"
        assert (await audit.verify_chain(services.store))[0]
    finally:
        await c.close()
