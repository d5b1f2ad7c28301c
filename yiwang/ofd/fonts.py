"""The embedded font of an OFD file: a subset of the installed CJK TrueType font
(``fonts-wqy-microhei``), built glyph by glyph with fontTools' FontBuilder.

fontTools' general subsetter takes ~400 ms on a CJK font (it walks the whole
cmap and glyf); copying the ~150 glyphs a card needs into a fresh font takes
~10 ms once the source font is loaded (once per process, ~0.8 s).
"""

from __future__ import annotations

import functools
import io
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fontTools.fontBuilder import FontBuilder
from fontTools.ttLib import TTFont, newTable

# TrueType outlines only: several OFD readers hand the embedded font to
# renderers that cannot read CFF (Noto CJK is CFF).
TRUETYPE_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
)
FAMILY = "WenQuanYi Micro Hei"
_LOCK = threading.Lock()


@dataclass
class SourceFont:
    font: Any
    cmap: dict[int, str]
    units_per_em: int

    advances: dict[str, float] = field(default_factory=dict)

    def advance(self, char: str) -> float:
        """Advance width of one character in em (memoised: fontTools' lookups are slow)."""
        found = self.advances.get(char)
        if found is None:
            name = self.cmap.get(ord(char))
            if name is None:
                found = 1.0 if ord(char) > 0x2E7F else 0.5
            else:
                found = float(self.font["hmtx"][name][0]) / self.units_per_em
            self.advances[char] = found
        return found

    def width(self, text: str, size: float) -> float:
        return sum(self.advance(c) for c in text) * size


@functools.cache
def source_font() -> SourceFont:
    for candidate in TRUETYPE_CANDIDATES:
        if Path(candidate).exists():
            font = TTFont(candidate, fontNumber=0, lazy=True)
            return SourceFont(font, dict(font.getBestCmap()), int(font["head"].unitsPerEm))
    raise RuntimeError("no TrueType CJK font found: install fonts-wqy-microhei")


def _is_composite(glyph: Any) -> bool:
    data = getattr(glyph, "data", None)
    if data is not None:
        return len(data) >= 2 and struct.unpack(">h", data[:2])[0] < 0
    return bool(glyph.isComposite())


def subset_font(text: str) -> bytes:
    """A TrueType font holding exactly the glyphs of ``text`` (plus .notdef).

    Simple glyphs are copied as their raw bytes (never decompiled: recompiling
    outlines is most of fontTools' cost); composites are expanded so their
    component references follow the new glyph order.
    """
    src = source_font()
    with _LOCK:  # glyph objects are shared with the source font
        glyf, hmtx = src.font["glyf"], src.font["hmtx"]
        order: list[str] = []
        glyphs: dict[str, Any] = {}
        metrics: dict[str, tuple[int, int]] = {}

        def add(name: str) -> None:
            if name in glyphs:
                return
            glyph = glyf.glyphs[name]
            if _is_composite(glyph):
                glyph = glyf[name]  # expands
            glyphs[name], metrics[name] = glyph, hmtx[name]
            order.append(name)
            if not hasattr(glyph, "data") and glyph.isComposite():
                for component in glyph.components:
                    add(component.glyphName)

        add(".notdef")
        cmap: dict[int, str] = {}
        for char in sorted(set(text)):
            name = src.cmap.get(ord(char))
            if name is not None:
                add(name)
                cmap[ord(char)] = name
        hhea, os2, head, maxp = src.font["hhea"], src.font["OS/2"], src.font["head"], src.font["maxp"]
        builder = FontBuilder(src.units_per_em, isTTF=True)
        builder.font.recalcBBoxes = False
        builder.setupGlyphOrder(order)
        builder.setupCharacterMap(cmap)
        # FontBuilder.setupGlyf, minus its outline check that would decompile every glyph
        builder.font["loca"] = newTable("loca")
        builder.font["glyf"] = newTable("glyf")
        builder.font["glyf"].glyphs = glyphs
        builder.font["glyf"].glyphOrder = order
        builder.setupHorizontalMetrics(metrics)
        builder.setupHorizontalHeader(ascent=hhea.ascent, descent=hhea.descent)
        builder.setupNameTable({"familyName": FAMILY, "styleName": "Regular", "psName": "WenQuanYiMicroHei"})
        builder.setupOS2(
            sTypoAscender=os2.sTypoAscender,
            sTypoDescender=os2.sTypoDescender,
            usWinAscent=os2.usWinAscent,
            usWinDescent=os2.usWinDescent,
        )
        builder.setupPost(keepGlyphNames=False)
        new_head, new_maxp = builder.font["head"], builder.font["maxp"]
        for attr in ("xMin", "yMin", "xMax", "yMax"):
            setattr(new_head, attr, getattr(head, attr))
        for attr, value in vars(maxp).items():
            if attr.startswith("max"):
                setattr(new_maxp, attr, value)
        out = io.BytesIO()
        builder.save(out)
    return out.getvalue()
