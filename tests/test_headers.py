"""Headers and cookies, set in one place (web.base.apply_security_headers / BaseHandler.set_cookie)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from tests.kiosk_support import enrolled_kiosk
from tests.mobile_support import LI, prepare
from web.app import make_app
from web.base import SERVER_LIMITS
from yiwang.boot import open_services
from yiwang.catalog import load_catalog_files
from yiwang.config import load_config


@pytest.mark.parametrize("path", ["/kiosk/", "/verify", "/console/login", "/no-such-page", "/api/mobile/v1/docs"])
async def test_every_html_page_has_a_content_security_policy(client: Any, path: str) -> None:
    _, _, response = await client.get(path, headers={"Accept": "text/html"})
    assert response.content_type == "text/html"
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert "Server" not in response.headers


async def test_static_files_are_not_sniffed_or_framed(client: Any) -> None:
    status, _, response = await client.get("/static/kiosk/kiosk.css")
    assert status == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "Server" not in response.headers


@pytest.fixture
async def https_server(tmp_path: Any, config: Any, store: Any) -> AsyncIterator[tuple[str, Any]]:
    """The app as deployed behind TLS: PUBLIC_URL is https."""
    secure = load_config({"DATA_DIR": str(tmp_path), "PII_KEY": config.pii_key.hex(),
                          "BLIND_INDEX_KEY": config.blind_index_key.hex(), "COOKIE_SECRET": config.cookie_secret,
                          "WECHAT_APPID": config.wechat_appid, "WECHAT_SECRET": config.wechat_secret,
                          "WECHAT_API_BASE": config.wechat_api_base, "DEMO_DATA": "0",
                          "PUBLIC_URL": "https://yiwang.example.gov.cn"})  # fmt: skip
    services = await open_services(secure, store=store)
    sock, port = bind_unused_port()
    http = HTTPServer(make_app(services), **SERVER_LIMITS)
    http.add_sockets([sock])
    yield f"http://127.0.0.1:{port}", services
    http.stop()
    await http.close_all_connections()
    await services.close(close_store=False)


async def test_with_an_https_public_url_there_is_hsts_and_every_cookie_is_secure(https_server: Any) -> None:
    from tests.conftest import Client

    base, services = https_server
    await prepare(services)
    await load_catalog_files(services.store)
    services.catalog.invalidate()
    async with aiohttp.ClientSession() as session:
        client = Client(base, session)
        kiosk = await enrolled_kiosk(services, client)
        identified = await kiosk.identify({"id_number": LI[1], "name": LI[0]})
        _, _, response = await kiosk.post("/kiosk/api/session/adopt", json={"session": identified["session"]})
        assert response.headers["Strict-Transport-Security"].startswith("max-age=")
        cookies = response.headers.getall("Set-Cookie")
        assert cookies and all("Secure" in c for c in cookies), cookies
        _, _, response = await client.get("/console/login", headers={"Accept": "text/html"})
        assert "Strict-Transport-Security" in response.headers
        assert all("Secure" in c for c in response.headers.getall("Set-Cookie", []))
