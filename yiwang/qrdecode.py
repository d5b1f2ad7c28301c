"""QR decoding from camera frames and uploaded photos (pyzbar / zbar).

What people really produce: a phone screen photographed at an angle, low
light, a creased print-out, Chinese text payloads. So:

* only QR symbols are enabled (no assertion spam from other decoders);
* zbar's binary mode (``ZBAR_CFG_BINARY`` = 4, zbar ≥ 0.23.1) returns the raw
  bytes, decoded here as UTF-8 (then GB 18030); when zbar lacks binary mode
  and returns UTF-8 misread as Shift-JIS/Latin-1, :func:`repair_text` undoes it;
* a cheap first pass on the grey frame, then contrast stretch, downscale,
  upscale and thresholds only when the first pass finds nothing.

Everything here blocks: call :func:`decode_upload` (offloaded) from async code.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageFilter, ImageOps
from pyzbar import wrapper as zw
from pyzbar.pyzbar import ZBarSymbol

from yiwang.errors import TooLarge
from yiwang.uploads import open_image

if TYPE_CHECKING:
    from yiwang.runtime import Services

ZBAR_CFG_BINARY = 4
MAX_UPLOAD_BYTES = 12 * 1024 * 1024
MAX_PIXELS = 16_000_000  # a phone photo of a QR code; a bomb is refused before decoding
MAX_SIDE = 1600  # bigger photos are scaled down first: zbar needs ~3 px per module, not 12
FOURCC_Y800 = 808466521  # "Y800": 8-bit grey


@dataclass(frozen=True)
class Decoded:
    text: str
    raw: bytes
    polygon: tuple[tuple[int, int], ...]


def repair_text(raw: bytes) -> str:
    """Raw QR bytes → text: UTF-8, then GB 18030, else Latin-1 (never fails)."""
    for encoding in ("utf-8", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")


def repair_misread(text: str) -> str:
    """Undo UTF-8 read as Shift-JIS or Latin-1 (what zbar does without binary mode)."""
    for wrong in ("shift_jis", "latin-1", "gb18030"):
        try:
            fixed = text.encode(wrong).decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            continue
        if fixed != text:
            return fixed
    return text


def _scan(gray: Image.Image) -> list[Decoded]:
    width, height = gray.size
    pixels = gray.tobytes()
    scanner = zw.zbar_image_scanner_create()
    try:
        for symbol in ZBarSymbol:
            zw.zbar_image_scanner_set_config(scanner, symbol, zw.ZBarConfig.CFG_ENABLE, 0)
        zw.zbar_image_scanner_set_config(scanner, ZBarSymbol.QRCODE, zw.ZBarConfig.CFG_ENABLE, 1)
        zw.zbar_image_scanner_set_config(scanner, ZBarSymbol.QRCODE, ZBAR_CFG_BINARY, 1)
        image = zw.zbar_image_create()
        try:
            zw.zbar_image_set_format(image, FOURCC_Y800)
            zw.zbar_image_set_size(image, width, height)
            zw.zbar_image_set_data(image, ctypes.cast(ctypes.c_char_p(pixels), ctypes.c_void_p), len(pixels), None)
            if zw.zbar_scan_image(scanner, image) <= 0:
                return []
            found: list[Decoded] = []
            symbol_ptr = zw.zbar_image_first_symbol(image)
            while symbol_ptr:
                length = zw.zbar_symbol_get_data_length(symbol_ptr)
                raw = ctypes.string_at(zw.zbar_symbol_get_data(symbol_ptr), length)
                points = tuple(
                    (zw.zbar_symbol_get_loc_x(symbol_ptr, i), zw.zbar_symbol_get_loc_y(symbol_ptr, i))
                    for i in range(zw.zbar_symbol_get_loc_size(symbol_ptr))
                )
                found.append(Decoded(repair_text(raw), raw, points))
                symbol_ptr = zw.zbar_symbol_next(symbol_ptr)
            return found
        finally:
            zw.zbar_image_destroy(image)
    finally:
        zw.zbar_image_scanner_destroy(scanner)


def _scaled(gray: Image.Image, factor: float) -> Image.Image:
    size = (max(1, int(gray.width * factor)), max(1, int(gray.height * factor)))
    return gray.resize(size, Image.Resampling.BOX if factor < 1 else Image.Resampling.BICUBIC)


def _attempts(gray: Image.Image) -> Any:
    """Cheapest first. Half size (box-averaged) first: camera noise averages out
    and zbar runs 5× faster; modules of a QR that fills a phone photo stay ≥ 3 px."""
    if min(gray.size) >= 480:
        yield _scaled(gray, 0.5)
    yield gray
    stretched = ImageOps.autocontrast(gray, cutoff=1)
    yield stretched
    if max(gray.size) < 900:
        yield _scaled(stretched, 2.0)
    yield ImageOps.equalize(gray)
    smooth = stretched.filter(ImageFilter.MedianFilter(3))
    yield smooth
    for threshold in (96, 128, 160):
        yield smooth.point(lambda v, t=threshold: 255 if v > t else 0)


def decode_image(image: Image.Image) -> list[Decoded]:
    """All QR codes found in the image, trying harder only when needed."""
    gray = image.convert("L") if image.mode != "L" else image
    longest = max(gray.size)
    if longest > MAX_SIDE:
        gray = _scaled(gray, MAX_SIDE / longest)
    for attempt in _attempts(gray):
        found = _scan(attempt)
        if found:
            return found
    return []


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
    """Decode an uploaded photo in a worker process (its memory goes back when the worker ends)."""
    return await services.offload.run_isolated(decode_bytes, data)


async def decode_frame(services: Services, frame: Image.Image) -> list[str]:
    return await services.offload.run(decode_texts, frame)
