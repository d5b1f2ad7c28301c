"""Two `server.py` processes on one database (separate ports, separate DATA_DIRs): what one process
does reaches the other. A notice published on A reaches a kiosk connected to B; a consent release
on A wakes the kiosk's long-poll on B; login throttles count across both; an upload made through
A is read through B (uploads live in the database, not on A's disk)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest_asyncio

from tests.conftest import ROOT, Client, free_port
from tests.console_support import Browserless
from tests.console_support import prepare as prepare_console
from tests.mobile_support import LI
from tests.support.fake_wechat import FakeWeChat
from tests.support.miniprogram import MiniProgram, jpeg_bytes
from yiwang import devices
from yiwang.config import Config
from yiwang.runtime import Services
from yiwang.seed import load_demo_data


class ServerProcess:
    def __init__(self, name: str, env: dict[str, str], port: int, log: Path) -> None:
        self.name, self.port, self.log = name, port, log
        self.url = f"http://127.0.0.1:{port}"
        self._out = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "server.py")], cwd=ROOT, env=env, stdout=self._out, stderr=subprocess.STDOUT
        )

    async def ready(self, timeout: float = 90.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with aiohttp.ClientSession() as http:
            while loop.time() < deadline:
                if self.process.poll() is not None:
                    raise AssertionError(f"{self.name} exited: {self.log.read_text()[-3000:]}")
                try:
                    async with http.get(self.url + "/readyz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
        raise AssertionError(f"{self.name} did not become ready: {self.log.read_text()[-3000:]}")

    async def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                await asyncio.to_thread(self.process.wait, 20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                await asyncio.to_thread(self.process.wait)
        self._out.close()


def server_env(config: Config, services: Services, fake: FakeWeChat, data_dir: Path, port: int, uri: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGODB", "PROMETHEUS", "NOTIFY_SOCKET"))}
    env.update({
        "HOST": "127.0.0.1", "PORT": str(port), "PUBLIC_URL": f"http://127.0.0.1:{port}",
        "MONGODB_URI": uri, "MONGODB_DB": services.store.db.name, "DATA_DIR": str(data_dir),
        "PII_KEY": config.pii_key.hex(), "BLIND_INDEX_KEY": config.blind_index_key.hex(),
        "COOKIE_SECRET": config.cookie_secret, "AUDIT_KEY": config.audit_key.hex(),
        "WECHAT_APPID": fake.appid, "WECHAT_SECRET": fake.secret, "WECHAT_API_BASE": fake.url,
        "DEMO_DATA": "0", "WORKERS": "2", "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT),
    })  # fmt: skip
    return env


@pytest_asyncio.fixture
async def two_servers(
    config: Config, services: Services, fake_wechat: FakeWeChat, mongo_uri: str, tmp_path: Path
) -> AsyncIterator[tuple[ServerProcess, ServerProcess]]:
    await load_demo_data(services)
    await prepare_console(services)
    started = []
    try:
        for name in ("a", "b"):
            port = free_port()
            env = server_env(config, services, fake_wechat, tmp_path / name, port, mongo_uri)
            started.append(ServerProcess(name, env, port, tmp_path / f"server-{name}.log"))
        await asyncio.gather(*(s.ready() for s in started))
        yield started[0], started[1]
    finally:
        for server in started:
            await server.stop()


async def test_push_consent_throttle_and_upload_cross_between_two_server_processes(
    services: Services, fake_wechat: FakeWeChat, two_servers: tuple[ServerProcess, ServerProcess]
) -> None:
    a, b = two_servers
    code = await devices.create_enrolment_code(services, "gz-th-center", "两进程测试机")
    device, credential = await devices.enrol(services, code["code"], software_version="t")
    kiosk_auth = {"Authorization": f"Device {device.id}:{credential}"}

    async with aiohttp.ClientSession() as http:
        # 1. Push: the kiosk is connected to B; a notice is published on A's console.
        ws = await http.ws_connect(b.url.replace("http", "ws") + "/api/devices/v1/channel", headers=kiosk_auth)
        await ws.send_json({"type": "hello", "last_seq": 0})
        assert (await ws.receive_json(timeout=10))["type"] == "welcome"
        console = Browserless(a.url)
        try:
            status, _ = await console.login("th_hall")
            assert status == 200
            await console.get("/console/notices/new")
            status, page = await console.post("/console/notices", {
                "kind": "notice", "title": "两进程通知", "body_html": "<p>跨进程推送</p>", "level": "info",
                "target_scope": "hall", "target_hall": "gz-th-center"})  # fmt: skip
            assert status == 200, page
            content_id = re.search(r"/console/notices/([0-9a-f]{32})/publish", page).group(1)  # type: ignore[union-attr]
            status, _ = await console.post(f"/console/notices/{content_id}/publish", {})
            assert status == 200
        finally:
            await console.close()
        frame = await ws.receive_json(timeout=15)
        assert frame["type"] == "message" and content_id in json.dumps(frame)
        await ws.close()

        # 2. Consent: the kiosk long-polls on B; the resident releases on A; B's waiter wakes.
        resident = MiniProgram(Client(a.url, http), fake_wechat)
        await resident.login()
        await resident.bind(*LI)
        [card] = [c["id"] for c in (await resident.get("/certificates"))["certificates"]][:1]
        async with http.post(b.url + "/api/redeem/v1/consent-sessions", json={"purpose": "办理社保卡"},
                             headers=kiosk_auth) as response:  # fmt: skip
            assert response.status == 201
            session = await response.json()

        async def kiosk_waits() -> Any:
            url = b.url + f"/api/redeem/v1/consent-sessions/{session['session_id']}"
            async with http.get(url, params={"wait": "30"}, headers=kiosk_auth) as r:
                return r.status, await r.json()

        waiting = asyncio.create_task(kiosk_waits())
        await asyncio.sleep(0.5)  # let the long-poll start waiting on B (it would also see a release made before)
        assert not waiting.done()
        released = await resident.post("/consent/release", {"code": session["qr_text"], "certificate_ids": [card]})
        assert released["released"] == 1
        status, woken = await asyncio.wait_for(waiting, 20)
        assert status == 200 and woken["status"] == "released" and len(woken["certificates"]) == 1

        # 3. Throttle: wrong passwords on A and on B add up to one limit (5 a minute per name and address).
        statuses = []
        for server in (a, a, a, b, b, b):
            c = Browserless(server.url)
            try:
                statuses.append((await c.login("yx_hall", "wrong-password-123"))[0])
            finally:
                await c.close()
        assert statuses == [401, 401, 401, 401, 401, 429]
        throttled = await services.store["throttles"].find_one({"_id": {"$regex": "^login.pair.1m:"}})
        assert throttled is not None and throttled["count"] >= 5

        # 4. Upload: made through A, read through B (whose DATA_DIR never saw it).
        photo = await resident.upload(jpeg_bytes())
        through_a = await http.get(a.url + f"/api/mobile/v1/uploads/{photo['id']}", headers=resident.headers)
        body_a = await through_a.read()
        through_b = await http.get(b.url + f"/api/mobile/v1/uploads/{photo['id']}", headers=resident.headers)
        body_b = await through_b.read()
        assert through_b.status == 200 and through_b.headers["Content-Disposition"].startswith("attachment")
        assert through_b.headers["X-Content-Type-Options"] == "nosniff"
        assert body_b == body_a and body_b[:2] == b"\xff\xd8"
        assert not (Path(a.log).parent / "a" / "uploads").exists()
