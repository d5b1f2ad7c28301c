"""The embedded default database: mongoeco's wire-protocol server in a child process.

The application talks to it by URI with the same PyMongo code as production.
It runs in its own process so that its (pure Python) engine does not share the
GIL with the web server. Run directly: ``python -m yiwang.embedded --path F``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

_READY = "mongoeco-ready "


class EmbeddedMongo:
    """Starts and stops the child process; ``uri`` is known once started."""

    def __init__(self, path: Path | None, *, port: int = 0) -> None:
        self.path = path  # None → in-memory engine
        self.port = port
        self.uri = ""
        self._process: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs (for benchmarks reading its CPU time)."""
        return self._process.pid if self._process is not None else None

    def start(self, timeout: float = 30.0) -> str:
        args = [sys.executable, "-m", "yiwang.embedded", "--port", str(self.port)]
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            args += ["--path", str(self.path)]
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
        # A session of its own: a Ctrl-C at the terminal reaches the server, which
        # then stops the database last, after its own final writes.
        self._process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env, start_new_session=True)
        ready: list[str] = []
        reader = threading.Thread(target=lambda: ready.append(self._process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout)
        line = ready[0] if ready else ""
        if not line.startswith(_READY):
            self.stop()
            raise RuntimeError("embedded database did not start")
        self.uri = line[len(_READY) :].strip()
        return self.uri

    def stop(self, timeout: float = 15.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _serve(path: str | None, port: int) -> None:
    from mongoeco.engines.memory import MemoryEngine
    from mongoeco.engines.sqlite import SQLiteEngine
    from mongoeco.wire.proxy import AsyncMongoEcoProxyServer

    from yiwang import embedded_compat

    embedded_compat.apply()  # mongoeco 4.11.0's growing insert and reader costs (docs/mongoeco-patch.md)
    engine = SQLiteEngine(path, executor_workers=1) if path else MemoryEngine()
    proxy = AsyncMongoEcoProxyServer(engine=engine, host="127.0.0.1", port=port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    address = await proxy.start()
    print(_READY + address.uri, flush=True)
    watchdog = asyncio.create_task(_stop_when_orphaned(stop))
    try:
        await stop.wait()
    finally:
        watchdog.cancel()
        # Closing the engine flushes and closes the SQLite file cleanly.
        await proxy.close()


async def _stop_when_orphaned(stop: asyncio.Event) -> None:
    """The server that started us died without stopping us: stop too, cleanly."""
    parent = os.getppid()
    while os.getppid() == parent:  # noqa: ASYNC110 - nothing to wait on: the kernel only re-parents us
        await asyncio.sleep(1.0)
    stop.set()


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the embedded MongoDB-compatible database")
    parser.add_argument("--path", help="SQLite file; omit for an in-memory database")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.path, args.port))


if __name__ == "__main__":
    main()
