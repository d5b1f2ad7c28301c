"""Printers: PDFs to a folder (development) or to CUPS with ``lp`` (hardware)."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

STATES = ("ready", "paper_low", "jammed", "offline")


class PrinterError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(code)
        self.code = code
        self.message = message


class FolderPrinter:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def status(self) -> str:
        flag = self.folder / "STATUS"
        if flag.exists():
            state = flag.read_text().strip()
            return state if state in STATES else "ready"
        return "ready"

    async def print_pdf(self, data: bytes, label: str) -> str:
        state = self.status()
        if state in ("jammed", "offline"):
            message = "打印机卡纸，请联系工作人员" if state == "jammed" else "打印机未连接"
            raise PrinterError(f"printer.{state}", message)
        job = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        safe_label = "".join(c for c in label if c.isalnum() or c in "-_")[:20] or "job"
        path = self.folder / f"{job}-{safe_label}.pdf"
        await asyncio.to_thread(path.write_bytes, data)
        return job


class CupsPrinter:
    def __init__(self, destination: str = "") -> None:
        self.destination = destination
        self._state = "ready"

    def status(self) -> str:
        return self._state

    async def refresh(self) -> None:
        args = ["lpstat", "-p", *([self.destination] if self.destination else [])]
        proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.DEVNULL)
        out, _ = await proc.communicate()
        text = out.decode(errors="replace").lower()
        self._state = ("jammed" if "jam" in text else "paper_low" if "low" in text
                       else "offline" if "disabled" in text or proc.returncode else "ready")

    async def print_pdf(self, data: bytes, label: str) -> str:
        args = ["lp", "-t", label[:40] or "yiwang", *(["-d", self.destination] if self.destination else []), "-"]
        proc = await asyncio.create_subprocess_exec(*args, stdin=asyncio.subprocess.PIPE,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, _err = await proc.communicate(data)
        if proc.returncode != 0:
            raise PrinterError("printer.failed", "打印失败，请联系工作人员")
        return out.decode(errors="replace").strip() or uuid.uuid4().hex
