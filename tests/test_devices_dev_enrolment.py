"""The development enrolment shortcut is for `make run` on one machine only."""

from __future__ import annotations

import dataclasses

from tests.conftest import Client
from yiwang.runtime import Services
from yiwang.seed import load_demo_data


async def test_dev_enrolment_code_is_refused_without_demo_mode(client: Client) -> None:
    status, body, _ = await client.post("/api/devices/v1/dev-enrolment-code")
    assert status == 401
    assert body["error"]["code"] == "device.dev_only"


async def test_dev_code_goes_to_a_loopback_peer_in_demo_mode(services: Services, client: Client) -> None:
    await load_demo_data(services)
    services.config = dataclasses.replace(services.config, demo_data=True)
    status, body, _ = await client.post("/api/devices/v1/dev-enrolment-code", headers={"X-Forwarded-For": "10.1.2.3"})
    assert status == 201 and body["code"]
