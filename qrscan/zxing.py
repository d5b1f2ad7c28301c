"""zxing-cpp (optional: without it :func:`available` is False and the caller uses zbar)."""

from __future__ import annotations

from typing import Any

from PIL import Image

from qrscan.text import Decoded, repair_text

_zxing: Any
try:
    import zxingcpp as _zxing
except ImportError:  # pragma: no cover - exercised on installs without the wheel
    _zxing = None


def available() -> bool:
    return _zxing is not None


def _polygon(position: Any) -> tuple[tuple[int, int], ...]:
    return tuple((int(p.x), int(p.y)) for p in (position.top_left, position.top_right,
                                                 position.bottom_right, position.bottom_left))


def decode(gray: Image.Image) -> list[Decoded]:
    """All QR codes zxing-cpp finds in an 8-bit grey image (raw bytes → UTF-8, then GB 18030)."""
    if _zxing is None:
        return []
    results = _zxing.read_barcodes(gray, formats=_zxing.BarcodeFormat.QRCode)
    return [Decoded(repair_text(bytes(r.bytes)), bytes(r.bytes), _polygon(r.position)) for r in results if r.valid]
