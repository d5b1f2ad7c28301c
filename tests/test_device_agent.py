"""Device agent ↔ server: enrolment, pushes acknowledged, reconnects without loss, offline cache."""

from __future__ import annotations

import asyncio
import stat

import aiohttp

from device_agent.channel import Channel
from tests.support.device_agent import RunningAgent, kiosk_agent, wait_for
from yiwang import audit, devices
from yiwang.runtime import Services

__all__ = ["kiosk_agent"]
CONSOLE = audit.Actor("console_user", "tester", "测试管理员")


async def test_enrolment_stores_an_owner_only_credential_and_the_code_is_single_use(
    kiosk_agent: RunningAgent, services: Services, server: str
) -> None:
    path = kiosk_agent.state_dir / "credential.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    listed = await devices.list_devices(services, hall="gz-th-center")
    assert [d["label"] for d in listed] == ["测试 1 号机"]
    stored = await services.store["devices"].find_one({})
    assert stored is not None and kiosk_agent.agent.credential is not None
    assert kiosk_agent.agent.credential.secret not in str(stored)  # only the digest is kept
    async with aiohttp.ClientSession() as http, http.post(server + "/api/devices/v1/enrol",
                         json={"code": kiosk_agent.config.enrolment_code}) as response:
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "device.enrolment_code_unknown"


async def test_push_to_a_hall_is_delivered_and_acknowledged(kiosk_agent: RunningAgent, services: Services) -> None:
    message_id = await devices.push(services, {"scope": "hall", "hall": "gz-th-center"}, {"topic": "hello"},
                                    by=CONSOLE)
    await wait_for(lambda: any(m["id"] == message_id for m in kiosk_agent.agent.received), what="delivery")

    async def acknowledged() -> bool:
        return (await devices.delivery_status(services, message_id))["acknowledged"] == 1

    await wait_for(acknowledged, what="ack recorded")
    status = await devices.delivery_status(services, message_id)
    assert status["targeted"] == 1 and status["pending"] == []


async def test_command_report_status_is_answered(kiosk_agent: RunningAgent, services: Services) -> None:
    device_id = kiosk_agent.agent.credential.device_id  # type: ignore[union-attr]
    message_id = await devices.send_command(services, {"scope": "device", "device": device_id}, "report_status")

    async def answered() -> dict | None:
        acks = (await devices.delivery_status(services, message_id))["acks"]
        return acks[0] if acks else None

    ack = await wait_for(answered, what="command result")
    assert ack["result"]["status"]["printer"] == "ready"


async def test_reconnect_loses_no_message_in_either_direction(kiosk_agent: RunningAgent, services: Services) -> None:
    agent = kiosk_agent.agent
    assert agent.channel is not None and agent.http is not None
    first = await devices.push(services, {"scope": "all"}, {"topic": "before"})
    await wait_for(lambda: any(m["id"] == first for m in agent.received))
    await agent.channel.stop()
    await wait_for(lambda: not devices.online_ids(services), what="server saw the disconnect")
    while_away = [await devices.push(services, {"scope": "city", "city": "440100"}, {"topic": f"away-{i}"})
                  for i in range(3)]
    (kiosk_agent.state_dir / "printed").mkdir(exist_ok=True)
    (kiosk_agent.state_dir / "printed" / "STATUS").write_text("paper_low")
    await agent.report_status()  # queued upstream while offline
    assert agent.channel.outbox
    channel = Channel(agent.config, agent.state, agent.channel.credential, agent.on_message, agent._on_online)
    channel.outbox, channel.upstream_seq = agent.channel.outbox, agent.channel.upstream_seq
    agent.channel = channel
    task = asyncio.create_task(channel.run(agent.http))
    try:
        await wait_for(lambda: {m["id"] for m in agent.received} >= set(while_away), what="replay")
        ids = [m["id"] for m in agent.received]
        assert len(ids) == len(set(ids)), "a message was processed twice"
        await wait_for(lambda: not channel.outbox, what="upstream acknowledged")

        async def paper_low_recorded() -> bool:
            await devices.hub_of(services).flush()
            doc = await devices.get_device(services, agent.credential.device_id)  # type: ignore[union-attr]
            return doc["peripherals"].get("printer") == "paper_low"

        await wait_for(paper_low_recorded, what="status update")
    finally:
        await channel.stop()
        task.cancel()


async def test_offline_cache_serves_guidance_when_the_server_is_down(kiosk_agent: RunningAgent) -> None:
    agent = kiosk_agent.agent
    assert await agent.warm_cache() > 10
    agent.config = agent.config.with_(server="http://127.0.0.1:9")  # nothing listens there
    async with aiohttp.ClientSession() as http:
        async with http.get(kiosk_agent.url + "/kiosk/scenarios/birth?idle_warn=5&idle_reset=9") as response:
            assert response.status == 200
            assert response.headers["X-Kiosk-Offline"] == "1"
            assert "我要生孩子" in await response.text()
        url = kiosk_agent.url + "/kiosk/scenarios/birth/checklist?gz_hukou=yes&mother_insured=no&need_ss_card=no"
        async with http.get(url) as response:
            assert response.status == 200
        async with http.get(kiosk_agent.url + "/kiosk/certificates", headers={"Accept": "text/html"}) as response:
            assert response.status == 503
            assert "暂时不能办理" in await response.text()
        async with http.get(kiosk_agent.url + "/agent/status") as response:
            assert (await response.json())["online"] is False


async def test_print_job_from_the_page_lands_in_the_dev_printer(kiosk_agent: RunningAgent) -> None:
    async with aiohttp.ClientSession() as http:
        pdf = b"%PDF-1.4 test"
        async with http.post(kiosk_agent.url + "/agent/print", data=pdf,
                             headers={"Content-Type": "application/pdf"}) as response:
            assert response.status == 200
        async with http.post(kiosk_agent.url + "/agent/print", data=b"not a pdf") as response:
            assert response.status == 400
        async with http.post(kiosk_agent.url + "/agent/print", data=pdf,
                             headers={"Origin": "http://evil.example"}) as response:
            assert response.status == 403
    assert len(list((kiosk_agent.state_dir / "printed").glob("*.pdf"))) == 1
