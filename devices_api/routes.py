"""Device endpoints.

* ``POST /api/devices/v1/enrol`` ``{"code", "software_version"}`` → ``{"device_id", "credential", "hall"}``
* ``GET  /api/devices/v1/channel`` (WebSocket; ``Authorization: Device <id>:<credential>``)
* ``POST /api/devices/v1/credential`` (``Authorization: Device …``) → ``{"credential"}``: a new credential
  (the server asks for it with the ``rotate_credential`` command; the old one works until the new is used)
* ``POST /api/devices/v1/dev-enrolment-code`` (development only, loopback only)

A device enrolled with ``"machine"`` (the agent's hash of /etc/machine-id) must send it in
``X-Device-Machine`` on every request.

Frames (JSON text): the device first sends ``{"type": "hello", "last_seq": n,
"software_version": "…"}``; the server sends ``{"type": "welcome", …}`` then
``{"type": "message", "seq", "id", "kind", "body"}`` frames, each acknowledged
with ``{"type": "ack", "seq", "id", "result"?}``. The device sends
``{"type": "heartbeat"}`` and numbered ``{"type": "upstream", "seq", "body"}``
(acknowledged with ``upstream_ack``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable
from typing import Any

import tornado.websocket

from web.base import APIHandler
from yiwang import devices
from yiwang.errors import NotAuthenticated, YiwangError
from yiwang.runtime import Services

log = logging.getLogger(__name__)

HELLO_TIMEOUT = 10.0
MAX_FRAME = 64 * 1024 + 4096


class EnrolHandler(APIHandler):
    async def post(self) -> None:
        body = self.json_body()
        device, credential = await devices.enrol(
            self.services, body.get("code"), software_version=body.get("software_version", ""),
            machine=body.get("machine"),
        )
        self.write_json({"device_id": device.id, "credential": credential, "hall": device.hall, "label": device.label},
                        status=201)


class CredentialHandler(APIHandler):
    async def post(self) -> None:
        device_id, credential = devices.parse_credential_header(self.request.headers.get("Authorization"))
        device = await devices.authenticate(self.services, device_id, credential,
                                            self.request.headers.get(devices.MACHINE_HEADER))
        self.write_json({"credential": await devices.rotate_credential(self.services, device)}, status=201)


class DevEnrolmentCodeHandler(APIHandler):
    async def post(self) -> None:
        # The socket's own peer, not remote_ip: X-Forwarded-For could claim loopback.
        peer = getattr(getattr(self.request.connection, "context", None), "address", None)
        loopback = bool(peer) and peer[0] in ("127.0.0.1", "::1")
        if not loopback or self.services.config.production or not self.services.config.demo_data:
            raise NotAuthenticated("device.dev_only", "仅限本机开发环境使用")
        self.write_json({"code": await devices.dev_enrolment_code(self.services)}, status=201)


class ChannelHandler(tornado.websocket.WebSocketHandler):
    """One connection per kiosk. Authenticated before the upgrade; browsers
    (anything sending an Origin header) are refused."""

    device: devices.Device | None = None
    conn: devices.Connection | None = None

    @property
    def services(self) -> Services:
        return self.application.settings["services"]  # type: ignore[no-any-return]

    def check_origin(self, origin: str) -> bool:
        return False  # devices send no Origin; any browser page is refused

    def get_compression_options(self) -> None:
        return None

    async def get(self, *args: Any, **kwargs: Any) -> None:
        try:
            device_id, credential = devices.parse_credential_header(self.request.headers.get("Authorization"))
            self.device = await devices.authenticate(self.services, device_id, credential,
                                                     self.request.headers.get(devices.MACHINE_HEADER))
        except YiwangError as error:
            self.set_status(401 if isinstance(error, NotAuthenticated) else 403)
            self.set_header("Content-Type", "application/json; charset=UTF-8")
            self.finish(json.dumps({"error": error.as_dict()}, ensure_ascii=False))
            return
        await super().get(*args, **kwargs)

    def open(self, *args: Any, **kwargs: Any) -> None:
        self._hello = asyncio.get_running_loop().create_future()
        self._hello_timer = asyncio.get_running_loop().call_later(HELLO_TIMEOUT, self._hello_timeout)

    def _hello_timeout(self) -> None:
        if self.conn is None:
            self.close(4001, "hello expected")

    def _send(self, text: str) -> Awaitable[None]:
        return self.write_message(text)  # starts writing now; the future completes when flushed

    async def on_message(self, message: str | bytes) -> None:
        if len(message) > MAX_FRAME:
            self.close(1009, "too large")
            return
        hub = devices.hub_of(self.services)
        assert self.device is not None
        try:
            if self.conn is None:
                frame = json.loads(message)
                if not isinstance(frame, dict) or frame.get("type") != "hello":
                    self.close(4002, "hello expected")
                    return
                last_seq = frame.get("last_seq", 0)
                last_seq = last_seq if isinstance(last_seq, int) and last_seq >= 0 else 0
                self._hello_timer.cancel()
                await self.write_message(json.dumps({
                    "type": "welcome", "device_id": self.device.id, "hall": self.device.hall,
                    "label": self.device.label,
                }, ensure_ascii=False))
                self.conn = await hub.attach(self.device, self._send, self._close_quietly, last_seq)
                return
            await hub.handle_frame(self.conn, message)
        except (ValueError, YiwangError):
            with contextlib.suppress(tornado.websocket.WebSocketClosedError):
                await self.write_message(json.dumps({"type": "error", "code": "device.frame_invalid"}))
        except tornado.websocket.WebSocketClosedError:
            pass

    def _close_quietly(self) -> None:
        with contextlib.suppress(Exception):
            self.close(4000, "replaced")

    def on_close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(RuntimeError):
                devices.hub_of(self.services).detach(self.conn)
        timer = getattr(self, "_hello_timer", None)
        if timer is not None:
            timer.cancel()


def routes() -> list[Any]:
    return [
        (r"/api/devices/v1/enrol", EnrolHandler),
        (r"/api/devices/v1/credential", CredentialHandler),
        (r"/api/devices/v1/dev-enrolment-code", DevEnrolmentCodeHandler),
        (r"/api/devices/v1/channel", ChannelHandler),
    ]
