"""Yiwang server: reads config, opens the store, builds the app, listens.

    python server.py            # config from the environment
    python server.py --demo     # development: embedded DB with demo data

SIGTERM / SIGINT: stop accepting, let in-flight requests finish (up to
SHUTDOWN_GRACE_SECONDS), close the store, stop the embedded database.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
from dataclasses import dataclass

import tornado.web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from web.app import make_app
from web.base import SERVER_LIMITS
from yiwang import sdnotify
from yiwang.boot import open_services
from yiwang.config import Config, ConfigError, load_config
from yiwang.errors import InvalidInput
from yiwang.files import PRIVATE_UMASK
from yiwang.logs import configure_logging
from yiwang.notifications import check_account_templates
from yiwang.runtime import Services

log = logging.getLogger("yiwang.server")


@dataclass
class Running:
    app: tornado.web.Application
    http: HTTPServer
    services: Services


def bind(config: Config) -> list[socket.socket]:
    """Bind first, so a port in use fails before anything else starts."""
    return bind_sockets(config.port, config.host)


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


async def serve() -> None:
    config = load_config()
    configure_logging(config.log_level)
    sockets = bind(config)
    services = await open_services(config)
    # Off the start-up path: WeChat may be slow or down, and a misconfigured template is logged, not fatal.
    template_check = asyncio.create_task(check_account_templates(services))
    app = make_app(services)
    running = Running(app, listen(app, sockets), services)
    base = config.public_url
    log.info("listening", extra={"fields": {"host": config.host, "port": config.port}})
    print(
        f"Yiwang is serving on {base}\n"
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
    sdnotify.notify("READY=1")
    watchdog = sdnotify.start_watchdog()
    await stop.wait()
    sdnotify.notify("STOPPING=1")
    template_check.cancel()
    await sdnotify.stop_watchdog(watchdog)
    await shutdown(running, config.shutdown_grace_seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", action="store_true", help="development defaults: demo data on")
    args = parser.parse_args()
    os.umask(PRIVATE_UMASK)  # whatever this process writes (DATA_DIR, uploads, checkpoints) is its own: 0600/0700
    if args.demo:
        os.environ.setdefault("DEMO_DATA", "1")
    try:
        asyncio.run(serve())
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
