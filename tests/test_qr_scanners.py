"""QR scanner modules (serial and keyboard-wedge) against their development doubles, through the agent."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp

from device_agent.dev.scanners import EventFeeder, PtySerialScanner
from device_agent.drivers.scanner import KeyboardScanner, SerialScanner, make_scanners
from tests.support.device_agent import kiosk_agent, start_agent, wait_for
from yiwang.runtime import Services

__all__ = ["kiosk_agent"]
CODE = "YWD1:ABCDEFGHIJKLMNOPQRSTUVWXYZ"


async def test_a_serial_module_reads_codes_and_survives_unplug_and_replug(tmp_path: Path) -> None:
    module = PtySerialScanner(tmp_path / "ttyACM0")
    scanner = SerialScanner(str(module.path), retry_seconds=0.05)
    try:
        task = asyncio.create_task(scanner.next_code())
        await wait_for(lambda: scanner.status() == "ready", what="scanner open")
        module.scan(CODE)
        assert await asyncio.wait_for(task, 5) == CODE
        module.scan("中文内容：营业执照", ending=b"\r")  # UTF-8 payload, CR only
        assert await asyncio.wait_for(scanner.next_code(), 5) == "中文内容：营业执照"
        task = asyncio.create_task(scanner.next_code())
        module.unplug()
        await wait_for(lambda: scanner.status() == "offline", what="unplug noticed")
        module.plug()
        await wait_for(lambda: scanner.status() == "ready", what="replug noticed")
        module.scan("after-replug")
        assert await asyncio.wait_for(task, 5) == "after-replug"
    finally:
        scanner.close()
        module.close()


async def test_a_keyboard_wedge_module_types_codes_with_shift_and_survives_replug(tmp_path: Path) -> None:
    feeder = EventFeeder(tmp_path / "event-kbd")
    scanner = KeyboardScanner(str(feeder.path), retry_seconds=0.05)
    try:
        text = "https://yiwang.example/v?c=Ab12_~!@#$%^&*()+{}|:\"<>?"
        feeder.scan(text)
        assert await asyncio.wait_for(scanner.next_code(), 5) == text
        feeder.scan("SECOND")
        feeder.scan("third")
        assert [await asyncio.wait_for(scanner.next_code(), 5) for _ in range(2)] == ["SECOND", "third"]
        task = asyncio.create_task(scanner.next_code())
        feeder.unplug()
        await wait_for(lambda: scanner.status() == "offline", what="unplug noticed")
        feeder.plug()
        await wait_for(lambda: scanner.status() == "ready", what="replug noticed")
        feeder.scan(CODE)
        assert await asyncio.wait_for(task, 5) == CODE
    finally:
        scanner.close()
        feeder.close()


def test_scanner_setting_names_serial_and_keyboard_modules() -> None:
    serial, keyboard = make_scanners("serial:/dev/ttyACM0@115200, keyboard:/dev/input/by-id/x-event-kbd")
    assert isinstance(serial, SerialScanner) and serial.baudrate == 115200
    assert isinstance(keyboard, KeyboardScanner) and keyboard.path == "/dev/input/by-id/x-event-kbd"


async def test_codes_from_both_modules_reach_the_kiosk_page(services: Services, server: str, tmp_path: Path) -> None:
    from yiwang.seed import load_demo_data

    await load_demo_data(services)
    module, feeder = PtySerialScanner(tmp_path / "ttyACM0"), EventFeeder(tmp_path / "event-kbd")
    scanners = [SerialScanner(str(module.path), retry_seconds=0.05),
                KeyboardScanner(str(feeder.path), retry_seconds=0.05)]
    running = await start_agent(services, server, tmp_path / "agent", scanners=scanners)
    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(running.url + "/agent/events") as ws:
            assert json.loads((await ws.receive()).data)["type"] == "status"
            await wait_for(lambda: running.agent.peripherals().get("scanner") == "ready", what="scanners ready")
            module.scan("from-serial")
            feeder.scan("from-keyboard")
            seen = set()
            while len(seen) < 2:
                event = json.loads((await asyncio.wait_for(ws.receive(), 5)).data)
                if event["type"] == "qr":
                    seen.add((event["text"], event["source"]))
            assert seen == {("from-serial", "scanner"), ("from-keyboard", "scanner")}
            module.unplug()
            await wait_for(lambda: running.agent.peripherals()["scanner"] == "offline", what="status offline")
    finally:
        await running.runner.cleanup()
        module.close()
        feeder.close()

