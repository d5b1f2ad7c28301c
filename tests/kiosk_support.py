"""Shared set-up for kiosk tests over HTTP: an enrolled kiosk and a resident identified at it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from yiwang import devices
from yiwang.runtime import Services

RESIDENT = {"id_number": "440104195203122151", "name": "陈国华"}


@dataclass
class Kiosk:
    client: Any
    device_id: str
    credential: str
    label: str
    token: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Device {self.device_id}:{self.credential}", "Accept": "application/json"}
        if self.token:
            headers["Cookie"] = f"kiosk_session={self.token}"
        return headers

    async def get(self, path: str, **kw: Any) -> tuple[int, Any, Any]:
        return await self.client.get(path, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    async def post(self, path: str, **kw: Any) -> tuple[int, Any, Any]:
        return await self.client.post(path, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    async def identify(self, person: dict[str, str] = RESIDENT) -> dict[str, Any]:
        status, body, _ = await self.post("/kiosk/api/id-card", json=person)
        assert status in (200, 201), body
        if body.get("session"):
            self.token = body["session"]
        return dict(body)


async def enrolled_kiosk(services: Services, client: Any, hall: str = "gz-th-center",
                         label: str = "天河 9 号机") -> Kiosk:
    code = await devices.create_enrolment_code(services, hall, label)
    device, credential = await devices.enrol(services, code["code"])
    return Kiosk(client, device.id, credential, label)
