"""The kiosk speaker: espeak-ng for read-aloud and hall-display queue calls.

Mandarin (``cmn``) always; Cantonese (``yue``) where the installed espeak-ng has the
voice (Debian's espeak-ng-data does), otherwise Mandarin. One utterance at a time from a
queue, in a subprocess (never on the event loop); :meth:`EspeakSpeaker.interrupt` stops
the current one and drops the queue (the resident tapped 停止朗读, or left).

Hardware: espeak-ng plays on the default ALSA/PulseAudio device. Development: each
utterance is written as a WAV file into a folder and "played" for its duration (so
queueing and interruption behave as on a kiosk), which tests measure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import wave
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("device_agent.speaker")

MAX_TEXT = 500
VOICES = ("cmn", "yue")


@dataclass
class Utterance:
    text: str
    voice: str
    state: str = "queued"  # queued | speaking | done | interrupted | failed
    wav: Path | None = None


def call_text(number: str, window: str) -> str:
    """What a hall display says for a queue call."""
    return f"请 {number} 号到 {window} 号窗口办理"


def installed_voices(binary: str = "espeak-ng") -> set[str]:
    """Languages the installed espeak-ng speaks (blocking: call once, from a thread)."""
    import subprocess

    try:
        out = subprocess.run([binary, "--voices"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return set()
    return {line.split()[1] for line in out.splitlines()[1:] if len(line.split()) > 1}


def wav_duration(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / float(wav.getframerate())


class EspeakSpeaker:
    def __init__(self, *, wav_dir: Path | None = None, voice: str = "cmn", rate: int = 160,
                 binary: str = "espeak-ng", playback_speed: float = 1.0) -> None:
        self.wav_dir = wav_dir
        self.playback_speed = playback_speed  # development: "play" the WAV this many times faster
        self.voice = voice
        self.rate = rate
        self.binary = binary
        self.voices: set[str] = set()
        self.history: list[Utterance] = []  # spoken or interrupted, oldest first (bounded)
        self._queue: asyncio.Queue[Utterance] = asyncio.Queue()
        self._current: Utterance | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._playing: asyncio.Task[None] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._count = 0
        if wav_dir is not None:
            wav_dir.mkdir(parents=True, exist_ok=True)

    def status(self) -> str:
        if shutil.which(self.binary) is None:
            return "offline"
        return "speaking" if self._current is not None else "ready"

    async def start(self) -> None:
        self.voices = await asyncio.to_thread(installed_voices, self.binary)
        self._worker = asyncio.create_task(self._run())

    async def close(self) -> None:
        await self.interrupt()
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    def resolve_voice(self, voice: str | None) -> str:
        wanted = voice or self.voice
        if wanted in self.voices or not self.voices:
            return wanted
        return "cmn"  # e.g. no Cantonese voice installed

    def say(self, text: str, voice: str | None = None) -> Utterance:
        """Queue an utterance (returns at once)."""
        utterance = Utterance(" ".join(text.split())[:MAX_TEXT], self.resolve_voice(voice))
        self._queue.put_nowait(utterance)
        return utterance

    async def interrupt(self) -> int:
        """Stop what is being said and drop the queue; returns how many were dropped or stopped."""
        dropped = 0
        while not self._queue.empty():
            self._record(self._queue.get_nowait(), "interrupted")
            dropped += 1
        if self._process is not None and self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.terminate()
            dropped += 1
        if self._playing is not None and not self._playing.done():
            self._playing.cancel()
            dropped += 1
        return dropped

    def _record(self, utterance: Utterance, state: str) -> None:
        utterance.state = state
        self.history = [*self.history[-49:], utterance]

    async def _run(self) -> None:
        while True:
            utterance = await self._queue.get()
            self._current = utterance
            utterance.state = "speaking"
            try:
                await self._speak(utterance)
            except asyncio.CancelledError:
                self._record(utterance, "interrupted")
                self._current = None
                if self._worker is not None and self._worker.cancelling():
                    raise
                continue
            except OSError:
                log.warning("espeak-ng failed", exc_info=True)
                self._record(utterance, "failed")
            else:
                if utterance.state == "speaking":
                    self._record(utterance, "done")
            self._current = None

    async def _speak(self, utterance: Utterance) -> None:
        args = [self.binary, "-v", utterance.voice, "-s", str(self.rate)]
        if self.wav_dir is not None:
            self._count += 1
            utterance.wav = self.wav_dir / f"{self._count:04d}-{utterance.voice}.wav"
            args += ["-w", str(utterance.wav)]
        self._process = await asyncio.create_subprocess_exec(*args, "--", utterance.text,
                                                             stdout=asyncio.subprocess.DEVNULL,
                                                             stderr=asyncio.subprocess.DEVNULL)
        code = await self._process.wait()
        self._process = None
        if code != 0:
            self._record(utterance, "interrupted" if code < 0 else "failed")
            return
        if utterance.wav is not None:  # development: "play" it for as long as it lasts
            self._playing = asyncio.create_task(asyncio.sleep(wav_duration(utterance.wav) / self.playback_speed))
            try:
                await self._playing
            except asyncio.CancelledError:
                if self._worker is not None and self._worker.cancelling():
                    raise
                self._record(utterance, "interrupted")
            finally:
                self._playing = None


class SilentSpeaker:
    """No speaker on this kiosk."""

    def __init__(self) -> None:
        self.voices: set[str] = set()
        self.history: list[Utterance] = []

    def status(self) -> str:
        return "absent"

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def say(self, text: str, voice: str | None = None) -> Utterance:
        return Utterance(text, voice or "cmn", "done")

    async def interrupt(self) -> int:
        return 0
