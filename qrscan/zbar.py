"""zbar through pyzbar's ctypes wrapper: QR only, binary mode, cheapest pass first.

* only QR symbols are enabled (no assertion spam from other decoders);
* zbar's binary mode (``ZBAR_CFG_BINARY`` = 4, zbar ≥ 0.23.1) returns the raw
  bytes, decoded as UTF-8 (then GB 18030) by :func:`qrscan.text.repair_text`;
* a cheap first pass on the grey frame, then contrast stretch, downscale,
  upscale and thresholds only when the first pass finds nothing.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator

from PIL import Image, ImageFilter, ImageOps
from pyzbar import wrapper as zw
from pyzbar.pyzbar import ZBarSymbol

from qrscan.text import Decoded, repair_text

ZBAR_CFG_BINARY = 4
FOURCC_Y800 = 808466521  # "Y800": 8-bit grey


def scan(gray: Image.Image) -> list[Decoded]:
    """One zbar pass over an 8-bit grey image."""
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


def scaled(gray: Image.Image, factor: float) -> Image.Image:
    size = (max(1, int(gray.width * factor)), max(1, int(gray.height * factor)))
    return gray.resize(size, Image.Resampling.BOX if factor < 1 else Image.Resampling.BICUBIC)


def attempts(gray: Image.Image) -> Iterator[Image.Image]:
    """Cheapest first. Half size (box-averaged) first: camera noise averages out
    and zbar runs 5× faster; modules of a QR that fills a phone photo stay ≥ 3 px."""
    if min(gray.size) >= 480:
        yield scaled(gray, 0.5)
    yield gray
    stretched = ImageOps.autocontrast(gray, cutoff=1)
    yield stretched
    if max(gray.size) < 900:
        yield scaled(stretched, 2.0)
    yield ImageOps.equalize(gray)
    smooth = stretched.filter(ImageFilter.MedianFilter(3))
    yield smooth
    for threshold in (96, 128, 160):
        yield smooth.point(lambda v, t=threshold: 255 if v > t else 0)


def decode(gray: Image.Image, max_attempts: int | None = None) -> list[Decoded]:
    """All QR codes zbar finds, trying harder only when needed (at most ``max_attempts`` passes)."""
    for index, attempt in enumerate(attempts(gray)):
        if max_attempts is not None and index >= max_attempts:
            break
        found = scan(attempt)
        if found:
            return found
    return []
