"""The kiosk camera: settings, and decoding camera-like frames with zxing-cpp first and zbar as the fallback."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

import qrscan
from device_agent.config import CameraSettings, load_agent_config
from device_agent.drivers.camera import FolderCamera
from qrscan import zbar, zxing

CAMERA = Path(__file__).resolve().parent / "fixtures" / "camera"
EXPECTED: dict[str, str] = json.loads((CAMERA / "expected.json").read_text(encoding="utf-8"))


def decoded_by(engines: tuple[str, ...]) -> set[str]:
    return {name for name, text in EXPECTED.items()
            if qrscan.decode_texts(Image.open(CAMERA / name), engines) == [text]}


def test_the_combination_decodes_at_least_as_many_frames_as_the_better_engine_alone() -> None:
    assert zxing.available()
    assert len(EXPECTED) >= 40
    assert all(Image.open(CAMERA / name).size == (1280, 720) for name in EXPECTED)
    zbar_alone, zxing_alone, combined = decoded_by(("zbar",)), decoded_by(("zxing",)), decoded_by(("zxing", "zbar"))
    assert len(combined) >= max(len(zbar_alone), len(zxing_alone))
    assert combined >= zbar_alone | zxing_alone  # what either finds, the combination finds
    assert zbar_alone - zxing_alone and zxing_alone - zbar_alone  # the set has frames only one engine reads
    assert len(combined) >= 0.9 * len(EXPECTED)


def test_a_frame_without_a_code_gives_nothing() -> None:
    assert qrscan.decode_texts(Image.new("L", (1280, 720), 120)) == []
    assert zbar.decode(Image.new("L", (64, 64), 255)) == []


def test_camera_settings_become_capture_properties() -> None:
    config = load_agent_config({"AGENT_CAMERA_RESOLUTION": "1920x1080", "AGENT_CAMERA_FOCUS": "40",
                                "AGENT_CAMERA_EXPOSURE": "150"})
    props = dict(config.camera_settings().capture_properties())
    assert (props["CAP_PROP_FRAME_WIDTH"], props["CAP_PROP_FRAME_HEIGHT"]) == (1920, 1080)
    assert (props["CAP_PROP_AUTOFOCUS"], props["CAP_PROP_FOCUS"]) == (0, 40.0)
    assert (props["CAP_PROP_AUTO_EXPOSURE"], props["CAP_PROP_EXPOSURE"]) == (1, 150.0)
    assert dict(CameraSettings().capture_properties())["CAP_PROP_AUTOFOCUS"] == 1
    with pytest.raises(ValueError, match="AGENT_CAMERA_FOCUS"):
        load_agent_config({"AGENT_CAMERA_FOCUS": "near"})


async def test_the_development_camera_decodes_a_photographed_screen_while_the_loop_runs(tmp_path: Path) -> None:
    camera = FolderCamera(tmp_path / "camera", poll_seconds=0.05)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    name = next(n for n in EXPECTED if "crease" in n and n in decoded_by(("zbar",)))  # the slow zbar ladder
    shutil.copy(CAMERA / name, tmp_path / "camera" / name)
    task = asyncio.create_task(ticker())
    try:
        before = ticks
        assert await asyncio.wait_for(camera.next_code(), 10) == EXPECTED[name]
        assert ticks - before > 10  # the loop kept running while the frame was decoded in a thread
    finally:
        task.cancel()
