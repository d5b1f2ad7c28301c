"""Start-up, shutdown and restart behave as operators expect."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from server import Running, bind, listen, shutdown
from tests.conftest import ROOT, free_port
from web.app import make_app
from web.base import APIHandler
from yiwang import migrations
from yiwang.boot import open_services
from yiwang.config import Config
from yiwang.embedded import EmbeddedMongo
from yiwang.store import Store


class SlowHandler(APIHandler):
    async def get(self) -> None:
        await asyncio.sleep(1.0)
        self.write_json({"finished": True})


async def test_request_in_flight_when_shutdown_starts_completes(store: Store, mongo_uri: str, config: Config) -> None:
    port = free_port()
    # Its own client on the test's database: shutdown closes it as server.py does.
    services = await open_services(config, store=Store.connect(mongo_uri, store.db.name))
    app = make_app(services, extra_routes=[(r"/slow", SlowHandler)])
    running = Running(app, listen(app, bind(Config(**{**config.__dict__, "port": port}))), services)
    async with aiohttp.ClientSession() as session:
        in_flight = asyncio.create_task(session.get(f"http://127.0.0.1:{port}/slow"))
        await asyncio.sleep(0.3)  # the request is now being handled
        closing = asyncio.create_task(shutdown(running, grace_seconds=5))
        response = await in_flight
        assert response.status == 200
        assert await response.json() == {"finished": True}
        await closing
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(f"http://127.0.0.1:{port}/healthz")


def test_embedded_database_keeps_data_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"

    async def write(uri: str) -> None:
        store = Store.connect(uri, "restart")
        await store.prepare()
        await migrations.run(store)
        await store["meta"].insert_one({"_id": "kept", "value": "写入的数据"})
        await store.close()

    async def read(uri: str) -> object:
        store = Store.connect(uri, "restart")
        found = await store["meta"].find_one({"_id": "kept"})
        version = await store["meta"].find_one({"_id": "schema_version"})
        await store.close()
        return found, version

    first = EmbeddedMongo(path)
    asyncio.run(write(first.start()))
    first.stop()
    second = EmbeddedMongo(path)
    found, version = asyncio.run(read(second.start()))
    second.stop()
    assert found == {"_id": "kept", "value": "写入的数据"}
    assert version is not None and version["version"] >= 1


@pytest.mark.slow
def test_server_process_starts_serves_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = dict(os.environ, PORT=str(port), DATA_DIR=str(tmp_path), DEMO_DATA="1", LOG_LEVEL="INFO")
    process = subprocess.Popen(
        [sys.executable, "server.py"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        ready = _wait_ready(port, process)
        assert isinstance(ready, dict) and (ready["status"], ready["db"]) == ("ok", "ok")
        assert ready["audit"]["state"] == "intact"
        secrets_file = tmp_path / "secrets.env"
        assert secrets_file.stat().st_mode & 0o777 == 0o600
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
    assert '"msg": "stopped"' in err
    assert "Traceback" not in err
    # No personal data of the demo residents reached the logs.
    assert "440104195203122151" not in err + out


def _wait_ready(port: int, process: subprocess.Popen[str]) -> object:
    import json
    import urllib.request

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError("server exited early: " + (process.stderr.read() if process.stderr else ""))
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                return json.loads(response.read())
        except OSError:
            time.sleep(0.3)
    raise AssertionError("server did not become ready")


def test_a_port_in_use_stops_start_up_before_the_database_starts(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = dict(os.environ, PORT=str(port), DATA_DIR=str(tmp_path), DEMO_DATA="0")
        result = subprocess.run(
            [sys.executable, "server.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
        )
    assert result.returncode == 1
    assert "无法启动" in result.stderr
    assert not (tmp_path / "yiwang.sqlite").exists()


def test_embedded_database_stops_when_its_server_dies(tmp_path: Path) -> None:
    code = (
        "import sys, time; from pathlib import Path; from yiwang.embedded import EmbeddedMongo; "
        "e = EmbeddedMongo(Path(sys.argv[1])); e.start(); print(e._process.pid, flush=True); time.sleep(60)"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path / "db.sqlite")], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    parent.kill()  # no chance to stop its child
    parent.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _alive(child_pid):
        time.sleep(0.2)
    assert not _alive(child_pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by init) counts as gone.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"


def _children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append((int(entry.name), cmdline))
    return found


@pytest.mark.slow
def test_two_server_processes_share_the_port_and_one_database_and_stop_together(tmp_path: Path) -> None:
    import urllib.request

    port = free_port()
    env = dict(os.environ, PORT=str(port), DATA_DIR=str(tmp_path), DEMO_DATA="1", PROCESSES="2", LOG_LEVEL="INFO")
    process = subprocess.Popen(
        [sys.executable, "server.py"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        ready = _wait_ready(port, process)
        assert isinstance(ready, dict) and (ready["status"], ready["db"]) == ("ok", "ok")
        children = _children(process.pid)
        workers = [pid for pid, command in children if "server.py" in command]
        databases = [pid for pid, command in children if "yiwang.embedded" in command]
        assert len(workers) == 2 and len(databases) == 1, children
        for _ in range(20):  # fresh connections, spread over both workers by the kernel
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/verify/v1/keys", timeout=5) as response:
                assert response.status == 200
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
    assert err.count('"msg": "stopped"') == 3  # each worker, then the parent after the database
    assert "Traceback" not in err
    for pid in workers + databases:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
