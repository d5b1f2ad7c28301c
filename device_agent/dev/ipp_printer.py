"""A development IPP printer on loopback: answers Print-Job, Get-Job-Attributes,
Get-Printer-Attributes and Cancel-Job as CUPS does, with printer-state-reasons and job
states that tests drive (paper out, paper low, jam mid-job, door open, toner low).

    python -m device_agent.dev.ipp_printer --port 8631
    # then AGENT_CUPS_URL=http://127.0.0.1:8631 AGENT_PRINTER=kiosk
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
from dataclasses import dataclass, field

from aiohttp import web

from device_agent.drivers import ipp
from device_agent.drivers.ipp import Attribute


@dataclass
class Job:
    id: int
    name: str
    data: bytes
    state: int = ipp.PROCESSING
    printed_seconds: float = 0.0
    reasons: list[str] = field(default_factory=lambda: ["job-printing"])


class IppPrinterDouble:
    def __init__(self, print_seconds: float = 0.2, tick: float = 0.02) -> None:
        self.print_seconds = print_seconds
        self.tick = tick
        self.reasons: set[str] = set()
        self.accepting = True
        self.jobs: dict[int, Job] = {}
        self._ids = itertools.count(101)
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None

    # ---- what tests do ---------------------------------------------------------

    def set_reasons(self, *reasons: str) -> None:
        """e.g. set_reasons("media-jam-error"); set_reasons() clears."""
        self.reasons = set(reasons)

    def abort(self, job_id: int) -> None:
        self.jobs[job_id].state = ipp.ABORTED
        self.jobs[job_id].reasons = ["aborted-by-system"]

    @property
    def stopped(self) -> bool:
        return any(r.endswith("-error") for r in self.reasons)

    # ---- life cycle --------------------------------------------------------------

    async def start(self, port: int = 0) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/printers/{name}", self._handle)
        app.router.add_post("/", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{bound}"
        self._ticker = asyncio.create_task(self._advance())
        return self.url

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self._runner is not None:
            await self._runner.cleanup()

    async def _advance(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            for job in self.jobs.values():
                if job.state in ipp.TERMINAL:
                    continue
                if self.stopped:
                    job.state, job.reasons = ipp.STOPPED, ["printer-stopped"]
                    continue
                job.state, job.reasons = ipp.PROCESSING, ["job-printing"]
                job.printed_seconds += self.tick
                if job.printed_seconds >= self.print_seconds:
                    job.state, job.reasons = ipp.COMPLETED, ["job-completed-successfully"]

    # ---- IPP -----------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        if request.content_type != "application/ipp":
            return web.Response(status=400)
        try:
            message = ipp.decode(await request.read())
        except ipp.IppError:
            return web.Response(status=400)
        answer = self.answer(message)
        return web.Response(body=ipp.encode(answer), content_type="application/ipp")

    def _job_group(self, job: Job) -> tuple[int, list[Attribute]]:
        return (ipp.JOB, [Attribute("job-id", ipp.INTEGER, [job.id]),
                          Attribute("job-uri", ipp.URI, [f"{self.url}/jobs/{job.id}"]),
                          Attribute("job-state", ipp.ENUM, [job.state]),
                          Attribute("job-state-reasons", ipp.KEYWORD, list(job.reasons))])

    def answer(self, message: ipp.Message) -> ipp.Message:
        rid = message.request_id
        operation = message.group(ipp.OPERATION)
        if "printer-uri" not in operation:
            return ipp.response(ipp.BAD_REQUEST, rid)
        if message.code == ipp.GET_PRINTER_ATTRIBUTES:
            state = ipp.PRINTER_STOPPED if self.stopped else ipp.BUSY if any(
                j.state == ipp.PROCESSING for j in self.jobs.values()) else ipp.IDLE
            return ipp.response(ipp.OK, rid, (ipp.PRINTER, [
                Attribute("printer-state", ipp.ENUM, [state]),
                Attribute("printer-state-reasons", ipp.KEYWORD, sorted(self.reasons) or ["none"]),
                Attribute("printer-is-accepting-jobs", ipp.BOOLEAN, [self.accepting]),
            ]))
        if message.code == ipp.PRINT_JOB:
            if not self.accepting:
                return ipp.response(ipp.NOT_ACCEPTING, rid)
            if operation.get("document-format", ["application/pdf"])[0] != "application/pdf":
                return ipp.response(ipp.DOCUMENT_FORMAT_NOT_SUPPORTED, rid)
            job = Job(next(self._ids), str(operation.get("job-name", ["untitled"])[0]), message.data)
            self.jobs[job.id] = job
            return ipp.response(ipp.OK, rid, self._job_group(job))
        if message.code in (ipp.GET_JOB_ATTRIBUTES, ipp.CANCEL_JOB):
            found = self.jobs.get(int(operation.get("job-id", [0])[0]))
            if found is None:
                return ipp.response(ipp.NOT_FOUND, rid)
            if message.code == ipp.CANCEL_JOB:
                found.state, found.reasons = ipp.CANCELED, ["job-canceled-by-user"]
                return ipp.response(ipp.OK, rid)
            return ipp.response(ipp.OK, rid, self._job_group(found))
        return ipp.response(ipp.OPERATION_NOT_SUPPORTED, rid)


async def _serve(port: int) -> None:
    printer = IppPrinterDouble(print_seconds=2.0)
    print(await printer.start(port), flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m device_agent.dev.ipp_printer")
    parser.add_argument("--port", type=int, default=8631)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
