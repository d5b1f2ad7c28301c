"""What the server benchmarks share: the real server (``server.py``) and a bare Tornado JSON server, each in
processes of their own, an embedded database started by the benchmark, and a closed-loop load generator
(aiohttp, in the benchmark's process: never in the server's)."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def secrets_env() -> dict[str, str]:
    """The keys the server and the benchmark's own store share (tokens and sealed fields must agree)."""
    return {
        "PII_KEY": secrets.token_hex(16),
        "BLIND_INDEX_KEY": secrets.token_hex(32),
        "COOKIE_SECRET": secrets.token_hex(16),
        "WECHAT_SECRET": secrets.token_hex(16),
        "AUDIT_KEY": secrets.token_hex(32),
        "WECHAT_API_BASE": "http://127.0.0.1:9",  # nothing in the benchmarks calls WeChat
    }


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 120.0) -> float:
    """Seconds until ``url`` answers 200 (the process must stay up)."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.perf_counter() - started
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {timeout:.0f} s")


@dataclass
class Process:
    process: subprocess.Popen[bytes]
    base: str

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(
    env: dict[str, str], data_dir: Path, *, processes: int = 1, log: Path | None = None, profile: Path | None = None
) -> Process:
    """``server.py`` on a fresh port against the benchmark's database (``env`` has MONGODB_URI and the keys);
    with ``profile``, under cProfile (written there when it stops)."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    full = dict(os.environ, **env, PORT=str(port), DATA_DIR=str(data_dir), PROCESSES=str(processes))
    full.setdefault("LOG_LEVEL", "INFO")  # the request log is part of what a request costs
    out = open(log or os.devnull, "ab")  # noqa: SIM115 - the child holds it
    command = [sys.executable, *(["-m", "bench._profile", str(profile)] if profile else ["server.py"])]
    process = subprocess.Popen(command, cwd=ROOT, env=full, stdout=out, stderr=out)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base + "/readyz", process)
    except BaseException:
        Process(process, base).stop()
        raise
    return Process(process, base)


def start_bare(processes: int = 1) -> Process:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench._bare", str(port), str(processes)], cwd=ROOT, stdout=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    wait_ready(base + "/bare", process)
    return Process(process, base)


@dataclass
class Load:
    rps: float
    latencies: list[float]
    errors: int

    def p(self, q: int) -> float:
        """The q-th percentile in ms."""
        values = self.latencies
        return statistics.quantiles(values, n=100)[q - 1] * 1000 if len(values) > 1 else 0.0

    def line(self, label: str) -> str:
        return f"{label:<34} {self.rps:9.1f} req/s  p50 {self.p(50):7.1f} ms  p99 {self.p(99):7.1f} ms" + (
            f"  errors {self.errors}" if self.errors else ""
        )


Request = Callable[[aiohttp.ClientSession, int], Awaitable[int]]


async def drive(request: Request, seconds: float, clients: int) -> Load:
    """Closed loop: each of ``clients`` sends its next request when the last one is answered."""
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        stop = time.perf_counter() + seconds

        async def client(n: int) -> None:
            nonlocal errors
            k = 0
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                try:
                    status = await request(session, n * 7919 + k)
                except aiohttp.ClientError:
                    status = 599
                latencies.append(time.perf_counter() - t0)
                k += 1
                if status >= 500:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(client(n) for n in range(clients)))
        elapsed = time.perf_counter() - started
    return Load(len(latencies) / elapsed, latencies, errors)


def getter(url: str, headers: dict[str, str] | None = None) -> Request:
    async def get(session: aiohttp.ClientSession, n: int) -> int:
        async with session.get(url, headers=headers) as response:
            await response.read()
            return response.status

    return get


async def median_ms(request: Request, samples: int) -> float:
    """Median latency of one request at a time (no concurrency: the cost of the request itself)."""
    times = []
    async with aiohttp.ClientSession() as session:
        await request(session, 0)  # warm: caches loaded, connection open
        for n in range(samples):
            t0 = time.perf_counter()
            status = await request(session, n)
            times.append(time.perf_counter() - t0)
            if status != 200:
                raise RuntimeError(f"status {status}")
    return statistics.median(times) * 1000
