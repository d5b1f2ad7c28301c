"""Bad input gets a 4xx with the JSON error shape, never a 500 and never a half-written record.

The walker at the bottom takes every route of the app from the surfaces' route tables
(so a new route is covered the day it is added), fills the path parameters, and sends
each method it implements malformed bodies and query strings as the right kind of caller
(a resident's bearer token, a staff token, a kiosk's device credential, a console session)
and as nobody. The field names it poisons are read from the handlers' and the domain's
own source (``.get("name")``, ``get_query_argument("name")``, ``form("name")``).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import re
import socket
from typing import Any

import aiohttp
import pytest

from tests.conftest import ROOT, Client
from tests.console_support import Browserless
from tests.console_support import prepare as console_prepare
from tests.kiosk_support import enrolled_kiosk
from tests.mobile_support import LI, prepare
from tests.support.miniprogram import PREFIX, MiniProgram
from web.app import SURFACES
from yiwang.accounts import issue_staff_token

DEEP = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 200 + b"1" + b"}" * 200
SURROGATE = '"\\ud800"'


def _field_names() -> list[str]:
    """Names a handler or the domain reads from a request, taken from the source."""
    reads = r"(?:\.get|get_query_argument|get_argument|get_body_argument|form)"
    pattern = re.compile(reads + r"""\(\s*["']([a-z_]{2,40})["']""")
    names: set[str] = set()
    for folder in ("kiosk", "mobile_api", "console", "certs_api", "devices_api", "yiwang"):
        for path in (ROOT / folder).glob("*.py"):
            names.update(pattern.findall(path.read_text(encoding="utf-8")))
    return sorted(names)


FIELDS = _field_names()
POISONS: list[Any] = [[[]], {"$gt": ""}, 10**30, True, None, -1.5, "x" * 500]
SAMPLES = ("0" * 32, "000000000000", "a", "gz-th-center", "1.2.156.3005.2.x.y.1.001.Z", "png", "accept",
           "publish", "day", "next")  # fmt: skip


def _fill(pattern: str) -> str | None:
    """A concrete path for a route pattern (each group gets the first sample it accepts)."""
    pattern = pattern.rstrip("$")
    parts = re.split(r"(\([^)]*\))", pattern)
    out = []
    for part in parts:
        if part.startswith("("):
            group = re.compile(part + "$")
            value = next((s for s in SAMPLES if group.match(s)), None)
            if value is None:
                return None
            out.append(value)
        else:
            out.append(part.replace("\\.", ".").replace("/?", "/").replace("?", ""))
    return "".join(out)


def _routes() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for module in SURFACES:
        for rule in importlib.import_module(module).routes():
            pattern, handler = (rule[0], rule[1]) if isinstance(rule, tuple) else (rule.regex.pattern, rule.target)
            path = _fill(pattern)
            assert path is not None, f"the walker cannot fill {pattern}: add a sample"
            for method in ("get", "post", "put", "delete"):
                ours = [k for k in handler.__mro__ if k.__module__.split(".")[0] != "tornado"]
                if any(method in vars(klass) for klass in ours):
                    found.append((method.upper(), path))
    return found


def _bodies() -> list[tuple[str, bytes, str]]:
    """(label, body, content type): deep nesting, lone surrogates, wrong types, junk."""
    bodies = [
        ("deep array", DEEP, "application/json"),
        ("deep object", DEEP_OBJECT, "application/json"),
        ("not json", b"{'a':", "application/json"),
        ("deep values", ("{" + ",".join(f'"{n}":' + "[" * 150 + "]" * 150 for n in FIELDS) + "}").encode(),
         "application/json"),
        ("surrogate", ("{" + ",".join(f'"{n}":{SURROGATE}' for n in FIELDS) + "}").encode(), "application/json"),
        ("surrogate key", b'{"\\udfff":1}', "application/json"),
        ("top-level list", b"[1,2]", "application/json"),
        ("too large", b" " * (2 * 1024 * 1024), "application/json"),
        ("form junk", "&".join(f"{n}=%00%FF" for n in FIELDS).encode(), "application/x-www-form-urlencoded"),
        ("multipart junk", b"--x\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n\x00\r\n--x--\r\n",
         "multipart/form-data; boundary=x"),
    ]  # fmt: skip
    for poison in POISONS:
        bodies.append((f"all fields {json.dumps(poison)[:20]}", json.dumps({n: poison for n in FIELDS}).encode(),
                       "application/json"))  # fmt: skip
    return bodies


# A few hundred names each (a login redirect echoes the query: keep it under the client's 8 KB line).
QUERIES = [
    "&".join(f"{n}=" for n in FIELDS),
    "&".join(f"{n}=%00" for n in FIELDS),
    "&".join(f"{n}={'9' * 20}" for n in FIELDS[: len(FIELDS) // 2]),
    "&".join(f"{n}={'9' * 20}" for n in FIELDS[len(FIELDS) // 2 :]),
    "&".join(f"{n}=nan" for n in FIELDS),
    "&".join(f"{n}=-1" for n in FIELDS),
]


@pytest.fixture
async def callers(services: Any, client: Client, fake_wechat: Any, server: str) -> dict[str, dict[str, str]]:
    """Headers of each kind of caller, by route prefix."""
    await prepare(services, agents=True)
    await console_prepare(services)
    mp = MiniProgram(client, fake_wechat)
    await mp.login()
    await mp.bind(*LI)
    staff = await issue_staff_token(services, "gz-hrss", "walker")
    kiosk = await enrolled_kiosk(services, client)
    await kiosk.identify({"id_number": LI[1], "name": LI[0]})
    console = Browserless(server)
    await console.login("gd_admin")
    cookie = "; ".join(f"{c.key}={c.value}" for c in console.session.cookie_jar)
    await console.close()
    return {
        PREFIX + "/staff/": {"Authorization": f"Bearer {staff}"},
        PREFIX: {"Authorization": f"Bearer {mp.token}"},
        "/kiosk": kiosk.headers,
        "/api/redeem": {"Authorization": kiosk.headers["Authorization"]},
        "/console": {"Cookie": cookie, "X-XSRFToken": console.token},
    }


def _caller(callers: dict[str, dict[str, str]], path: str) -> dict[str, str]:
    for prefix, headers in callers.items():
        if path.startswith(prefix):
            return headers
    return {}


async def test_no_route_answers_malformed_input_with_a_server_error(callers, server: str) -> None:
    routes = _routes()
    assert len(routes) > 100
    failures: list[str] = []
    bodies = _bodies()

    # A new connection per request: a refused body closes its connection, by design.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:

        async def send(method: str, url: str, headers: dict[str, str], what: str, **kw: Any) -> None:
            try:
                async with http.request(method, url, headers=headers, allow_redirects=False, **kw) as response:
                    raw = await response.read()
                    if response.status >= 500:
                        failures.append(f"{method} {url[len(server) :][:80]} [{what}] → {response.status}")
                    elif response.status >= 400 and response.content_type == "application/json":
                        error = json.loads(raw)["error"]
                        assert error["code"] and error["message"], (method, url, raw[:200])
            except aiohttp.ClientError as exc:
                failures.append(f"{method} {url[len(server) :][:80]} [{what}] → {type(exc).__name__} {str(exc)[:200]}")

        for method, path in routes:
            headers = {**_caller(callers, path), "Accept": "application/json"}
            url = server + path
            if method in ("POST", "PUT", "DELETE"):
                for label, body, content_type in bodies:
                    await send(method, url, {**headers, "Content-Type": content_type}, label, data=body)
                # Unauthenticated: what a stranger reaches before any login.
                await send(method, url, {"Content-Type": "application/json"}, "deep, anonymous", data=DEEP)
            for query in QUERIES:
                body = b"{}" if method != "GET" else None
                await send(method, f"{url}?{query}", headers, "query " + query[:20], data=body)
    assert not failures, "\n".join(failures)


# ---- the particular holes ------------------------------------------------------------------


async def test_deeply_nested_json_is_refused_before_login(client: Client) -> None:
    for path in (PREFIX + "/session", PREFIX + "/staff/session", "/api/devices/v1/enrol"):
        status, body, _ = await client.post(path, data=b"[" * 100 + b"]" * 100,
                                            headers={"Content-Type": "application/json"})  # fmt: skip
        assert status == 400, (path, body)
        assert body["error"]["code"] == "request.json_too_deep"


async def test_lone_surrogates_are_refused_while_parsing(client: Client, fake_wechat: Any, services: Any) -> None:
    await prepare(services)
    mp = MiniProgram(client, fake_wechat)
    await mp.login()
    status, body, _ = await client.post(PREFIX + "/me/identity", data=b'{"name":"\\ud83d","id_number":"1"}',
                                        headers={**mp.headers, "Content-Type": "application/json"})  # fmt: skip
    assert status == 400 and body["error"]["code"] == "request.malformed_json"


async def test_a_list_where_a_string_belongs_is_a_400(client: Client, fake_wechat: Any, services: Any) -> None:
    await prepare(services)
    mp = MiniProgram(client, fake_wechat)
    await mp.login()
    await mp.bind(*LI)
    status, body, _ = await client.post(PREFIX + "/me/subscriptions", json={"template_ids": [[]]}, headers=mp.headers)
    assert status == 400, body
    status, body, _ = await client.post(PREFIX + "/complaints", json={"kind": ["x"], "text": "t"}, headers=mp.headers)
    assert status == 400, body


async def test_an_empty_query_value_is_refused_like_any_other_bad_value(client: Client) -> None:
    status, body, _ = await client.get(PREFIX + "/items?limit=")
    assert status == 400 and body["error"]["code"] == "request.query_invalid"
    status, _, _ = await client.get(PREFIX + "/items?limit=5")
    assert status == 200


async def test_a_nul_in_a_static_path_is_a_400(client: Client) -> None:
    status, body, response = await client.get("/static/kiosk/%00kiosk.css")
    assert status in (400, 404), status
    assert response.content_type == "application/json" and body["error"]["code"]


async def test_method_not_allowed_says_which_are(client: Client) -> None:
    status, body, response = await client.request("DELETE", PREFIX + "/me")
    assert status == 405
    assert response.headers["Allow"] == "GET"
    assert body["error"]["allowed"] == ["GET"]
    status, _, response = await client.request("PATCH", "/readyz")
    assert status == 405 and response.headers["Allow"] == "GET"


@pytest.mark.parametrize("sent", ["a" * 65, "x\u00e9y", "a b", "<script>", "../../x", ""])
async def test_a_request_id_that_is_not_a_short_safe_token_is_replaced(client: Client, sent: str) -> None:
    _, _, response = await client.get("/healthz", headers={"X-Request-Id": sent.encode("utf-8").decode("latin-1")})
    got = response.headers["X-Request-Id"]
    assert got != sent and re.fullmatch(r"[0-9a-f]{32}", got)


async def test_a_short_safe_request_id_is_kept(client: Client) -> None:
    _, _, response = await client.get("/healthz", headers={"X-Request-Id": "lb-7f3a.9_x"})
    assert response.headers["X-Request-Id"] == "lb-7f3a.9_x"


async def test_crlf_in_the_console_login_next_is_refused_and_leaves_no_session(services: Any, server: str) -> None:
    await console_prepare(services)
    console = Browserless(server)
    try:
        await console.get("/console/login")
        before = await services.store["console_sessions"].count_documents({})
        status, _ = await console.post(
            "/console/login", {"username": "gd_admin", "password": "correct-horse-battery-9",
                               "next": "/console/\r\nSet-Cookie: x=1"}, allow_redirects=False,
        )  # fmt: skip
        assert status == 400
        assert await services.store["console_sessions"].count_documents({}) == before
    finally:
        await console.close()


def _raw(server: str, request: bytes) -> bytes:
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


async def test_a_static_path_with_a_raw_nul_is_not_a_server_error(server: str) -> None:
    request = b"GET /static/a%00b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answer = await asyncio.to_thread(_raw, server, request)
    status = int(answer.split(b" ", 2)[1])
    assert 400 <= status < 500, answer[:200]
