"""The CJK font that drawn cards, copies, seals and printed checklists use
(``fonts-wqy-microhei``, or Noto CJK where that is installed)."""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path

from PIL import ImageFont

FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
)


@functools.cache
def font_path() -> str:
    for candidate in FONT_CANDIDATES:
        if Path(candidate).exists():
            return candidate
    if shutil.which("fc-match"):
        found = subprocess.run(
            ["fc-match", "-f", "%{file}", "sans-serif:lang=zh-cn"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if found:
            return found
    raise RuntimeError("no CJK font found: install fonts-wqy-microhei or fonts-noto-cjk")


@functools.lru_cache(maxsize=32)  # a handful of sizes in the layouts
def font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(font_path(), size)
