"""What a decoder found, and raw QR bytes turned into text."""

from __future__ import annotations

from dataclasses import dataclass


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
