"""The device agent is its own program: it runs on a kiosk without the server's code or dependencies."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import ROOT, free_port
from tests.support.device_agent import wait_for
from yiwang import devices
from yiwang.runtime import Services

# Runs the agent with an import hook that refuses the server and its dependencies.
REFUSING_BOOT = """
import importlib.abc, runpy, sys
REFUSED = {"yiwang", "pymongo", "mongoeco", "tornado", "bson", "motor", "web", "kiosk", "console"}
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in REFUSED:
            raise ImportError(f"the device agent must not import {name}")
        return None
sys.meta_path.insert(0, Refuse())
import pkgutil, device_agent, device_agent.drivers, qrscan
for module in pkgutil.walk_packages(device_agent.__path__, "device_agent."):
    __import__(module.name)
for module in pkgutil.walk_packages(qrscan.__path__, "qrscan."):
    __import__(module.name)
sys.argv = ["device_agent", *sys.argv[1:]]
runpy.run_module("device_agent", run_name="__main__")
"""


def agent_pythons() -> list[str]:
    """This venv's Python, and AGENT_TEST_PYTHON (e.g. a Python 3.11 venv holding only
    device_agent/requirements.txt) when set."""
    extra = os.environ.get("AGENT_TEST_PYTHON")
    return [sys.executable, *([extra] if extra else [])]


@pytest.mark.parametrize("python", agent_pythons())
async def test_agent_starts_and_enrols_without_importing_the_server(
    python: str, services: Services, server: str, tmp_path: Path
) -> None:
    from yiwang.seed import load_demo_data

    await load_demo_data(services)
    code = await devices.create_enrolment_code(services, "gz-th-center", "独立安装")
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        python, "-c", REFUSING_BOOT, "--server", server, "--port", str(port), "--state-dir", str(tmp_path / "agent"),
        "--enrol", code["code"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)},
    )
    try:
        async with aiohttp.ClientSession() as http:

            async def online() -> bool:
                if process.returncode is not None:
                    output = (await process.stdout.read()).decode() if process.stdout else ""
                    raise AssertionError(f"agent exited {process.returncode}:\n{output}")
                try:
                    async with http.get(f"http://127.0.0.1:{port}/agent/status") as response:
                        return bool((await response.json())["online"])
                except aiohttp.ClientError:
                    return False

            await wait_for(online, timeout=30, what="the standalone agent online")
        assert [d["label"] for d in await devices.list_devices(services, hall="gz-th-center")] == ["独立安装"]
    finally:
        process.terminate()
        await process.wait()


def test_agent_requirements_hold_none_of_the_servers_dependencies() -> None:
    lines = (ROOT / "device_agent" / "requirements.txt").read_text().splitlines()
    names = {line.split("==")[0].strip().lower() for line in lines if line.strip() and not line.startswith("#")}
    assert names and not names & {"tornado", "pymongo", "mongoeco", "wechatpy", "jinja2", "cryptography"}
    assert all("==" in line for line in lines if line.strip() and not line.startswith("#"))


@pytest.mark.skipif(shutil.which("python3.11") is None, reason="no Python 3.11 on this machine")
def test_agent_code_compiles_on_python_3_11() -> None:
    result = subprocess.run(["python3.11", "-c", "import compileall, sys; sys.exit(not all("
                             "compileall.compile_dir(d, quiet=1, legacy=False, force=True) for d in sys.argv[1:]))",
                             "device_agent", "qrscan"], cwd=ROOT, capture_output=True, text=True, check=False,
                            env={"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": "/tmp/agent-py311-pycache"})
    assert result.returncode == 0, result.stdout + result.stderr
