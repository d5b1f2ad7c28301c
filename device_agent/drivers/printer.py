"""Printers: PDFs to a folder (development) or IPP to the local CUPS (hardware).

Both: ``print_pdf(data, label) -> job id`` (refused with :class:`PrinterError` when the
printer cannot print), ``track(job)`` yields :class:`JobUpdate` until the job completed
or failed, ``status()`` is one of :data:`STATES`, ``alerts()`` the fleet alerts
(``{"code", "severity", "message"}``) for the console.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from device_agent.drivers import ipp

log = logging.getLogger("device_agent.printer")

STATES = ("ready", "paper_low", "toner_low", "paper_out", "jammed", "door_open", "offline")
BLOCKING = ("paper_out", "jammed", "door_open", "offline")

# printer-state-reasons keyword (without -error/-warning/-report) → (state, severity, message)
REASONS: dict[str, tuple[str, str, str]] = {
    "media-empty": ("paper_out", "error", "打印机缺纸，请联系工作人员添加纸张"),
    "media-needed": ("paper_out", "error", "打印机缺纸，请联系工作人员添加纸张"),
    "media-jam": ("jammed", "error", "打印机卡纸，请联系工作人员"),
    "door-open": ("door_open", "error", "打印机舱门未关闭，请联系工作人员"),
    "cover-open": ("door_open", "error", "打印机舱门未关闭，请联系工作人员"),
    "media-low": ("paper_low", "warning", "打印纸即将用完，请联系工作人员添加"),
    "toner-low": ("toner_low", "warning", "打印机墨粉不足，打印可能偏淡"),
}
OFFLINE_MESSAGE = "打印机未连接，请联系工作人员"
MESSAGES = {state: message for state, _, message in REASONS.values()} | {"offline": OFFLINE_MESSAGE}
PRIORITY = ("offline", "jammed", "paper_out", "door_open", "paper_low", "toner_low", "ready")


class PrinterError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(code)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class JobUpdate:
    job: str
    state: str  # "printing" | "stopped" | "completed" | "failed"
    message: str = ""
    code: str = ""

    @property
    def final(self) -> bool:
        return self.state in ("completed", "failed")


def state_of(reasons: list[str], reachable: bool = True) -> tuple[str, list[dict[str, str]]]:
    """printer-state-reasons → (the kiosk's state, fleet alerts)."""
    if not reachable:
        return "offline", [{"code": "printer.offline", "severity": "error", "message": OFFLINE_MESSAGE}]
    found: dict[str, tuple[str, str]] = {}
    for reason in reasons:
        keyword = reason
        for suffix in ("-error", "-warning", "-report"):
            keyword = keyword.removesuffix(suffix)
        if keyword in REASONS:
            state, severity, message = REASONS[keyword]
            found.setdefault(state, (severity, message))
    state = next((s for s in PRIORITY if s in found), "ready")
    alerts = [{"code": f"printer.{s}", "severity": found[s][0], "message": found[s][1]} for s in PRIORITY if s in found]
    return state, alerts


class FolderPrinter:
    """Development printer: each job is a PDF in the folder; ``<folder>/STATUS`` holds a state to simulate."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def status(self) -> str:
        flag = self.folder / "STATUS"
        if flag.exists():
            state = flag.read_text().strip()
            return state if state in STATES else "ready"
        return "ready"

    def alerts(self) -> list[dict[str, str]]:
        state = self.status()
        if state == "ready":
            return []
        return [{"code": f"printer.{state}", "severity": "error" if state in BLOCKING else "warning",
                 "message": MESSAGES.get(state, "")}]

    async def print_pdf(self, data: bytes, label: str) -> str:
        state = self.status()
        if state in BLOCKING:
            raise PrinterError(f"printer.{state}", MESSAGES[state])
        job = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        safe_label = "".join(c for c in label if c.isalnum() or c in "-_")[:20] or "job"
        path = self.folder / f"{job}-{safe_label}.pdf"
        await asyncio.to_thread(path.write_bytes, data)
        return job

    async def track(self, job: str) -> AsyncIterator[JobUpdate]:
        yield JobUpdate(job, "completed")


class IppPrinter:
    """A CUPS queue over IPP (HTTP POST ``application/ipp`` to ``http://127.0.0.1:631/printers/NAME``).

    ``refresh()`` asks Get-Printer-Attributes (the agent calls it every few seconds);
    ``track(job)`` polls Get-Job-Attributes: a job stopped by the printer (jam, door,
    paper) is reported as ``stopped`` with the reason's message and resumes when the
    technician fixes it; aborted or cancelled jobs are ``failed``."""

    def __init__(self, url: str, *, poll_seconds: float = 1.0, job_timeout: float = 900.0,
                 request_timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.printer_uri = self.url.replace("http://", "ipp://", 1).replace("https://", "ipps://", 1)
        self.poll_seconds = poll_seconds
        self.job_timeout = job_timeout
        self.request_timeout = request_timeout
        self._ids = itertools.count(1)
        self._state = "offline"
        self._alerts: list[dict[str, str]] = state_of([], reachable=False)[1]
        self._reasons: list[str] = []
        self._session: aiohttp.ClientSession | None = None

    def status(self) -> str:
        return self._state

    def alerts(self) -> list[dict[str, str]]:
        return list(self._alerts)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(self, message: ipp.Message) -> ipp.Message:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.request_timeout))
        async with self._session.post(self.url, data=ipp.encode(message),
                                      headers={"Content-Type": "application/ipp"}) as response:
            if response.status != 200:
                raise ipp.IppError(f"HTTP {response.status}")
            return ipp.decode(await response.read())

    async def refresh(self) -> str:
        attrs = ipp.Attribute("requested-attributes", ipp.KEYWORD,
                              ["printer-state", "printer-state-reasons", "printer-is-accepting-jobs"])
        try:
            answer = await self.call(ipp.request(ipp.GET_PRINTER_ATTRIBUTES, next(self._ids), self.printer_uri, attrs))
            if answer.code != ipp.OK:
                raise ipp.IppError(f"status {answer.code:#06x}")
        except (aiohttp.ClientError, TimeoutError, OSError, ipp.IppError) as error:
            log.info("printer not reachable: %s", error)
            self._state, self._alerts = state_of([], reachable=False)
            return self._state
        printer = answer.group(ipp.PRINTER)
        self._reasons = [str(r) for r in printer.get("printer-state-reasons", []) if r != "none"]
        accepting = printer.get("printer-is-accepting-jobs", [True])[0]
        self._state, self._alerts = state_of(self._reasons, reachable=bool(accepting))
        return self._state

    async def print_pdf(self, data: bytes, label: str) -> str:
        state = await self.refresh()
        if state in BLOCKING:
            raise PrinterError(f"printer.{state}", MESSAGES[state])
        message = ipp.request(
            ipp.PRINT_JOB, next(self._ids), self.printer_uri,
            ipp.Attribute("job-name", ipp.NAME, [label[:60] or "yiwang"]),
            ipp.Attribute("document-format", ipp.MIME, ["application/pdf"]),
            data=data,
        )
        try:
            answer = await self.call(message)
        except (aiohttp.ClientError, TimeoutError, OSError, ipp.IppError) as error:
            log.warning("print job not accepted: %s", error)
            raise PrinterError("printer.offline", OFFLINE_MESSAGE) from error
        job_id = answer.first(ipp.JOB, "job-id")
        if answer.code > 0x00FF or job_id is None:
            raise PrinterError("printer.failed", "打印失败，请联系工作人员")
        return str(job_id)

    async def _job_state(self, job: str) -> tuple[int, list[str]]:
        attrs = ipp.Attribute("requested-attributes", ipp.KEYWORD, ["job-state", "job-state-reasons"])
        answer = await self.call(ipp.request(ipp.GET_JOB_ATTRIBUTES, next(self._ids), self.printer_uri,
                                             ipp.Attribute("job-id", ipp.INTEGER, [int(job)]), attrs))
        if answer.code == ipp.NOT_FOUND:
            return ipp.ABORTED, ["job-not-found"]
        reasons = [str(r) for r in answer.group(ipp.JOB).get("job-state-reasons", [])]
        return int(answer.first(ipp.JOB, "job-state", ipp.PENDING)), reasons

    async def track(self, job: str) -> AsyncIterator[JobUpdate]:
        """Updates when the job's state changes, until completed or failed (or job_timeout)."""
        deadline = time.monotonic() + self.job_timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                state, _reasons = await self._job_state(job)
            except (aiohttp.ClientError, TimeoutError, OSError, ipp.IppError):
                state = -1
            if state == ipp.COMPLETED:
                yield JobUpdate(job, "completed")
                return
            if state in (ipp.ABORTED, ipp.CANCELED):
                await self.refresh()
                code = f"printer.{self._state}" if self._state != "ready" else "printer.failed"
                yield JobUpdate(job, "failed", MESSAGES.get(self._state, "打印失败，请联系工作人员"), code)
                return
            printer_state = await self.refresh() if state in (ipp.STOPPED, -1) else "ready"
            if printer_state not in ("ready", "paper_low", "toner_low"):
                update = JobUpdate(job, "stopped", MESSAGES[printer_state], f"printer.{printer_state}")
            else:  # printing, or resuming now that the printer is fixed
                update = JobUpdate(job, "printing")
            if update.state + update.code != last:
                last = update.state + update.code
                yield update
            await asyncio.sleep(self.poll_seconds)
        yield JobUpdate(job, "failed", "打印超时，请联系工作人员", "printer.timeout")

