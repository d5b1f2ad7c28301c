"""The kiosk speaker: espeak-ng read-aloud and hall calls, measured as the WAV files the development driver writes."""

from __future__ import annotations

import array
import asyncio
import json
import shutil
import wave
from pathlib import Path

import aiohttp
import pytest

from device_agent.drivers.speaker import EspeakSpeaker, call_text, wav_duration
from tests.support.device_agent import RunningAgent, kiosk_agent, wait_for
from yiwang import devices
from yiwang.runtime import Services

__all__ = ["kiosk_agent"]
pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="no espeak-ng (scripts/system-deps)")


def loudness(path: Path) -> int:
    """Peak absolute sample of a 16-bit mono WAV."""
    with wave.open(str(path), "rb") as wav:
        assert wav.getsampwidth() == 2
        samples = array.array("h", wav.readframes(wav.getnframes()))
    return max(abs(s) for s in samples)


async def test_mandarin_and_cantonese_are_spoken_as_audible_audio_of_plausible_length(tmp_path: Path) -> None:
    speaker = EspeakSpeaker(wav_dir=tmp_path, rate=160, playback_speed=10.0)
    await speaker.start()
    try:
        short, long = speaker.say("您好"), speaker.say("请携带身份证原件和户口簿，到三号窗口办理出生登记。")
        cantonese = speaker.say(call_text("A012", "3"), "yue")
        await wait_for(lambda: cantonese.state == "done", timeout=30, what="all spoken")
        assert (short.voice, cantonese.voice) == ("cmn", "yue" if "yue" in speaker.voices else "cmn")
        for utterance in (short, long, cantonese):
            assert utterance.wav is not None and loudness(utterance.wav) > 3000  # not silence
        assert 0.2 < wav_duration(short.wav) < 2.5  # type: ignore[arg-type]
        assert wav_duration(long.wav) > 2 * wav_duration(short.wav)  # type: ignore[arg-type]
    finally:
        await speaker.close()


async def test_interrupting_stops_the_current_utterance_and_drops_the_queue(tmp_path: Path) -> None:
    speaker = EspeakSpeaker(wav_dir=tmp_path)
    await speaker.start()
    try:
        first = speaker.say("第一段很长的办事指南朗读内容，" * 5)
        queued = [speaker.say(f"第{i}段") for i in range(2, 5)]
        await wait_for(lambda: first.wav is not None and first.wav.exists(), timeout=15, what="speaking")
        assert await speaker.interrupt() == 4
        await wait_for(lambda: first.state == "interrupted", what="stopped")
        assert all(u.state == "interrupted" and u.wav is None for u in queued)
        after = speaker.say("好的")
        await wait_for(lambda: after.state == "done", timeout=15, what="speaks again")
    finally:
        await speaker.close()


async def test_the_page_reads_aloud_and_a_hall_call_push_is_spoken(kiosk_agent: RunningAgent,
                                                                  services: Services) -> None:
    agent = kiosk_agent.agent
    agent.speaker.playback_speed = 10.0  # type: ignore[union-attr]
    async with aiohttp.ClientSession() as http:
        async with http.post(kiosk_agent.url + "/agent/speak", json={"text": "欢迎使用一网通办自助终端"}) as response:
            assert response.status == 202
        async with http.post(kiosk_agent.url + "/agent/speak", json={"text": "x"},
                             headers={"Origin": "http://evil.example"}) as response:
            assert response.status == 403
        async with http.post(kiosk_agent.url + "/agent/speak", json={"text": "x", "voice": "fr"}) as response:
            assert response.status == 400
        async with http.ws_connect(kiosk_agent.url + "/agent/events") as ws:
            await devices.push(services, {"scope": "hall", "hall": "gz-th-center"},
                               {"topic": "call", "number": "A012", "window": "3"})
            while (event := json.loads((await asyncio.wait_for(ws.receive(), 10)).data))["type"] != "call":
                pass
            assert (event["number"], event["window"]) == ("A012", "3")
    await wait_for(lambda: any(u.text == call_text("A012", "3") and u.state == "done" for u in agent.speaker.history),
                   timeout=30, what="the call spoken")
    spoken = sorted((kiosk_agent.state_dir / "spoken").glob("*.wav"))
    assert len(spoken) == 2 and all(loudness(p) > 3000 for p in spoken)
