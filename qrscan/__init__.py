"""QR decoding shared by the server (``yiwang.qrdecode``) and the device agent.

Two engines, each behind one function ``decode(gray) -> list[Decoded]``:

* :mod:`qrscan.zxing` (zxing-cpp): fast, good with perspective and glare;
* :mod:`qrscan.zbar` (pyzbar / zbar in binary mode, with a ladder of cheap
  pre-processing passes): good with blur and low contrast.

:func:`decode_image` tries zxing-cpp first and falls back to zbar, so it finds at
least what the better of the two finds alone (measured by ``python -m bench.qr``).
When zxing-cpp is not installed it is zbar alone. This package imports nothing of
the server (no ``yiwang``), so a kiosk installs it with the agent.

Everything here blocks: call it from a thread or a process pool.
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image

from qrscan import zbar, zxing
from qrscan.text import Decoded, repair_misread, repair_text

__all__ = ["ENGINES", "MAX_SIDE", "Decoded", "decode_image", "decode_texts", "repair_misread", "repair_text"]

MAX_SIDE = 1600  # bigger photos are scaled down first: decoders need ~3 px per module, not 12
ENGINES = ("zxing", "zbar")


def grey(image: Image.Image) -> Image.Image:
    """8-bit grey, scaled down to MAX_SIDE on the longest side."""
    gray = image.convert("L") if image.mode != "L" else image
    longest = max(gray.size)
    if longest > MAX_SIDE:
        gray = zbar.scaled(gray, MAX_SIDE / longest)
    return gray


def decode_image(image: Image.Image, engines: Sequence[str] = ENGINES) -> list[Decoded]:
    """All QR codes found by the first engine (in order) that finds any."""
    gray = grey(image)
    for engine in engines:
        if engine == "zxing" and zxing.available():
            found = zxing.decode(gray)
        elif engine == "zbar":
            found = zbar.decode(gray)
        else:
            continue
        if found:
            return found
    return []


def decode_texts(image: Image.Image, engines: Sequence[str] = ENGINES) -> list[str]:
    return [d.text for d in decode_image(image, engines)]
