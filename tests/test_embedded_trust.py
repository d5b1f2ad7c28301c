"""The embedded database is a server too: it wants credentials, keeps its files private,
and when its process dies the web server answers 503 at once and brings it back."""

from __future__ import annotations

import asyncio
import io
import os
import secrets
import signal
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from PIL import Image
from pymongo import AsyncMongoClient
from pymongo.errors import OperationFailure, PyMongoError
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from tests.conftest import ROOT, free_port
from web.app import make_app
from yiwang import audit, uploads
from yiwang.boot import open_services
from yiwang.config import load_config
from yiwang.dbwatch import DbWatch
from yiwang.embedded import EmbeddedMongo
from yiwang.files import read_env_file
from yiwang.runtime import Services


def _bare(port: int) -> AsyncMongoClient[dict[str, object]]:
    return AsyncMongoClient(f"mongodb://127.0.0.1:{port}/?directConnection=true", serverSelectionTimeoutMS=3000)


async def test_a_connection_without_the_credentials_can_neither_list_nor_read(tmp_path: Path) -> None:
    embedded = EmbeddedMongo(tmp_path / "yiwang.sqlite")
    uri = await asyncio.to_thread(embedded.start)
    try:
        good: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(uri)
        await good.yiwang.console_users.insert_one({"_id": "gd_admin", "password_hash": "$argon2id$…"})
        await good.close()
        bare = _bare(embedded.port)
        try:
            for attempt in (
                bare.list_database_names(),
                bare.yiwang.list_collection_names(),
                bare.yiwang.console_users.find_one({}),
                bare.yiwang.console_users.insert_one({"_id": "intruder"}),
                bare.admin.command("commitTransaction"),  # a command mongoeco itself forgot to guard
            ):
                with pytest.raises(OperationFailure, match="Authentication required"):
                    await attempt
        finally:
            await bare.close()
        wrong: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
            uri.replace(embedded.credentials[1], "not-the-password"), serverSelectionTimeoutMS=3000
        )
        with pytest.raises(OperationFailure, match="Authentication failed"):
            await wrong.yiwang.list_collection_names()
        await wrong.close()
    finally:
        await asyncio.to_thread(embedded.stop)

    secrets_file = tmp_path / "secrets.env"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    password = read_env_file(secrets_file)["EMBEDDED_DB_PASSWORD"]
    assert len(password) >= 40 and password not in " ".join(sys.argv)
    again = EmbeddedMongo(tmp_path / "yiwang.sqlite")  # generated once: the next start uses the same password
    assert again.credentials[1] == password


def _modes(folder: Path) -> dict[str, int]:
    found = {".": stat.S_IMODE(folder.stat().st_mode)}
    for path in folder.rglob("*"):
        found[str(path.relative_to(folder))] = stat.S_IMODE(path.stat().st_mode)
    return found


def test_data_dir_is_0700_and_everything_in_it_0600(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    port = free_port()
    env = dict(os.environ, PORT=str(port), DATA_DIR=str(data_dir), DEMO_DATA="0", AUDIT_VERIFY_SECONDS="5")
    env.pop("MONGODB_URI", None)
    server = subprocess.Popen(
        [sys.executable, "server.py"], cwd=ROOT, env=env, umask=0o022,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                with __import__("urllib.request").request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.3)
        else:
            pytest.fail("server did not become ready")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    modes = _modes(data_dir)
    assert {"yiwang.sqlite", "secrets.env", "embedded.uri"} <= set(modes)
    for name, mode in modes.items():
        expected = 0o700 if (data_dir / name).is_dir() else 0o600
        assert mode == expected, f"{name} is {oct(mode)}"


async def test_an_upload_leaves_no_file_behind_and_data_dir_stays_0700(services: Services) -> None:
    """Uploads live sealed in the database (yiwang.filestore), so nothing of them is on this host's disk."""
    image = io.BytesIO()
    Image.new("RGB", (64, 48), "white").save(image, "PNG")
    await uploads.store_upload(services, "owner-index", audit.SYSTEM, image.getvalue())
    assert stat.S_IMODE(services.config.data_dir.stat().st_mode) == 0o700
    folder = services.config.data_dir / "uploads"
    assert not folder.exists() or not list(folder.iterdir())


@pytest_asyncio.fixture
async def own_database(tmp_path: Path) -> AsyncIterator[tuple[str, Services]]:
    """The app with its own embedded database child (SQLite), as server.py runs it."""
    config = load_config(
        {
            "DATA_DIR": str(tmp_path),
            "PII_KEY": secrets.token_hex(16),
            "BLIND_INDEX_KEY": secrets.token_hex(32),
            "COOKIE_SECRET": secrets.token_hex(16),
            "DEMO_DATA": "0",
            "WORKERS": "2",
        }
    )
    services = await open_services(config)
    services.resources.get(DbWatch).first_delay = 1.0  # time enough to see the 503 before it is back
    app = make_app(services)
    sock, port = bind_unused_port()
    http = HTTPServer(app)
    http.add_sockets([sock])
    yield f"http://127.0.0.1:{port}", services
    http.stop()
    await http.close_all_connections()
    await services.close()


async def test_a_killed_database_is_a_fast_503_then_restarted_with_its_data(
    own_database: tuple[str, Services],
) -> None:
    base, services = own_database
    await services.store["meta"].insert_one({"_id": "before-the-crash", "value": "还在"})
    embedded = services.embedded
    assert embedded is not None and embedded.pid is not None
    async with aiohttp.ClientSession() as session:
        async with session.get(base + "/readyz") as response:
            assert response.status == 200
        os.kill(embedded.pid, signal.SIGKILL)
        while embedded.running():  # the kernel reaps it in a moment
            await asyncio.sleep(0.01)
        started = time.monotonic()
        async with session.get(base + "/api/mobile/v1/items") as response:
            body = await response.json()
            assert response.status == 503, body
        # At once, not after PyMongo's 5 s server-selection timeout (and not a 500).
        assert time.monotonic() - started < 2.5
        assert body["error"]["code"] == "db.unavailable" and body["error"]["message"]
        async with session.get(base + "/readyz") as response:
            ready = await response.json()
            assert response.status == 503 and ready["db"] == "restarting"
        async with session.get(base + "/healthz") as response:
            assert response.status == 200  # alive: the process itself is fine
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            async with session.get(base + "/readyz") as response:
                if response.status == 200:
                    break
            await asyncio.sleep(0.2)
        else:
            pytest.fail("the database did not come back")
    assert services.resources.get(DbWatch).restarts == 1
    assert embedded.pid is not None and embedded.running()
    try:
        kept = await services.store["meta"].find_one({"_id": "before-the-crash"})
    except PyMongoError as error:  # pragma: no cover - a failure message, not a branch
        pytest.fail(f"store did not reconnect: {error}")
    assert kept is not None and kept["value"] == "还在"
