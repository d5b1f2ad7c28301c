"""The embedded default database: mongoeco's wire-protocol server in a child process.

The application talks to it by URI with the same PyMongo code as production.
It runs in its own process so that its (pure Python) engine does not share the
GIL with the web server. Run directly: ``python -m yiwang.embedded --path F``.

It is a server on a local port, so it requires SCRAM-SHA-256 authentication
(docs/embedded-db.md, "Authentication"): one user, ``yiwang``, whose password
is generated once (strong random) into ``secrets.env`` beside the database file
(0600) and handed to the child in its environment, never on its command line.
An in-memory database gets a fresh password per start. A connection without the
credentials can run the handshake and nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import quote

from yiwang.config import SECRETS_HEADER
from yiwang.files import PRIVATE_UMASK, ensure_env_values, private_dir, restrict

_READY = "mongoeco-ready "
USER = "yiwang"
AUTH_MECHANISM = "SCRAM-SHA-256"
SECRETS_FILE = "secrets.env"
PASSWORD_SETTING = "EMBEDDED_DB_PASSWORD"
# The child reads its credentials from these (never from argv, which every local user can see).
_ENV_USER = "YIWANG_EMBEDDED_USER"
_ENV_PASSWORD = "YIWANG_EMBEDDED_PASSWORD"


def credentials(data_dir: Path) -> tuple[str, str]:
    """The embedded database's (user, password), generated once into ``data_dir/secrets.env`` (0600)."""
    private_dir(data_dir)
    values = ensure_env_values(
        data_dir / SECRETS_FILE, {PASSWORD_SETTING: lambda: secrets.token_urlsafe(32)}, SECRETS_HEADER
    )
    return USER, values[PASSWORD_SETTING]


def client_uri(port: int, user: str, password: str, host: str = "127.0.0.1") -> str:
    """The URI a client connects with: credentials, SCRAM-SHA-256, a direct connection."""
    return (
        f"mongodb://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/"
        f"?directConnection=true&authSource=admin&authMechanism={AUTH_MECHANISM}"
    )


def database_files(path: Path) -> tuple[Path, ...]:
    """The SQLite file and its write-ahead log and shared-memory index."""
    return (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))


class EmbeddedMongo:
    """Starts and stops the child process; ``uri`` is known once started."""

    def __init__(self, path: Path | None, *, port: int = 0, credentials: tuple[str, str] | None = None) -> None:
        self.path = path  # None → in-memory engine
        self.port = port  # 0: any free port; after the first start, the port it got (a restart keeps it)
        self.uri = ""
        self._credentials = credentials
        self._process: subprocess.Popen[str] | None = None

    @property
    def credentials(self) -> tuple[str, str]:
        if self._credentials is None:
            if self.path is not None:
                self._credentials = credentials(self.path.parent)
            else:  # in memory: nothing outlives the process, so neither does its password
                self._credentials = (USER, secrets.token_urlsafe(32))
        return self._credentials

    def running(self) -> bool:
        """Whether the child process is alive (reaps it if it died)."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs (for benchmarks reading its CPU time)."""
        return self._process.pid if self._process is not None else None

    def start(self, timeout: float = 30.0) -> str:
        args = [sys.executable, "-m", "yiwang.embedded", "--port", str(self.port)]
        if self.path is not None:
            private_dir(self.path.parent)
            args += ["--path", str(self.path)]
        user, password = self.credentials
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
        env[_ENV_USER], env[_ENV_PASSWORD] = user, password
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
        self.port = int(line[len(_READY) :].strip())
        self.uri = client_uri(self.port, user, password)
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


async def _serve(path: str | None, port: int, user: str, password: str) -> None:
    from mongoeco.engines.memory import MemoryEngine
    from mongoeco.engines.sqlite import SQLiteEngine
    from mongoeco.wire.proxy import AsyncMongoEcoProxyServer

    from yiwang import embedded_compat

    # Who started us, read before the ready line: a parent killed right after reading it must still be
    # noticed (read later, the pid would already be init's, and the database would never stop).
    parent = os.getppid()
    embedded_compat.apply()  # mongoeco 4.11.0's growing insert and reader costs (docs/mongoeco-patch.md)
    os.umask(PRIVATE_UMASK)  # the database, its WAL and shared-memory files: 0600
    if path:
        private_dir(Path(path).parent)
        restrict(*database_files(Path(path)))  # files an older version left 0644
    engine = SQLiteEngine(path, executor_workers=1) if path else MemoryEngine()
    proxy = AsyncMongoEcoProxyServer(
        engine=engine, host="127.0.0.1", port=port, auth_users=(embedded_compat.auth_user(user, password),)
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    address = await proxy.start()
    print(_READY + str(address.port), flush=True)  # the port only: the password stays out of logs
    watchdog = asyncio.create_task(_stop_when_orphaned(stop, parent))
    try:
        await stop.wait()
    finally:
        watchdog.cancel()
        # Closing the engine flushes and closes the SQLite file cleanly.
        await proxy.close()


async def _stop_when_orphaned(stop: asyncio.Event, parent: int) -> None:
    """The server that started us died without stopping us: stop too, cleanly."""
    while os.getppid() == parent:  # noqa: ASYNC110 - nothing to wait on: the kernel only re-parents us
        await asyncio.sleep(1.0)
    stop.set()


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the embedded MongoDB-compatible database")
    parser.add_argument("--path", help="SQLite file; omit for an in-memory database")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--print-uri", action="store_true",
        help="print the client URI with the credentials of --path's database (for MONGODB_URI) and exit",
    )  # fmt: skip
    args = parser.parse_args()
    user, password = os.environ.get(_ENV_USER, ""), os.environ.get(_ENV_PASSWORD, "")
    if not (user and password):
        if not args.path:
            parser.error("an in-memory database needs its credentials in the environment (use EmbeddedMongo)")
        user, password = credentials(Path(args.path).resolve().parent)
    if args.print_uri:
        print(client_uri(args.port or 27018, user, password))
        return
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.path, args.port, user, password))


if __name__ == "__main__":
    main()
