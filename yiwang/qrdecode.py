"""QR decoding from camera frames and uploaded photos: the server's entry point.

The decoding itself lives in the shared top-level package :mod:`qrscan` (also used
by the device agent, which imports nothing of ``yiwang``). The server keeps zbar
alone here (its behaviour before the split); this module adds what only the server
needs: uploads through the safe image decoder and the offload pool.

Everything except the ``async`` functions blocks: call :func:`decode_upload`
(offloaded) from async code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PIL import Image

from qrscan import MAX_SIDE, grey
from qrscan import zbar as _zbar
from qrscan.text import Decoded, repair_misread, repair_text
from yiwang.errors import TooLarge
from yiwang.uploads import open_image

if TYPE_CHECKING:
    from yiwang.runtime import Services

__all__ = ["MAX_SIDE", "MAX_UPLOAD_BYTES", "Decoded", "decode_bytes", "decode_frame", "decode_image",
           "decode_texts", "decode_upload", "open_upload", "repair_misread", "repair_text"]

MAX_UPLOAD_BYTES = 12 * 1024 * 1024
MAX_PIXELS = 16_000_000  # a phone photo of a QR code; a bomb is refused before decoding


def decode_image(image: Image.Image) -> list[Decoded]:
    """All QR codes found in the image, trying harder only when needed."""
    return _zbar.decode(grey(image))


def decode_texts(image: Image.Image) -> list[str]:
    return [d.text for d in decode_image(image)]


def open_upload(data: bytes) -> Image.Image:
    """An uploaded photo as an upright image, or a clear 4xx (the uploads module's safe decoder)."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise TooLarge("qr.image_too_large", "图片过大（最大 12 MB）")
    return open_image(data, max_pixels=MAX_PIXELS)


def decode_bytes(data: bytes) -> list[str]:
    return decode_texts(open_upload(data))


async def decode_upload(services: Services, data: bytes) -> list[str]:
    """Decode an uploaded photo off the event loop."""
    return await services.offload.run_isolated(decode_bytes, data)


async def decode_frame(services: Services, frame: Image.Image) -> list[str]:
    return await services.offload.run(decode_texts, frame)
