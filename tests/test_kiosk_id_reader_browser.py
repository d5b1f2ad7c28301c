"""End to end: a GA 467 reader on a pty (the real serial protocol) feeds an ID card, the agent reads it,
and the kiosk page in Chromium, through the agent, shows the resident's session (masked).

Screenshot: tests/artifacts/kiosk-id-reader-session.png.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from device_agent.dev.id_reader import PtyIdReader
from device_agent.drivers.camera import FolderCamera
from device_agent.drivers.id_reader import Ga467Reader
from device_agent.drivers.printer import FolderPrinter
from tests.support.browser import LANDSCAPE, PageFactory, screenshot
from tests.support.device_agent import RunningAgent, start_agent
from yiwang import certificates
from yiwang.runtime import Services

pytestmark = pytest.mark.browser
CARD = {"name": "陈国华", "sex": "1", "nation": "01", "birth": "19520312", "address": "广东省广州市天河区天河路100号",
        "id_number": "440104195203122151", "authority": "广州市公安局天河分局", "valid_from": "20150101",
        "valid_until": "长期"}


@pytest_asyncio.fixture
async def reader_kiosk(services: Services, server: str, tmp_path: Path) -> AsyncIterator[tuple[RunningAgent,
                                                                                              PtyIdReader]]:
    from yiwang.seed import load_demo_data

    await load_demo_data(services)
    pty_reader = PtyIdReader()
    drivers = (FolderCamera(tmp_path / "camera", 0.05), FolderPrinter(tmp_path / "printed"),
               Ga467Reader(pty_reader.port, timeout=0.5, poll_seconds=0.05))
    running = await start_agent(services, server, tmp_path / "agent", drivers=drivers)
    yield running, pty_reader
    await running.runner.cleanup()
    drivers[2].close()
    pty_reader.close()


async def test_a_card_on_the_pty_reader_opens_the_residents_session_on_the_kiosk_page(
    reader_kiosk: tuple[RunningAgent, PtyIdReader], services: Services, page_factory: PageFactory
) -> None:
    running, pty_reader = reader_kiosk
    await certificates.load_demo_certificates(services)
    page = await page_factory(LANDSCAPE)
    await page.goto(running.url + "/kiosk/identify")
    await page.wait_for_function("document.body.getAttribute('data-on-device') === '1'")
    await page.wait_for_timeout(300)  # let the page's event socket connect
    assert running.agent.reader.status() == "ready"
    pty_reader.place(CARD)
    await page.wait_for_url("**/kiosk/certificates")
    text = await page.inner_text("body")
    assert "陈*" in text and "440104********2151" in text
    assert "陈国华" not in text and CARD["id_number"] not in text
    await screenshot(page, "kiosk-id-reader-session")
    assert pty_reader.commands[-3:] == [(0x20, 0x01), (0x20, 0x02), (0x30, 0x01)]  # find, select, read


async def test_a_card_pulled_out_mid_read_tells_the_resident_to_place_it_again(
    reader_kiosk: tuple[RunningAgent, PtyIdReader], page_factory: PageFactory
) -> None:
    running, pty_reader = reader_kiosk
    page = await page_factory(LANDSCAPE)
    await page.goto(running.url + "/kiosk/identify")
    await page.wait_for_function("document.body.getAttribute('data-on-device') === '1'")
    await page.wait_for_timeout(300)
    failed = page.evaluate("""() => new Promise(resolve => document.addEventListener('kiosk:identify_failed',
        e => resolve(e.detail.message), {once: true}))""")
    pty_reader.pull_during_read()
    pty_reader.place(CARD)
    assert "读卡失败" in await failed
    pty_reader.place(CARD)  # put back properly
    await page.wait_for_url("**/kiosk/certificates")
