"""Cameras: frames → QR text with the shared qrscan package (zxing-cpp, then zbar), off the loop."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from PIL import Image

from device_agent.config import CameraSettings
from qrscan import decode_texts

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def _decode_file(path: Path) -> list[str]:
    with Image.open(path) as image:
        image.load()
        return decode_texts(image)


class FolderCamera:
    """Development camera: every image dropped into the folder is one 'frame'."""

    def __init__(self, folder: Path, poll_seconds: float = 0.3) -> None:
        self.folder = folder
        self.poll_seconds = poll_seconds
        folder.mkdir(parents=True, exist_ok=True)

    def status(self) -> str:
        return "ready" if self.folder.is_dir() else "offline"

    async def next_code(self) -> str:
        while True:
            frames = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            for frame in frames:
                try:
                    texts = await asyncio.to_thread(_decode_file, frame)
                except Exception:
                    texts = []
                with contextlib.suppress(FileNotFoundError):
                    frame.unlink()
                if texts:
                    return texts[0]
            await asyncio.sleep(self.poll_seconds)


class OpenCVCamera:
    """Hardware camera through OpenCV (``opencv-python-headless`` on the kiosk), V4L2 backend.

    Capture and decoding run in a worker thread; a camera that stops giving frames
    (unplugged) is released, ``offline``, and reopened."""

    def __init__(self, index: int = 0, settings: CameraSettings | None = None) -> None:
        self.index = index
        self.settings = settings or CameraSettings()
        self._capture: Any = None
        self.applied: dict[str, float] = {}

    def status(self) -> str:
        return "ready" if self._capture is not None else "offline"

    def _open(self) -> Any:
        import cv2  # installed on kiosks only

        capture = cv2.VideoCapture(self.index, cv2.CAP_V4L2)
        if not capture.isOpened():
            return None
        for name, value in self.settings.capture_properties():
            prop = getattr(cv2, name)
            capture.set(prop, value)
            self.applied[name] = float(capture.get(prop))  # what the camera accepted
        return capture

    def _grab(self) -> list[str] | None:
        import cv2

        if self._capture is None:
            self._capture = self._open()
            if self._capture is None:
                return None
        ok, frame = self._capture.read()
        if not ok:
            self._capture.release()
            self._capture = None
            return None
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        return decode_texts(Image.fromarray(gray))

    async def next_code(self) -> str:
        while True:
            texts = await asyncio.to_thread(self._grab)
            if texts:
                return texts[0]
            await asyncio.sleep(0.05 if texts is not None else 1.0)
