"""The device credential: rotated by the server, and bound to the kiosk's machine (a hash of /etc/machine-id)."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
from aiohttp import web

from device_agent.agent import Agent
from device_agent.config import AgentConfig
from device_agent.state import machine_hash
from tests.support.device_agent import RunningAgent, kiosk_agent, wait_for
from yiwang import audit, devices
from yiwang.runtime import Services

__all__ = ["kiosk_agent"]
CONSOLE = audit.Actor("console_user", "tester", "测试管理员")


async def post_credential(server: str, headers: dict[str, str]) -> tuple[int, dict]:  # type: ignore[type-arg]
    async with aiohttp.ClientSession() as http, http.post(server + "/api/devices/v1/credential",
                                                          headers=headers) as response:
        return response.status, await response.json()


async def test_the_server_rotates_the_credential_and_the_old_one_stops_working(
    kiosk_agent: RunningAgent, services: Services, server: str
) -> None:
    agent = kiosk_agent.agent
    assert agent.credential is not None and agent.channel is not None
    old = agent.credential
    connects = agent.channel.connects
    message_id = await devices.request_credential_rotation(services, old.device_id, by=CONSOLE)

    async def acked() -> bool:
        acks = (await devices.delivery_status(services, message_id))["acks"]
        return bool(acks) and acks[0]["result"] == "rotated"

    await wait_for(acked, what="rotation acknowledged")
    stored = json.loads((kiosk_agent.state_dir / "credential.json").read_text())
    assert stored["credential"] == agent.credential.secret != old.secret
    await wait_for(lambda: agent.channel.connects > connects and agent.channel.online,  # type: ignore[union-attr]
                   what="reconnected with the new credential")
    status, body = await post_credential(server, old.headers())
    assert (status, body["error"]["code"]) == (401, "device.credential_invalid")
    async with aiohttp.ClientSession() as http, http.get(kiosk_agent.url + "/kiosk/") as response:
        assert response.status == 200 and "Device" not in response.headers.get("Set-Cookie", "")
    history = await audit.history(services.store, f"device:{old.device_id}")
    assert "device.credential_rotated" in [entry["action"] for entry in history]


async def test_a_credential_copied_to_another_machine_is_refused(kiosk_agent: RunningAgent, server: str) -> None:
    credential = kiosk_agent.agent.credential
    assert credential is not None and credential.machine == machine_hash(Path("/etc/machine-id"))
    elsewhere = credential.with_machine("0" * 64).headers()
    async with aiohttp.ClientSession() as http:
        async with http.get(server + "/kiosk/", headers=elsewhere) as response:
            assert response.status == 403
        async with http.get(server + "/kiosk/", headers={"Authorization": credential.header}) as response:
            assert response.status == 403  # no machine said at all
        async with http.get(server + "/kiosk/", headers=credential.headers()) as response:
            assert response.status == 200


async def test_an_enrolment_code_bound_to_a_machine_only_enrols_that_machine(
    services: Services, server: str, tmp_path: Path
) -> None:
    from yiwang.seed import load_demo_data

    await load_demo_data(services)
    (tmp_path / "machine-id").write_text("4c2a7d1e9b3f4a5c8d6e0f1a2b3c4d5e\n")
    mine = machine_hash(tmp_path / "machine-id")
    code = await devices.create_enrolment_code(services, "gz-th-center", "绑定机器", machine=mine)
    async with aiohttp.ClientSession() as http, http.post(server + "/api/devices/v1/enrol",
                         json={"code": code["code"], "machine": "f" * 64}) as response:
        assert response.status == 403
        assert (await response.json())["error"]["code"] == "device.machine_mismatch"
    agent = Agent(AgentConfig(server=server, state_dir=tmp_path / "agent", enrolment_code=code["code"],
                              machine_id_file=tmp_path / "machine-id", warm_cache_on_connect=False))
    runner = web.AppRunner(agent.app(), shutdown_timeout=2.0)
    await runner.setup()  # enrols (the code is still unused: the refused attempt did not consume it)
    try:
        assert agent.channel is not None
        await agent.channel.wait_online(10)
        assert agent.credential is not None and agent.credential.machine == mine
    finally:
        await runner.cleanup()
