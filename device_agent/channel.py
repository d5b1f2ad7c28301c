"""The persistent WebSocket to the server.

Authenticated with the device credential; application heartbeats on top of
WebSocket pings; reconnects with full-jitter exponential backoff. Messages from
the server are numbered: each is processed, the cursor saved, then
acknowledged; on reconnect the hello carries the cursor and the server replays
the rest (duplicates are dropped by id). Messages to the server are numbered
too and kept until the server acknowledges them, so a reconnect loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from device_agent import VERSION
from device_agent.config import AgentConfig
from device_agent.state import AgentState, Credential

log = logging.getLogger("device_agent.channel")

Handler = Callable[[dict[str, Any]], Awaitable[Any]]


def ws_url(server: str) -> str:
    base = server.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    return base + "/api/devices/v1/channel"


class Channel:
    def __init__(self, config: AgentConfig, state: AgentState, credential: Credential, handler: Handler,
                 on_online: Callable[[bool], None] | None = None) -> None:
        self.config = config
        self.state = state
        self.credential = credential
        self.handler = handler
        self.on_online = on_online
        self.online = False
        self.upstream_seq = 0
        self.outbox: dict[int, dict[str, Any]] = {}
        self.connects = 0
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._stop = asyncio.Event()
        self._connected = asyncio.Event()

    def _set_online(self, online: bool) -> None:
        if online != self.online:
            self.online = online
            if online:
                self._connected.set()
            else:
                self._connected.clear()
            if self.on_online:
                self.on_online(online)

    async def wait_online(self, seconds: float = 10.0) -> None:
        async with asyncio.timeout(seconds):
            await self._connected.wait()

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform(0, min(max, min * 2**attempt))."""
        return random.uniform(self.config.backoff_min / 2, min(self.config.backoff_max,
                                                              self.config.backoff_min * 2**attempt))

    async def run(self, session: aiohttp.ClientSession) -> None:
        attempt = 0
        while not self._stop.is_set():
            try:
                await self._session(session)
                attempt = 0
            except (aiohttp.ClientError, OSError, TimeoutError) as error:
                log.info("channel down: %s", type(error).__name__)
            finally:
                self._ws = None
                self._set_online(False)
            if self._stop.is_set():
                break
            delay = self.backoff(attempt)
            attempt = min(attempt + 1, 10)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)

    async def stop(self) -> None:
        self._stop.set()
        if self._ws is not None:
            await self._ws.close()

    async def drop(self) -> None:
        """Close the current connection (tests: simulate a network cut); run() reconnects."""
        if self._ws is not None:
            await self._ws.close()

    async def _session(self, session: aiohttp.ClientSession) -> None:
        async with session.ws_connect(
            ws_url(self.config.server),
            headers=self.credential.headers(),
            heartbeat=self.config.heartbeat_seconds * 1.5,
            timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
            max_msg_size=256 * 1024,
        ) as ws:
            self._ws = ws
            await ws.send_json({"type": "hello", "last_seq": self.state.last_seq, "software_version": VERSION})
            first = await ws.receive(timeout=self.config.request_timeout)
            if first.type != aiohttp.WSMsgType.TEXT or json.loads(first.data).get("type") != "welcome":
                raise aiohttp.ClientError("no welcome")
            self.connects += 1
            self._set_online(True)
            for seq in sorted(self.outbox):  # resend what the server has not acknowledged
                await ws.send_json(self.outbox[seq])
            beat = asyncio.create_task(self._heartbeat(ws))
            try:
                async for raw in ws:
                    if raw.type != aiohttp.WSMsgType.TEXT:
                        continue
                    await self._on_frame(ws, json.loads(raw.data))
            finally:
                beat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beat

    async def _heartbeat(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_seconds)
            await ws.send_json({"type": "heartbeat"})

    async def _on_frame(self, ws: aiohttp.ClientWebSocketResponse, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "message":
            seq, message_id = int(frame["seq"]), str(frame["id"])
            result: Any = "duplicate"
            if not self.state.seen(message_id):
                try:
                    result = await self.handler(frame)
                except Exception:
                    log.exception("message handler failed")
                    result = "failed"
                self.state.processed(seq, message_id)
            await ws.send_json({"type": "ack", "seq": seq, "id": message_id, "result": result})
        elif kind == "upstream_ack":
            self.outbox.pop(int(frame.get("seq", 0)), None)

    async def send_upstream(self, body: dict[str, Any]) -> int:
        """Queue a numbered message to the server; sent now if connected, else on reconnect."""
        self.upstream_seq += 1
        frame = {"type": "upstream", "seq": self.upstream_seq, "body": body}
        self.outbox[self.upstream_seq] = frame
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(ConnectionResetError, aiohttp.ClientError):
                await self._ws.send_json(frame)
        return self.upstream_seq
