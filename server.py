"""Yiwang server: reads config, opens the store, builds the app, listens.

    python server.py            # config from the environment
    python server.py --demo     # development: embedded DB with demo data

SIGTERM / SIGINT: stop accepting, let in-flight requests finish (up to
SHUTDOWN_GRACE_SECONDS), close the store, stop the embedded database.

PROCESSES=N (0: one per core) runs N server processes on the same port
(SO_REUSEPORT: the kernel spreads connections) sharing one database. The
parent starts the embedded database once, prepares it (indexes, migrations,
demo data) once, forks the workers, restarts one that dies, forwards
SIGTERM / SIGINT to them and stops the database after the last has exited.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass

import tornado.web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from web.app import make_app
from web.base import SERVER_LIMITS
from yiwang import sdnotify
from yiwang.boot import leave_address, open_services
from yiwang.config import Config, ConfigError, load_config
from yiwang.embedded import EmbeddedMongo
from yiwang.errors import InvalidInput
from yiwang.files import PRIVATE_UMASK
from yiwang.logs import configure_logging, flush_request_lines
from yiwang.notifications import check_account_templates
from yiwang.runtime import Services

log = logging.getLogger("yiwang.server")


@dataclass
class Running:
    app: tornado.web.Application
    http: HTTPServer
    services: Services


def bind(config: Config, *, reuse_port: bool = False) -> list[socket.socket]:
    """Bind first, so a port in use fails before anything else starts."""
    return bind_sockets(config.port, config.host, reuse_port=reuse_port)


def listen(app: tornado.web.Application, sockets: list[socket.socket]) -> HTTPServer:
    # No xheaders: forwarding headers are believed only from TRUSTED_PROXIES (web.base.request_address).
    http = HTTPServer(app, idle_connection_timeout=60, **SERVER_LIMITS)
    http.add_sockets(sockets)
    return http


async def shutdown(running: Running, grace_seconds: float) -> None:
    """Stop accepting, drain in-flight requests, then close everything."""
    log.info("shutting down", extra={"fields": {"inflight": len(running.app.settings["inflight"])}})
    running.http.stop()
    if not await running.app.settings["inflight"].wait_idle(grace_seconds):
        log.warning("grace period over; closing remaining connections")
    await running.http.close_all_connections()
    await running.services.close()
    log.info("stopped")


async def serve(config: Config, sockets: list[socket.socket], *, worker: int | None = None) -> None:
    services = await open_services(config)
    # Off the start-up path: WeChat may be slow or down, and a misconfigured template is logged, not fatal.
    template_check = asyncio.create_task(check_account_templates(services))
    app = make_app(services)
    running = Running(app, listen(app, sockets), services)
    base = config.public_url
    log.info("listening", extra={"fields": {"host": config.host, "port": config.port, "worker": worker}})
    if worker is None or worker == 0:
        print(
            f"Yiwang is serving on {base}" + (f" ({config.processes} processes)" if worker is not None else "") + "\n"
            f"  kiosk:       {base}/kiosk/\n"
            f"  mobile API:  {base}/api/mobile/v1/docs\n"
            f"  console:     {base}/console/\n"
            f"  health:      {base}/readyz",
            flush=True,
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if worker is None:  # workers: the supervising parent speaks to systemd
        sdnotify.notify("READY=1")
    watchdog = sdnotify.start_watchdog() if worker is None else None
    await stop.wait()
    if worker is None:
        sdnotify.notify("STOPPING=1")
    template_check.cancel()
    if watchdog is not None:
        await sdnotify.stop_watchdog(watchdog)
    await shutdown(running, config.shutdown_grace_seconds)


async def prepare_database(config: Config) -> None:
    """What every process would otherwise repeat at start-up: indexes, migrations, demo data."""
    services = await open_services(config)
    await services.close()


def supervise(config: Config) -> None:
    """PROCESSES > 1: one database for all, N workers on the port, each with its own SO_REUSEPORT socket."""
    for probe in bind(config, reuse_port=True):  # a port in use fails here, plainly, before anything starts
        probe.close()
    embedded: EmbeddedMongo | None = None
    if not config.mongodb_uri:
        path = config.data_dir / "yiwang.sqlite" if config.embedded_engine == "sqlite" else None
        embedded = EmbeddedMongo(path)
        config = dataclasses.replace(config, mongodb_uri=embedded.start())
        leave_address(config, config.mongodb_uri)
        log.info("embedded database started", extra={"fields": {"engine": config.embedded_engine}})
    try:
        asyncio.run(prepare_database(config))  # the loop is closed again before any fork
        worker_config = dataclasses.replace(config, demo_data=False)
        children: dict[int, int] = {}
        stopping = False

        def start(worker: int) -> None:
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)
                    signal.signal(signal.SIGINT, signal.SIG_DFL)
                    asyncio.run(serve(worker_config, bind(worker_config, reuse_port=True), worker=worker))
                except BaseException:
                    log.exception("worker failed", extra={"fields": {"worker": worker}})
                    code = 1
                finally:
                    flush_request_lines()
                    logging.shutdown()
                    os._exit(code)
            children[pid] = worker

        def forward(signum: int, _frame: object) -> None:
            nonlocal stopping
            stopping = True
            for pid in list(children):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        for worker in range(config.processes):
            start(worker)
        sdnotify.notify("READY=1")
        while children:
            time.sleep(0.2)  # only our workers are waited for: the database's process is its Popen's
            for pid in list(children):
                try:
                    done, status = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    done, status = pid, -1
                if done == 0:
                    continue
                worker = children.pop(pid)
                if not stopping:
                    log.error("worker exited; restarting", extra={"fields": {"worker": worker, "status": status}})
                    start(worker)
        sdnotify.notify("STOPPING=1")
    finally:
        if embedded is not None:
            embedded.stop()
    log.info("stopped")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", action="store_true", help="development defaults: demo data on")
    args = parser.parse_args()
    os.umask(PRIVATE_UMASK)  # whatever this process writes (DATA_DIR, uploads, checkpoints) is its own: 0600/0700
    if args.demo:
        os.environ.setdefault("DEMO_DATA", "1")
    try:
        config = load_config()
        configure_logging(config.log_level)
        if config.processes > 1:
            supervise(config)
        else:
            asyncio.run(serve(config, bind(config)))
    except ConfigError as error:  # configuration errors: name each bad setting, no traceback, exit non-zero
        print(error.report(), file=sys.stderr)
        sys.exit(2)
    except InvalidInput as error:
        print(f"配置错误 / configuration error ({error.code}): {error.message}", file=sys.stderr)
        sys.exit(2)
    except OSError as error:  # e.g. the port is taken: say so plainly
        print(f"无法启动：{error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
