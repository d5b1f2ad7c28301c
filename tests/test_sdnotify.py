"""Under systemd (Type=notify, WatchdogSec) the server says when it is ready, pets the
watchdog from its event loop, and says when it stops."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port
from tests.test_lifecycle import _wait_ready


@pytest.mark.slow
def test_the_server_notifies_systemd_ready_watchdog_and_stopping(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(path)
    listener.settimeout(0.2)
    port = free_port()
    env = dict(
        os.environ, PORT=str(port), DATA_DIR=str(tmp_path / "data"), DEMO_DATA="0", EMBEDDED_ENGINE="memory",
        NOTIFY_SOCKET=path, WATCHDOG_USEC="1000000",
    )  # fmt: skip
    env.pop("WATCHDOG_PID", None)
    process = subprocess.Popen([sys.executable, "server.py"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    states: list[str] = []

    def drain(seconds: float) -> None:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            try:
                states.append(listener.recv(256).decode())
            except TimeoutError:
                continue

    try:
        _wait_ready(port, process)
        drain(2.0)  # a 1 s watchdog is petted every 0.5 s
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
        drain(0.5)
    finally:
        if process.poll() is None:
            process.kill()
        listener.close()
    assert process.returncode == 0
    assert states[0] == "READY=1"
    assert states.count("WATCHDOG=1") >= 3
    assert states[-1] == "STOPPING=1"
