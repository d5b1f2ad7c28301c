"""A bare Tornado JSON handler, the baseline of the server benchmarks: ``python -m bench._bare PORT [PROCESSES]``
(with PROCESSES > 1, that many processes on the port with SO_REUSEPORT, as ``server.py`` does)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import tornado.web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

BODY = b'{"items":[{"code":"002008101001","name":"\xe7\xa4\xbe\xe4\xbc\x9a\xe4\xbf\x9d\xe9\x9a\x9c\xe5\x8d\xa1"}]}'


class Bare(tornado.web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(BODY)


async def serve(port: int) -> None:
    server = HTTPServer(tornado.web.Application([(r"/bare", Bare)]))
    server.add_sockets(bind_sockets(port, "127.0.0.1", reuse_port=True))
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    server.stop()


def main() -> None:
    port, processes = int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 1
    children = []
    for _ in range(processes - 1):
        pid = os.fork()
        if pid == 0:
            asyncio.run(serve(port))
            os._exit(0)
        children.append(pid)
    if children:
        signal.signal(signal.SIGTERM, lambda *_: [os.kill(pid, signal.SIGTERM) for pid in children])
    asyncio.run(serve(port))
    for pid in children:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
