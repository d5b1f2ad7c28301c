"""The agent: enrolment, channel, drivers, and the local server for the kiosk page."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web

from device_agent import VERSION
from device_agent.cache import OfflineCache
from device_agent.channel import Channel
from device_agent.config import AgentConfig
from device_agent.drivers import Camera, IdReader, Printer, make_drivers, make_speaker
from device_agent.drivers.id_reader import CardReadError
from device_agent.drivers.printer import JobUpdate, PrinterError
from device_agent.drivers.scanner import make_scanners
from device_agent.drivers.speaker import MAX_TEXT, VOICES, call_text
from device_agent.sd_notify import Notifier
from device_agent.state import AgentState, Credential, machine_hash

log = logging.getLogger("device_agent")

MAX_PRINT_BYTES = 10 * 1024 * 1024
PROXIED_PREFIXES = ("/kiosk", "/static/")
FORWARD_REQUEST_HEADERS = ("Accept", "Content-Type", "Cookie", "Accept-Language")
FORWARD_RESPONSE_HEADERS = ("Content-Type", "Set-Cookie", "Location", "X-Request-Id", "Cache-Control",
                            "X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options", "Content-Disposition")
IGNORED_QUERY = ("idle_warn", "idle_reset")
LONG_POLL_SECONDS = 40.0  # /kiosk/api/…/wait answers within 25 s


class EnrolmentError(Exception):
    pass


async def enrol(config: AgentConfig, state: AgentState, session: aiohttp.ClientSession) -> Credential:
    """The credential on disk, or a new one traded for the enrolment code (or a dev code);
    bound to this machine (a hash of /etc/machine-id) unless AGENT_MACHINE_ID_FILE is empty."""
    machine = machine_hash(config.machine_id_file)
    existing = state.credential()
    if existing is not None:
        return existing.with_machine(machine)
    code = config.enrolment_code
    if not code and config.dev:
        async with session.post(config.server + "/api/devices/v1/dev-enrolment-code", json={}) as response:
            if response.status != 201:
                raise EnrolmentError("服务器未提供开发用注册码（仅本机开发环境可用）")
            code = (await response.json())["code"]
    if not code:
        raise EnrolmentError("尚未注册：请设置 AGENT_ENROLMENT_CODE（控制台生成的一次性注册码）")
    async with session.post(config.server + "/api/devices/v1/enrol",
                            json={"code": code, "software_version": VERSION,
                                  **({"machine": machine} if machine else {})}) as response:
        body = await response.json()
        if response.status != 201:
            raise EnrolmentError(body.get("error", {}).get("message", "注册失败"))
    return state.save_credential(body["device_id"], body["credential"], body["hall"], body["label"]).with_machine(
        machine)


def cache_key(path: str, query: str) -> str:
    pairs = sorted((k, v) for k, v in urllib.parse.parse_qsl(query) if k not in IGNORED_QUERY)
    return path + ("?" + urllib.parse.urlencode(pairs) if pairs else "")


class Agent:
    def __init__(self, config: AgentConfig, *, drivers: tuple[Camera, Printer, IdReader] | None = None,
                 scanners: list[Camera] | None = None) -> None:
        self.config = config
        self.state = AgentState(config.state_dir)
        self.cache = OfflineCache(config.state_dir / "cache", config.cache_max_bytes)
        self.systemd = Notifier()
        self.camera, self.printer, self.reader = drivers or make_drivers(config)
        self.scanners: list[Camera] = (list(scanners) if scanners is not None
                                       else list(make_scanners(config.scanners)))
        self.speaker = make_speaker(config)
        self.pages: set[web.WebSocketResponse] = set()
        self.received: list[dict[str, Any]] = []  # messages processed (ids and topics only), for status/tests
        self.credential: Credential | None = None
        self.channel: Channel | None = None
        self.http: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._side_tasks: set[asyncio.Task[None]] = set()  # print-job followers, the ready notice
        self.print_updates: list[JobUpdate] = []  # what the page was told (ids and states only)
        self.server_reachable = True
        self._last_status: dict[str, str] = {}

    # ---- life cycle --------------------------------------------------------

    async def start(self) -> None:
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.config.request_timeout))
        while True:  # the server may still be starting (make run starts both)
            try:
                self.credential = await enrol(self.config, self.state, self.http)
                break
            except (aiohttp.ClientConnectionError, TimeoutError):
                log.info("server not reachable yet; retrying enrolment")
                await asyncio.sleep(1.0)
        self.channel = Channel(self.config, self.state, self.credential, self.on_message, self._on_online)
        await self.speaker.start()
        self._tasks = [
            asyncio.create_task(self.channel.run(self.http)),
            asyncio.create_task(self._code_loop(self.camera, "camera")),
            *(asyncio.create_task(self._code_loop(scanner, "scanner")) for scanner in self.scanners),
            asyncio.create_task(self._reader_loop()),
            asyncio.create_task(self._status_loop()),
        ]

    async def stop(self) -> None:
        if self.channel is not None:
            await self.channel.stop()
        for task in [*self._tasks, *self._side_tasks]:
            task.cancel()
        for task in [*self._tasks, *self._side_tasks]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.speaker.close()
        closer = getattr(self.printer, "close", None)
        if closer is not None:
            with contextlib.suppress(Exception):
                await closer()
        for ws in list(self.pages):
            await ws.close()
        if self.http is not None:
            await self.http.close()

    async def _close_pages(self, app: web.Application) -> None:
        """On shutdown, before aiohttp waits for handlers: close the pages' event sockets
        (otherwise their handlers keep the runner waiting for its shutdown timeout)."""
        await asyncio.gather(*(ws.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"shutdown")
                               for ws in list(self.pages)), return_exceptions=True)

    async def _notify_ready_when_listening(self) -> None:
        """READY=1 once the kiosk page's port accepts connections (the browser unit waits for it)."""
        while True:
            try:
                _reader, writer = await asyncio.open_connection(self.config.listen_host, self.config.listen_port)
            except OSError:
                await asyncio.sleep(0.1)
                continue
            writer.close()
            break
        self.systemd.ready(f"kiosk page on http://{self.config.listen_host}:{self.config.listen_port}/kiosk/")
        self.systemd.start_watchdog(self.healthy)

    def healthy(self) -> bool:
        """For the systemd watchdog: every background loop still running."""
        return all(not task.done() for task in self._tasks)

    async def cleanup_ctx(self, app: web.Application) -> AsyncIterator[None]:
        await self.start()
        if self.systemd.enabled:
            self._side_tasks.add(asyncio.create_task(self._notify_ready_when_listening()))
        yield
        self.systemd.stopping()
        await self.systemd.stop_watchdog()
        await self.stop()

    # ---- events to the page --------------------------------------------------

    async def broadcast(self, event: dict[str, Any]) -> None:
        text = json.dumps(event, ensure_ascii=False)
        for ws in list(self.pages):
            with contextlib.suppress(ConnectionResetError, RuntimeError):
                await ws.send_str(text)

    def _on_online(self, online: bool) -> None:
        if online:
            self.server_reachable = True
            if self.config.warm_cache_on_connect:
                asyncio.get_running_loop().create_task(self.warm_cache())
            asyncio.get_running_loop().create_task(self.report_status(force=True))
        asyncio.get_running_loop().create_task(self.broadcast({"type": "status", "online": self.online}))

    @property
    def online(self) -> bool:
        return bool(self.channel and self.channel.online and self.server_reachable)

    # ---- messages from the server ----------------------------------------------

    async def on_message(self, frame: dict[str, Any]) -> Any:
        body = frame.get("body") or {}
        self.received.append({"id": frame["id"], "seq": frame["seq"], "kind": frame.get("kind"),
                              "topic": body.get("topic") or body.get("command")})
        if frame.get("kind") == "command":
            command = body.get("command")
            if command == "reload":
                await self.broadcast({"type": "reload"})
                return "reloaded"
            if command == "clear_cache":
                return {"cleared": self.cache.clear()}
            if command == "rotate_credential":
                return await self.rotate_credential()
            if command == "report_status":
                await self.report_status(force=True)
                return {"status": self.peripherals()}
            return "unknown_command"
        topic = body.get("topic")
        if topic == "call":  # a hall display's queue call: say it, show it
            number, window = str(body.get("number", ""))[:16], str(body.get("window", ""))[:16]
            if not number or not window:
                return "invalid_call"
            self.speaker.say(call_text(number, window), str(body.get("voice") or "") or None)
            await self.broadcast({"type": "call", "number": number, "window": window})
            return "called"
        if topic == "scenarios":
            asyncio.get_running_loop().create_task(self.warm_cache())
        elif topic == "notices":  # the page takes it up when nobody is using it (never mid-flow)
            await self.broadcast({"type": "content", "topic": "notices"})
        else:
            await self.broadcast({"type": "push", "topic": topic})
        return "ok"

    async def rotate_credential(self) -> str:
        """Ask the server for a new credential, keep it on disk (0600), reconnect with it.
        The server accepts the old one until the new one is first used."""
        assert self.http is not None and self.credential is not None
        async with self.http.post(self.config.server + "/api/devices/v1/credential",
                                  headers=self.credential.headers()) as response:
            if response.status != 201:
                return "rotation_failed"
            secret = (await response.json())["credential"]
        old = self.credential
        self.credential = self.state.save_credential(old.device_id, secret, old.hall, old.label).with_machine(
            old.machine)
        if self.channel is not None:
            self.channel.credential = self.credential
            asyncio.get_running_loop().call_later(0.2, lambda: asyncio.ensure_future(self._reconnect()))
        return "rotated"

    async def _reconnect(self) -> None:
        if self.channel is not None:
            await self.channel.drop()

    # ---- peripherals ---------------------------------------------------------

    def peripherals(self) -> dict[str, str]:
        found = {"printer": self.printer.status(), "camera": self.camera.status(), "id_reader": self.reader.status()}
        found["speaker"] = self.speaker.status()
        if self.scanners:
            found["scanner"] = "ready" if all(s.status() == "ready" for s in self.scanners) else "offline"
        return found

    async def report_status(self, *, force: bool = False) -> None:
        current = self.peripherals()
        alerts = self.printer.alerts()
        snapshot = {**current, "alerts": json.dumps(alerts)}
        if self.channel is not None and (force or snapshot != self._last_status):
            self._last_status = snapshot
            await self.channel.send_upstream({"kind": "status", "peripherals": current, "alerts": alerts,
                                              "software_version": VERSION})

    async def _status_loop(self) -> None:
        while True:
            await asyncio.sleep(min(self.config.status_seconds, 5.0))
            with contextlib.suppress(Exception):
                refresh = getattr(self.printer, "refresh", None)
                if refresh is not None:
                    await refresh()
                await self.report_status()

    async def _code_loop(self, source: Camera, name: str) -> None:
        """QR codes from the camera or a scanner module, to the page."""
        while True:
            try:
                text = await source.next_code()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("%s failed", name, exc_info=True)
                await asyncio.sleep(1.0)
                continue
            await self.broadcast({"type": "qr", "text": text, "source": name})

    async def _reader_loop(self) -> None:
        while True:
            try:
                card = await self.reader.next_card()
            except asyncio.CancelledError:
                raise
            except CardReadError as error:
                await self.broadcast({"type": "identify_failed", "message": error.message})
                continue
            except Exception:
                log.warning("id reader failed", exc_info=True)
                await asyncio.sleep(1.0)
                continue
            await self._identify(card.id_number, card.name, getattr(card, "card_type", "resident"))
            del card

    async def _identify(self, id_number: str, name: str, card_type: str = "resident") -> None:
        """Send the card to the server (never to the page); the page gets a session token."""
        assert self.http is not None and self.credential is not None
        try:
            async with self.http.post(self.config.server + "/kiosk/api/id-card",
                                      json={"id_number": id_number, "name": name, "card_type": card_type},
                                      headers=self.credential.headers()) as response:
                body = await response.json()
        except (aiohttp.ClientError, TimeoutError, ValueError):
            await self.broadcast({"type": "identify_failed", "message": "网络中断，暂时无法识别身份"})
            return
        if response.status in (200, 201):
            await self.broadcast({"type": "identified", "session": body["session"],
                                  "handling": body.get("handling", "")})
        else:
            message = body.get("error", {}).get("message", "识别失败，请重新放置身份证")
            await self.broadcast({"type": "identify_failed", "message": message})

    # ---- the offline cache ---------------------------------------------------------

    async def warm_cache(self) -> int:
        """Fetch every guidance page the server lists, for offline use."""
        if self.http is None or self.credential is None:
            return 0
        headers = self.credential.headers()
        count = 0
        try:
            async with self.http.get(self.config.server + "/kiosk/api/offline-manifest", headers=headers) as r:
                if r.status != 200:
                    return 0
                urls = (await r.json())["urls"]
            for url in urls:
                async with self.http.get(self.config.server + url,
                                         headers={**headers, "Accept": "text/html", "X-Kiosk-Prefetch": "1"}) as r:
                    if r.status == 200 and r.headers.get("X-Kiosk-Cache") == "public":
                        parsed = urllib.parse.urlsplit(url)
                        self.cache.put(cache_key(parsed.path, parsed.query), r.headers.get("Content-Type", ""),
                                       await r.read())
                        count += 1
        except (aiohttp.ClientError, TimeoutError):
            return count
        return count

    # ---- local HTTP server --------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_PRINT_BYTES)
        app.cleanup_ctx.append(self.cleanup_ctx)
        app.on_shutdown.append(self._close_pages)
        app.router.add_get("/", self._root)
        app.router.add_get("/agent/status", self._status)
        app.router.add_get("/agent/events", self._events)
        app.router.add_post("/agent/print", self._print)
        app.router.add_post("/agent/speak", self._speak)
        app.router.add_post("/agent/speak/stop", self._speak_stop)
        app.router.add_route("*", "/{tail:.*}", self._proxy)
        return app

    async def _root(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/kiosk/")

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response({"online": self.online, "version": VERSION,
                                  "label": self.credential.label if self.credential else "",
                                  "peripherals": self.peripherals()},
                                 headers={"Cache-Control": "no-store"})

    async def _events(self, request: web.Request) -> web.WebSocketResponse:
        origin = request.headers.get("Origin")
        if origin and urllib.parse.urlsplit(origin).netloc != request.host:
            raise web.HTTPForbidden()
        ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=4096, timeout=2.0)
        await ws.prepare(request)
        self.pages.add(ws)
        await ws.send_json({"type": "status", "online": self.online})
        try:
            async for _ in ws:
                pass  # the page does not talk on this socket
        finally:
            self.pages.discard(ws)
        return ws

    async def _print(self, request: web.Request) -> web.Response:
        origin = request.headers.get("Origin")
        if origin and urllib.parse.urlsplit(origin).netloc != request.host:
            return _error(403, "agent.origin", "拒绝来自其他页面的打印请求")
        data = await request.read()
        if not data.startswith(b"%PDF"):
            return _error(400, "print.not_pdf", "打印内容不是 PDF")
        label = urllib.parse.unquote(request.headers.get("X-Print-Label", ""))[:40]
        try:
            job = await self.printer.print_pdf(data, label)
        except PrinterError as error:
            await self.report_status(force=True)
            return _error(503, error.code, error.message)
        task = asyncio.create_task(self._follow_print_job(job, label, data.count(b"/Type /Page")))
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)
        return web.json_response({"job": job})

    async def _follow_print_job(self, job: str, label: str, pages: int) -> None:
        """The job's progress to the page (printing / stopped: why / completed / failed) and to the server."""
        async for update in self.printer.track(job):
            self.print_updates.append(update)
            await self.broadcast({"type": "print_job", "job": job, "state": update.state, "message": update.message,
                                  "code": update.code})
            if update.state != "printing":
                await self.report_status()
            if update.final and self.channel is not None:
                await self.channel.send_upstream({"kind": "printed" if update.state == "completed" else "print_failed",
                                                  "label": label, "pages": pages, "code": update.code})

    async def _speak(self, request: web.Request) -> web.Response:
        """Read aloud for the page: {"text", "voice"?: "cmn" | "yue", "interrupt"?: true}."""
        if not _same_origin(request):
            return _error(403, "agent.origin", "拒绝来自其他页面的请求")
        try:
            body = await request.json()
            text, voice = str(body["text"]), body.get("voice")
        except (ValueError, KeyError, TypeError):
            return _error(400, "speak.invalid", "朗读内容不正确")
        if not text.strip() or len(text) > MAX_TEXT or (voice is not None and voice not in VOICES):
            return _error(400, "speak.invalid", "朗读内容不正确")
        if body.get("interrupt", True):
            await self.speaker.interrupt()
        utterance = self.speaker.say(text, voice)
        return web.json_response({"voice": utterance.voice}, status=202)

    async def _speak_stop(self, request: web.Request) -> web.Response:
        if not _same_origin(request):
            return _error(403, "agent.origin", "拒绝来自其他页面的请求")
        return web.json_response({"stopped": await self.speaker.interrupt()})

    async def _proxy(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if not path.startswith(PROXIED_PREFIXES):
            return _error(404, "not_found", "找不到请求的页面")
        assert self.http is not None and self.credential is not None
        headers = {k: request.headers[k] for k in FORWARD_REQUEST_HEADERS if k in request.headers}
        headers.update(self.credential.headers())
        body = await request.read() if request.can_read_body else None
        key = cache_key(path, request.query_string)
        long_poll = path.startswith("/kiosk/api/") and path.endswith("/wait")
        extra: dict[str, Any] = {"timeout": aiohttp.ClientTimeout(total=LONG_POLL_SECONDS)} if long_poll else {}
        try:
            async with self.http.request(request.method, self.config.server + request.rel_url.path_qs,
                                         headers=headers, data=body, allow_redirects=False,
                                         **extra) as upstream:
                payload = await upstream.read()
                response = web.Response(status=upstream.status, body=payload)
                for name in FORWARD_RESPONSE_HEADERS:
                    for value in upstream.headers.getall(name, []):
                        response.headers.add(name, value)
                if (request.method == "GET" and upstream.status == 200
                        and upstream.headers.get("X-Kiosk-Cache") == "public"):
                    self.cache.put(key, upstream.headers.get("Content-Type", ""), payload)
                if not self.server_reachable:
                    self.server_reachable = True
                    await self.broadcast({"type": "status", "online": self.online})
                return response
        except (aiohttp.ClientError, TimeoutError, OSError):
            if self.server_reachable:
                self.server_reachable = False
                await self.broadcast({"type": "status", "online": False})
        return self._offline(request, key)

    def _offline(self, request: web.Request, key: str) -> web.Response:
        if request.method == "GET":
            cached = self.cache.get(key)
            if cached is not None:
                return web.Response(status=200, body=cached.body, headers={"Content-Type": cached.content_type,
                                                                          "X-Kiosk-Offline": "1"})
        if request.path.startswith("/kiosk/api/") or "json" in request.headers.get("Accept", ""):
            return _error(503, "kiosk.offline", "网络中断，此功能暂不可用；办事指南仍可查看")
        page = self.cache.get("/kiosk/offline")
        if page is not None:
            return web.Response(status=503, body=page.body, headers={"Content-Type": page.content_type,
                                                                    "X-Kiosk-Offline": "1"})
        return web.Response(status=503, text="网络中断，请稍后再试", content_type="text/plain", charset="utf-8")


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    return not origin or urllib.parse.urlsplit(origin).netloc == request.host


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status,
                             dumps=lambda v: json.dumps(v, ensure_ascii=False))
