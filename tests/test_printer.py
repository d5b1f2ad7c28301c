"""The kiosk printer over IPP, against a development IPP printer on loopback driven into each state."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from hypothesis import given
from hypothesis import strategies as st

from device_agent.dev.ipp_printer import IppPrinterDouble
from device_agent.drivers import ipp
from device_agent.drivers.printer import FolderPrinter, IppPrinter, JobUpdate, PrinterError
from tests.support.device_agent import start_agent, wait_for
from yiwang import devices
from yiwang.runtime import Services

PDF = b"%PDF-1.4\n1 0 obj << /Type /Page >> endobj\n%%EOF"


@pytest_asyncio.fixture
async def ipp_printer() -> AsyncIterator[IppPrinterDouble]:
    double = IppPrinterDouble(print_seconds=0.3)
    await double.start()
    yield double
    await double.stop()


@pytest_asyncio.fixture
async def printer(ipp_printer: IppPrinterDouble) -> AsyncIterator[IppPrinter]:
    driver = IppPrinter(ipp_printer.url + "/printers/kiosk", poll_seconds=0.05)
    yield driver
    await driver.close()


async def updates(driver: IppPrinter, job: str) -> list[JobUpdate]:
    return [u async for u in driver.track(job)]


@given(st.lists(st.text(max_size=30), min_size=1, max_size=4), st.integers(-(2**31), 2**31 - 1), st.binary(max_size=64))
def test_ipp_messages_survive_encoding(keywords: list[str], number: int, data: bytes) -> None:
    message = ipp.request(ipp.PRINT_JOB, 7, "ipp://127.0.0.1/printers/kiosk",
                          ipp.Attribute("requested-attributes", ipp.KEYWORD, keywords),
                          ipp.Attribute("job-id", ipp.INTEGER, [number]), data=data)
    decoded = ipp.decode(ipp.encode(message))
    assert (decoded.code, decoded.request_id, decoded.data) == (ipp.PRINT_JOB, 7, data)
    assert decoded.group(ipp.OPERATION)["requested-attributes"] == keywords
    assert decoded.first(ipp.OPERATION, "job-id") == number


async def test_a_job_is_submitted_with_an_id_and_tracked_to_completion(ipp_printer: IppPrinterDouble,
                                                                      printer: IppPrinter) -> None:
    job = await printer.print_pdf(PDF, "户籍证明")
    assert job == "101" and ipp_printer.jobs[101].data == PDF and ipp_printer.jobs[101].name == "户籍证明"
    seen = await asyncio.wait_for(updates(printer, job), 5)
    assert [u.state for u in seen] == ["printing", "completed"]
    assert printer.status() == "ready" and printer.alerts() == []


@pytest.mark.parametrize(("reason", "state", "message", "refused"), [
    ("media-empty-error", "paper_out", "打印机缺纸，请联系工作人员添加纸张", True),
    ("media-jam-error", "jammed", "打印机卡纸，请联系工作人员", True),
    ("door-open-error", "door_open", "打印机舱门未关闭，请联系工作人员", True),
    ("media-low-warning", "paper_low", "打印纸即将用完，请联系工作人员添加", False),
    ("toner-low-warning", "toner_low", "打印机墨粉不足，打印可能偏淡", False),
])
async def test_printer_state_reasons_become_the_kiosks_message_and_a_fleet_alert(
    ipp_printer: IppPrinterDouble, printer: IppPrinter, reason: str, state: str, message: str, refused: bool
) -> None:
    ipp_printer.set_reasons(reason)
    assert await printer.refresh() == state
    assert printer.alerts() == [{"code": f"printer.{state}", "severity": "error" if refused else "warning",
                                 "message": message}]
    if refused:
        with pytest.raises(PrinterError) as raised:
            await printer.print_pdf(PDF, "x")
        assert (raised.value.code, raised.value.message) == (f"printer.{state}", message)
        assert not ipp_printer.jobs
    else:
        assert await printer.print_pdf(PDF, "x")


async def test_a_jam_mid_job_stops_it_with_the_reason_and_it_completes_once_cleared(
    ipp_printer: IppPrinterDouble, printer: IppPrinter
) -> None:
    ipp_printer.print_seconds = 1.0
    job = await printer.print_pdf(PDF, "证照打印")
    seen: list[JobUpdate] = []

    async def follow() -> None:
        async for update in printer.track(job):
            seen.append(update)

    task = asyncio.create_task(follow())
    await wait_for(lambda: seen and seen[-1].state == "printing", what="printing")
    ipp_printer.set_reasons("media-jam-error")
    await wait_for(lambda: seen[-1].state == "stopped", what="the jam reported")
    assert (seen[-1].code, seen[-1].message) == ("printer.jammed", "打印机卡纸，请联系工作人员")
    assert printer.status() == "jammed"
    ipp_printer.set_reasons()
    await asyncio.wait_for(task, 5)
    assert [u.state for u in seen] == ["printing", "stopped", "printing", "completed"]


async def test_an_aborted_job_is_a_failure_and_an_unreachable_cups_is_offline(
    ipp_printer: IppPrinterDouble, printer: IppPrinter
) -> None:
    ipp_printer.print_seconds = 5.0
    job = await printer.print_pdf(PDF, "x")
    ipp_printer.abort(int(job))
    [*_, last] = await asyncio.wait_for(updates(printer, job), 5)
    assert (last.state, last.code) == ("failed", "printer.failed")
    await ipp_printer.stop()
    assert await printer.refresh() == "offline"
    with pytest.raises(PrinterError) as raised:
        await printer.print_pdf(PDF, "x")
    assert raised.value.code == "printer.offline"


async def test_the_page_hears_the_jam_and_the_console_gets_the_alert(
    services: Services, server: str, tmp_path: Path, ipp_printer: IppPrinterDouble
) -> None:
    from device_agent.drivers.camera import FolderCamera
    from device_agent.drivers.id_reader import SimulatedReader
    from yiwang.seed import load_demo_data

    await load_demo_data(services)
    driver = IppPrinter(ipp_printer.url + "/printers/kiosk", poll_seconds=0.05)
    drivers = (FolderCamera(tmp_path / "camera"), driver, SimulatedReader(tmp_path / "card.json"))
    running = await start_agent(services, server, tmp_path / "agent", drivers=drivers)
    ipp_printer.print_seconds = 1.0
    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(running.url + "/agent/events") as ws:
            async with http.post(running.url + "/agent/print", data=PDF,
                                 headers={"Content-Type": "application/pdf"}) as response:
                job = (await response.json())["job"]
            ipp_printer.set_reasons("media-jam-error")
            while True:
                event = json.loads((await asyncio.wait_for(ws.receive(), 5)).data)
                if event["type"] == "print_job" and event["state"] == "stopped":
                    break
            assert (event["job"], event["message"]) == (job, "打印机卡纸，请联系工作人员")
        device_id = running.agent.credential.device_id  # type: ignore[union-attr]

        async def alert_recorded() -> bool:
            await devices.hub_of(services).flush()
            doc = await devices.get_device(services, device_id)
            return doc["peripherals"].get("printer") == "jammed" and [a["code"] for a in doc["alerts"]] == [
                "printer.jammed"]

        await wait_for(alert_recorded, what="the fleet alert")
        from console.fleet import row

        shown = row(await devices.get_device(services, device_id), {})  # the console's fleet table row
        assert "打印机卡纸，请联系工作人员" in shown["alerts"] and "printer:jammed" in shown["faults"]
    finally:
        await running.runner.cleanup()


async def test_the_development_folder_printer_completes_at_once(tmp_path: Path) -> None:
    printer = FolderPrinter(tmp_path)
    job = await printer.print_pdf(PDF, "x")
    assert [u.state async for u in printer.track(job)] == ["completed"]
    (tmp_path / "STATUS").write_text("door_open")
    assert printer.alerts()[0]["code"] == "printer.door_open"
    with pytest.raises(PrinterError):
        await printer.print_pdf(PDF, "x")
