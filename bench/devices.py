"""Device channel at scale: N simulated kiosks on ONE server process (default 2,000).

* connects N WebSocket devices to a real ``server.py`` subprocess;
* baseline: a push to ONE device, delivered and acknowledged (median of 20);
* then pushes to ALL devices, made from this (other) process through the
  database outbox, so the cross-process path is what is measured; for every
  device the time from the push call to its acknowledgement; p50/p99 and the
  ratio p99 / baseline; bar: p99 < 1 s and every device acknowledged;
* server memory (RSS) per connected device.

    .venv/bin/python -m bench.devices --devices 2000 --pushes 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import secrets
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import aiohttp

from yiwang import devices
from yiwang.boot import open_services
from yiwang.config import load_config
from yiwang.crypto import token_digest
from yiwang.embedded import EmbeddedMongo
from yiwang.store import Store

ROOT = Path(__file__).resolve().parent.parent


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SimDevice:
    def __init__(self, device_id: str, secret: str) -> None:
        self.id = device_id
        self.secret = secret
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.received: dict[str, float] = {}
        self.task: asyncio.Task[None] | None = None

    async def connect(self, http: aiohttp.ClientSession, url: str) -> None:
        self.ws = await http.ws_connect(url, headers={"Authorization": f"Device {self.id}:{self.secret}"},
                                        heartbeat=None, autoping=True)
        await self.ws.send_json({"type": "hello", "last_seq": 10**9})  # nothing to replay
        first = await self.ws.receive_json(timeout=30)
        assert first["type"] == "welcome", first
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        async for raw in self.ws:
            if raw.type != aiohttp.WSMsgType.TEXT:
                continue
            frame = raw.json()
            if frame.get("type") == "message":
                self.received[frame["id"]] = time.perf_counter()
                await self.ws.send_json({"type": "ack", "seq": frame["seq"], "id": frame["id"]})


async def wait_all(sims: list[SimDevice], message_id: str, limit: float = 30.0) -> None:
    deadline = time.perf_counter() + limit
    while any(message_id not in s.received for s in sims):
        if time.perf_counter() > deadline:
            break
        await asyncio.sleep(0.005)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(n: int, pushes: int) -> bool:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * n + 1024)), hard))
    embedded = EmbeddedMongo(None)
    uri = await asyncio.to_thread(embedded.start)
    env = {
        **os.environ,
        "MONGODB_URI": uri, "MONGODB_DB": "bench_devices", "DEMO_DATA": "0", "LOG_LEVEL": "WARNING",
        "PORT": str(free_port()), "HOST": "127.0.0.1", "DATA_DIR": str(ROOT / "var" / "bench-devices"),
        "PII_KEY": secrets.token_hex(16), "BLIND_INDEX_KEY": secrets.token_hex(32),
        "COOKIE_SECRET": secrets.token_hex(16), "WECHAT_SECRET": secrets.token_hex(16),
    }
    config = load_config(env)
    store = Store.connect(uri, "bench_devices")
    services = await open_services(config, store=store)
    base = f"http://127.0.0.1:{env['PORT']}"
    ok = False
    server: subprocess.Popen[bytes] | None = None
    try:
        sims = [SimDevice(uuid.uuid4().hex, secrets.token_urlsafe(32)) for _ in range(n)]
        now = devices.utcnow()
        docs = [
            {"_id": s.id, "credential": token_digest(s.secret), "hall": f"bench-hall-{i % 50}", "city": "440100",
             "label": f"基准终端 {i}", "status": "active", "online": False, "enrolled_at": now, "peripherals": {}}
            for i, s in enumerate(sims)
        ]
        for i in range(0, n, 50):  # the embedded DB takes big batches badly
            await store["devices"].insert_many(docs[i : i + 50])
        server = await asyncio.to_thread(subprocess.Popen, [sys.executable, "server.py"], cwd=ROOT, env=env,
                                         stdout=subprocess.DEVNULL)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            for _ in range(200):
                try:
                    async with http.get(base + "/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            # warm the server (first connection starts its hub) before measuring memory
            await sims[0].connect(http, base.replace("http", "ws") + "/api/devices/v1/channel")
            await asyncio.sleep(0.5)
            before = rss_kib(server.pid)
            started = time.perf_counter()
            url = base.replace("http", "ws") + "/api/devices/v1/channel"
            for i in range(1, n, 100):
                await asyncio.gather(*(s.connect(http, url) for s in sims[i : i + 100]))
            connect_seconds = time.perf_counter() - started
            for _ in range(600):  # let the server write the connection storm's online flags
                if await store["devices"].count_documents({"online": True}) >= n:
                    break
                await asyncio.sleep(0.5)
            after = rss_kib(server.pid)
            print(f"connected {n} devices in {connect_seconds:.1f} s", flush=True)

            baseline = []
            for _ in range(20):
                t0 = time.perf_counter()
                mid = await devices.push(services, {"scope": "device", "device": sims[1].id}, {"topic": "one"})
                await wait_all([sims[1]], mid)
                baseline.append(sims[1].received[mid] - t0)
            base_p50 = statistics.median(baseline)

            latencies: list[float] = []
            push_seconds: list[float] = []
            missing = 0
            for k in range(pushes):
                t0 = time.perf_counter()
                mid = await devices.push(services, {"scope": "all"}, {"topic": f"all-{k}"})
                push_seconds.append(time.perf_counter() - t0)
                await wait_all(sims, mid)
                for s in sims:
                    if mid in s.received:
                        latencies.append(s.received[mid] - t0)
                    else:
                        missing += 1
                await asyncio.sleep(0.3)
            flushed_at = time.perf_counter()
            for _ in range(120):  # the server writes acknowledgements in batches
                status = await devices.delivery_status(services, mid)
                if status["acknowledged"] >= n:
                    break
                await asyncio.sleep(0.25)
            recorded = time.perf_counter() - flushed_at
            print(f"acknowledgements of the last push recorded in the DB after {recorded:.1f} s", flush=True)
            p50, p99 = pct(latencies, 0.50), pct(latencies, 0.99)
            per_device = (after - before) / max(1, n - 1)
            ok = p99 < 1.0 and missing == 0
            print(f"baseline: push to one device, median          {base_p50 * 1000:8.1f} ms", flush=True)
            print(f"push to all {n}: p50                          {p50 * 1000:8.1f} ms", flush=True)
            print(f"push to all {n}: p99                          {p99 * 1000:8.1f} ms  "
                  f"(ratio p99/baseline {p99 / base_p50:5.1f}×)  bar < 1000 ms  {'PASS' if ok else 'FAIL'}",
                  flush=True)
            print(f"of which the push call itself (outbox insert + audit), median "
                  f"{statistics.median(push_seconds) * 1000:8.1f} ms", flush=True)
            print(f"not delivered: {missing}; acknowledgements recorded for the last push: "
                  f"{status['acknowledged']}/{status['targeted']}", flush=True)
            print(f"server RSS {before / 1024:.0f} MiB → {after / 1024:.0f} MiB: "
                  f"{per_device:.1f} KiB per connected device", flush=True)
            for s in sims:
                if s.ws is not None:
                    await s.ws.close()
                if s.task is not None:
                    s.task.cancel()
    finally:
        if server is not None:
            server.terminate()
        try:
            if server is not None:
                await asyncio.to_thread(server.wait, 15)
        except subprocess.TimeoutExpired:
            server.kill()
        await services.close(close_store=True)
        await asyncio.to_thread(embedded.stop)
    return ok


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=2000, help="simulated devices (default 2000)")
    parser.add_argument("--pushes", type=int, default=5, help="pushes to all devices (default 5)")
    args = parser.parse_args(argv or [])
    asyncio.run(run(args.devices, args.pushes))


if __name__ == "__main__":
    main(sys.argv[1:])
