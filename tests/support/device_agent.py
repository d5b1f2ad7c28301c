"""Run a development device agent in the test loop, enrolled against the test server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest_asyncio
from aiohttp import web

from device_agent.agent import Agent
from device_agent.config import AgentConfig
from tests.conftest import free_port
from yiwang import devices
from yiwang.runtime import Services


@dataclass
class RunningAgent:
    agent: Agent
    url: str
    state_dir: Path
    runner: web.AppRunner

    @property
    def config(self) -> AgentConfig:
        return self.agent.config


async def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll until predicate() (sync or async) is truthy; fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def start_agent(services: Services, server: str, state_dir: Path, *, hall: str = "gz-th-center",
                      label: str = "测试 1 号机", **agent_kwargs: Any) -> RunningAgent:
    """agent_kwargs: Agent's drivers= / scanners= (real drivers on development doubles)."""
    code = await devices.create_enrolment_code(services, hall, label)
    config = AgentConfig(server=server, state_dir=state_dir, listen_port=free_port(), enrolment_code=code["code"],
                         heartbeat_seconds=5.0, poll_seconds=0.05, backoff_min=0.1, backoff_max=0.5,
                         status_seconds=1.0, warm_cache_on_connect=False)
    agent = Agent(config, **agent_kwargs)
    runner = web.AppRunner(agent.app(), shutdown_timeout=2.0)  # never wait long for a stray handler
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", config.listen_port).start()
    assert agent.channel is not None
    await agent.channel.wait_online(10)
    return RunningAgent(agent, f"http://127.0.0.1:{config.listen_port}", state_dir, runner)


@pytest_asyncio.fixture
async def kiosk_agent(services: Services, server: str, tmp_path: Path) -> AsyncIterator[RunningAgent]:
    from yiwang.seed import load_demo_data

    await load_demo_data(services)
    running = await start_agent(services, server, tmp_path / "agent")
    yield running
    await running.runner.cleanup()
