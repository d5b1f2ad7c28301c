"""Device registry and channel on the server: credentials, origins, targets, fan-out across processes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from tests.support.device_agent import wait_for
from web.app import make_app
from yiwang import devices
from yiwang.boot import open_services
from yiwang.config import Config
from yiwang.errors import InvalidInput, NotAuthenticated, NotFound
from yiwang.runtime import Services
from yiwang.seed import load_demo_data
from yiwang.store import Store


@pytest_asyncio.fixture
async def enrolled(services: Services) -> tuple[devices.Device, str]:
    await load_demo_data(services)
    code = await devices.create_enrolment_code(services, "gz-th-center", "测试机")
    return await devices.enrol(services, code["code"], software_version="t")


def ws_url(server: str) -> str:
    return server.replace("http://", "ws://") + "/api/devices/v1/channel"


async def test_wrong_credential_is_refused_before_the_upgrade(enrolled, server: str) -> None:
    device, _ = enrolled
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await http.ws_connect(ws_url(server), headers={"Authorization": f"Device {device.id}:wrong"})
        assert caught.value.status == 401


async def test_browser_pages_cannot_open_the_device_channel(enrolled, server: str) -> None:
    device, credential = enrolled
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await http.ws_connect(ws_url(server), headers={"Authorization": f"Device {device.id}:{credential}",
                                                           "Origin": "http://evil.example"})
        assert caught.value.status == 403


async def test_revoked_device_cannot_authenticate(enrolled, services: Services) -> None:
    device, credential = enrolled
    await devices.revoke_device(services, device.id, by=device.actor)
    with pytest.raises(Exception) as caught:
        await devices.authenticate(services, device.id, credential)
    assert getattr(caught.value, "code", "") == "device.revoked"


async def test_malformed_enrolment_code_and_targets_are_refused(enrolled, services: Services) -> None:
    with pytest.raises(InvalidInput):
        await devices.enrol(services, "not a code")
    with pytest.raises(NotAuthenticated):
        await devices.enrol(services, "AAAA-BBBB-CCCC")
    for bad in ({"scope": "planet"}, {"scope": "hall"}, "all", {"scope": "group", "hall": "x"}):
        with pytest.raises(InvalidInput):
            await devices.push(services, bad, {"topic": "x"})  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        await devices.push(services, {"scope": "hall", "hall": "nowhere"}, {"topic": "x"})
    with pytest.raises(InvalidInput):
        await devices.send_command(services, {"scope": "all"}, "format_disk")
    assert await services.store["device_messages"].count_documents({}) == 0


async def test_unknown_enrolment_code_over_http_is_a_json_error(enrolled, client) -> None:
    status, body, _ = await client.post("/api/devices/v1/enrol", json={"code": 5})
    assert status == 400 and body["error"]["code"] == "device.enrolment_code_invalid"


@pytest_asyncio.fixture
async def second_process(config: Config, store: Store) -> AsyncIterator[tuple[Services, str]]:
    """Another server process on the same database (its own services, hub and port)."""
    other = await open_services(config, store=store)
    app = make_app(other)
    sock, port = bind_unused_port()
    http_server = HTTPServer(app)
    http_server.add_sockets([sock])
    yield other, f"http://127.0.0.1:{port}"
    http_server.stop()
    await http_server.close_all_connections()
    await other.close(close_store=False)


async def test_a_push_from_one_process_reaches_devices_on_another(enrolled, services: Services, second_process) -> None:
    device, credential = enrolled
    _other, other_url = second_process
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(ws_url(other_url), headers={"Authorization": f"Device {device.id}:{credential}"})
        await ws.send_json({"type": "hello", "last_seq": 0})
        assert (await ws.receive_json(timeout=5))["type"] == "welcome"
        message_id = await devices.push(services, {"scope": "city", "city": "440100"}, {"topic": "cross"})
        frame = await ws.receive_json(timeout=5)
        assert frame["type"] == "message" and frame["id"] == message_id
        await ws.send_json({"type": "ack", "seq": frame["seq"], "id": frame["id"]})

        async def acked() -> bool:
            await devices.hub_of(_other).flush()
            return (await devices.delivery_status(services, message_id))["acknowledged"] == 1

        await wait_for(acked, what="ack via the other process")
        await ws.send_str("not json")
        assert json.loads((await ws.receive(timeout=5)).data)["code"] == "device.frame_invalid"
        await ws.close()
