"""Running on a kiosk: systemd notifications and watchdog, the installer, the units, a bounded offline cache."""

from __future__ import annotations

import configparser
import json
import os
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from device_agent.cache import OfflineCache
from device_agent.sd_notify import Notifier
from tests.conftest import ROOT
from tests.support.device_agent import start_agent, wait_for
from yiwang.runtime import Services

AGENT = ROOT / "device_agent"


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(AGENT / "systemd" / name, encoding="utf-8")
    return parser


def notify_socket(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    return sock


def received(sock: socket.socket) -> list[str]:
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


def test_sd_notify_speaks_the_datagram_protocol_including_the_abstract_namespace(tmp_path: Path) -> None:
    with notify_socket(tmp_path / "notify") as sock:
        notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify")})
        notifier.ready("ok")
        assert received(sock) == ["READY=1\nSTATUS=ok"]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as abstract:
        name = f"yiwang-test-{os.getpid()}"
        abstract.bind("\0" + name)
        Notifier({"NOTIFY_SOCKET": "@" + name}).stopping()
        assert abstract.recv(100) == b"STOPPING=1"
    assert not Notifier({}).notify("READY=1")  # not under systemd: nothing to do
    assert Notifier({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}).watchdog_seconds == 0  # someone else's


async def test_the_agent_tells_systemd_it_is_ready_pings_the_watchdog_and_says_when_it_stops(
    services: Services, server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from yiwang.seed import load_demo_data

    await load_demo_data(services)
    sock = notify_socket(tmp_path / "notify")
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # 0.2 s: a ping every 0.1 s
    running = await start_agent(services, server, tmp_path / "agent")
    try:
        messages: list[str] = []
        await wait_for(lambda: messages.extend(received(sock)) or sum(m == "WATCHDOG=1" for m in messages) >= 3,
                       what="watchdog pings")
        assert messages[0].startswith("READY=1\nSTATUS=kiosk page on http://127.0.0.1:")
    finally:
        await running.runner.cleanup()
    assert "STOPPING=1" in received(sock)
    sock.close()


def test_the_installer_puts_only_the_agent_on_the_kiosk_with_private_settings(tmp_path: Path) -> None:
    command = [str(AGENT / "install" / "install.sh"), "--root", str(tmp_path), "--no-apt", "--no-venv",
               "--no-systemd", "--server", "https://yiwang.example.gov.cn", "--code", "ABCD-EFGH-JKLM"]
    subprocess.run(command, check=True, capture_output=True)
    opt = tmp_path / "opt" / "yiwang-agent"
    assert sorted(p.name for p in opt.iterdir()) == ["device_agent", "kiosk-browser", "qrscan"]
    assert (opt / "device_agent" / "__main__.py").exists() and not list(opt.rglob("__pycache__"))
    env = tmp_path / "etc" / "yiwang" / "device-agent.env"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert "AGENT_ENROLMENT_CODE=ABCD-EFGH-JKLM" in env.read_text() and "AGENT_DRIVERS=hardware" in env.read_text()
    env.write_text("AGENT_SERVER=https://edited.example\n")
    subprocess.run(command, check=True, capture_output=True)  # an upgrade keeps the technician's settings
    assert env.read_text() == "AGENT_SERVER=https://edited.example\n"
    units = tmp_path / "etc" / "systemd" / "system"
    assert {p.name for p in units.iterdir()} == {"yiwang-device-agent.service", "yiwang-kiosk-browser.service"}
    policy = json.loads((tmp_path / "etc" / "chromium" / "policies" / "managed" / "yiwang-kiosk.json").read_text())
    assert policy["DeveloperToolsAvailability"] == 2 and policy["TranslateEnabled"] is False


def test_the_units_watch_the_agent_and_keep_chromium_in_kiosk_mode_on_its_page() -> None:
    agent = unit("yiwang-device-agent.service")["Service"]
    assert (agent["Type"], agent["NotifyAccess"], agent["Restart"]) == ("notify", "main", "always")
    assert int(agent["WatchdogSec"]) > 0 and "-m device_agent --hardware" in agent["ExecStart"]
    browser = unit("yiwang-kiosk-browser.service")
    assert browser["Unit"]["PartOf"] == "yiwang-device-agent.service"  # restarted (page reloaded) with the agent
    assert browser["Service"]["Restart"] == "always" and "kiosk-browser" in browser["Service"]["ExecStart"]
    script = (AGENT / "install" / "kiosk-browser").read_text()
    for flag in ("--kiosk", "--no-first-run", "--disable-translate", "--disable-pinch", "--incognito",
                 "--overscroll-history-navigation=0"):
        assert flag in script
    assert "http://127.0.0.1:8765/kiosk/" in script
    subprocess.run(["sh", "-n", str(AGENT / "install" / "kiosk-browser")], check=True)


def test_the_offline_cache_keeps_to_its_size_bound_dropping_the_least_recently_used(tmp_path: Path) -> None:
    cache = OfflineCache(tmp_path / "cache", max_bytes=10_000)
    for i in range(5):
        cache.put(f"/kiosk/items/{i}", "text/html", bytes(3000))
    assert cache.size() <= 10_000 and len(cache) == 3
    assert cache.get("/kiosk/items/0") is None and cache.get("/kiosk/items/4") is not None
    old = os.stat(cache._path("/kiosk/items/2")).st_mtime_ns
    os.utime(cache._path("/kiosk/items/3"), ns=(old - 10**9, old - 10**9))  # 3 is the oldest now…
    assert cache.get("/kiosk/items/3") is not None  # …but read again: recently used
    cache.put("/kiosk/items/5", "text/html", bytes(3000))
    assert cache.get("/kiosk/items/2") is None and cache.get("/kiosk/items/3") is not None
    cache.put("/kiosk/huge", "text/html", bytes(20_000))  # larger than the bound: not kept
    assert cache.get("/kiosk/huge") is None and len(cache) == 3
