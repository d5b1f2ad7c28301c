"""Certificate images: a card (PNG) and a print-ready A4 PDF with the card at
true size (ID-1, 85.6 × 54 mm at 300 dpi), the verification QR (segno) and a
diagonal annotation watermark ("仅供办理××使用 2026-11-26").

The ``render_*`` functions are blocking (Pillow): call them through
``services.offload.run`` — :func:`copy_image` does.
"""

from __future__ import annotations

import functools
import io
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import segno
from PIL import Image, ImageDraw, ImageFont

from yiwang import certificates, verification
from yiwang.errors import InvalidInput
from yiwang.timeutil import format_local

if TYPE_CHECKING:
    from yiwang.certificates import Redeemer
    from yiwang.runtime import Services

DPI = 300
CARD_MM = (85.6, 54.0)
CARD_PX = (round(CARD_MM[0] / 25.4 * DPI), round(CARD_MM[1] / 25.4 * DPI))  # 1011 × 638
A4_PX = (round(210 / 25.4 * DPI), round(297 / 25.4 * DPI))  # 2480 × 3508
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


@functools.cache
def font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(font_path(), size)


def _hex_colour(value: Any, default: str = "#1F5FA8") -> tuple[int, int, int]:
    text = value if isinstance(value, str) and len(value) == 7 and value.startswith("#") else default
    return int(text[1:3], 16), int(text[3:5], 16), int(text[5:7], 16)


@functools.lru_cache(maxsize=512)
def qr_image(text: str, size: int) -> Image.Image:
    """The QR (level M, quiet zone 2) as a 1-bit image of about ``size`` pixels.

    Cached: a certificate version's verification QR never changes, and segno's
    mask selection (pure Python, ~40 ms) is most of a card's render time.
    Callers must not modify the returned image.
    """
    qr = segno.make(text, error="m", micro=False, boost_error=False)
    matrix = qr.matrix
    border = 2
    modules = len(matrix) + 2 * border
    scale = max(1, size // modules)
    img = Image.new("1", (modules, modules), 1)
    pixels = img.load()
    assert pixels is not None
    for y, row in enumerate(matrix):
        for x, dark in enumerate(row):
            if dark & 1:
                pixels[x + border, y + border] = 0
    return img.resize((modules * scale, modules * scale), Image.Resampling.NEAREST)


def _fit(draw: ImageDraw.ImageDraw, text: str, size: int, width: int) -> tuple[str, ImageFont.FreeTypeFont]:
    """Shrink (down to 60 %) and then cut the text so it fits the width."""
    for s in range(size, int(size * 0.6) - 1, -2):
        f = font(s)
        if draw.textlength(text, font=f) <= width:
            return text, f
    f = font(int(size * 0.6))
    while text and draw.textlength(text + "…", font=f) > width:
        text = text[:-1]
    return text + "…", f


@functools.cache
def _watermark_tile(text: str, colour: tuple[int, int, int, int]) -> Image.Image:
    f = font(34)
    left, top, right, bottom = (int(v) for v in f.getbbox(text))
    tile = Image.new("RGBA", (right - left + 40, bottom - top + 20), (0, 0, 0, 0))
    ImageDraw.Draw(tile).text((20 - left, 10 - top), text, font=f, fill=colour)
    return tile.rotate(28, expand=True, resample=Image.Resampling.BILINEAR)


def _watermark(card: Image.Image, text: str) -> None:
    tile = _watermark_tile(text, (200, 30, 30, 70))
    w, h = card.size
    step_x, step_y = tile.width + 10, max(tile.height // 2, 120)
    for row, y in enumerate(range(-tile.height // 3, h, step_y)):
        offset = (row % 2) * step_x // 2
        for x in range(-offset, w, step_x):
            source = (max(0, -x), max(0, -y))
            card.alpha_composite(tile, dest=(max(0, x), max(0, y)), source=source)


def render_card(
    view: Mapping[str, Any],
    layout: Mapping[str, Any],
    qr_text: str,
    watermark: str | None = None,
) -> Image.Image:
    """The card image (RGB) of one certificate view (see ``certificates.full_view``)."""
    w, h = CARD_PX
    colour = _hex_colour(layout.get("color"))
    card = Image.new("RGBA", (w, h), (255, 255, 255, 255))
    draw = ImageDraw.Draw(card)
    tint = tuple(int(255 - (255 - c) * 0.08) for c in colour)
    draw.rectangle((0, 0, w, h), fill=(*tint, 255))
    draw.rectangle((0, 0, w, 96), fill=(*colour, 255))
    title, title_font = _fit(draw, str(layout.get("title") or view["name"]), 44, w - 80)
    draw.text((40, 48), title, font=title_font, fill=(255, 255, 255), anchor="lm")
    # the verification QR on the right
    qr = qr_image(qr_text, 300)
    qr_x, qr_y = w - qr.width - 24, 112
    card.paste(qr.convert("RGBA"), (qr_x, qr_y))
    draw.text(
        (qr_x + qr.width // 2, qr_y + qr.height + 6),
        "扫码核验真伪与状态",
        font=font(20),
        fill=(60, 60, 60),
        anchor="mt",
    )
    # fields on the left
    titles = view.get("field_titles") or {}
    order = [f for f in (view.get("field_order") or list(view["fields"])) if f in view["fields"]]
    top, bottom = 112, h - 92
    line = min(46, max(26, (bottom - top) // max(1, len(order))))
    size = min(26, line - 8)
    labels = {name: str(titles.get(name, name)) for name in order}
    widest = max((draw.textlength(label, font=font(size - 2)) for label in labels.values()), default=100.0)
    label_w = int(min(230, widest)) + 16
    value_w = qr_x - 40 - label_w - 20
    for i, name in enumerate(order):
        y = top + i * line
        label, label_font = _fit(draw, labels[name], size - 2, label_w - 12)
        draw.text((40, y), label, font=label_font, fill=(110, 110, 110))
        value, value_font = _fit(draw, str(view["fields"][name]), size, value_w)
        draw.text((40 + label_w, y), value, font=value_font, fill=(20, 20, 20))
    # footer: identifier, issuer, validity, status
    draw.line((32, h - 84, w - 32, h - 84), fill=(*colour, 255), width=2)
    until = view.get("valid_until") or "长期"
    footer1 = f"颁发机构：{view['issuer']['name']}    有效期：{view['valid_from']} 至 {until}"
    text, f1 = _fit(draw, footer1, 20, w - 64)
    draw.text((32, h - 74), text, font=f1, fill=(50, 50, 50))
    text, f2 = _fit(draw, f"证照标识：{view['identifier']}", 18, w - 64)
    draw.text((32, h - 42), text, font=f2, fill=(90, 90, 90))
    if view.get("status") != "valid":
        label = f"【{view.get('status_label', '无效')}】"
        draw.text((w // 2 - 60, h // 2), label, font=font(64), fill=(200, 0, 0, 220), anchor="mm")
    if watermark:
        _watermark(card, watermark)
        card.paste(qr.convert("RGBA"), (qr_x, qr_y))  # the QR stays clean so it scans
    return card.convert("RGB")


def card_png(view: Mapping[str, Any], layout: Mapping[str, Any], qr_text: str, watermark: str | None = None) -> bytes:
    out = io.BytesIO()
    render_card(view, layout, qr_text, watermark).save(out, format="PNG", dpi=(DPI, DPI), compress_level=1)
    return out.getvalue()


def print_pdf(
    view: Mapping[str, Any],
    layout: Mapping[str, Any],
    qr_text: str,
    watermark: str | None,
    annotation: Mapping[str, str],
) -> bytes:
    """A4 page, the card at true size, the annotation record (加注) printed below it."""
    page = Image.new("RGB", A4_PX, (255, 255, 255))
    draw = ImageDraw.Draw(page)
    margin = round(25 / 25.4 * DPI)
    draw.text((margin, margin), "电子证照加注件", font=font(64), fill=(0, 0, 0))
    card = render_card(view, layout, qr_text, watermark)
    page.paste(card, (margin, margin + 120))
    draw.rectangle(
        (margin - 2, margin + 118, margin + card.width + 1, margin + 120 + card.height + 1), outline=(160, 160, 160)
    )
    y = margin + 120 + card.height + 60
    for label, value in annotation.items():
        draw.text((margin, y), f"{label}：{value}", font=font(40), fill=(30, 30, 30))
        y += 64
    draw.text(
        (margin, y + 30),
        "本加注件仅限上述用途使用；扫描证面二维码可核验真伪及当前状态。",
        font=font(32),
        fill=(90, 90, 90),
    )
    out = io.BytesIO()
    page.save(out, format="PDF", resolution=DPI)
    return out.getvalue()


def annotation_of(copy: Mapping[str, Any]) -> dict[str, str]:
    return {
        "制作时间": format_local(copy["made_at"]),
        "制作者": str(copy["made_by"]["label"]),
        "制作事由": str(copy["purpose"]),
        "有效期截止": format_local(copy["valid_until"]),
    }


CONTENT_TYPES = {"png": "image/png", "pdf": "application/pdf", "ofd": "application/ofd"}


async def copy_image(services: Services, copy_id: str, redeemer: Redeemer, fmt: str) -> bytes:
    """The annotated copy (加注件) as PNG, PDF or sealed OFD, for whoever made it, off the event loop."""
    if fmt not in CONTENT_TYPES:
        raise InvalidInput("certificate.format_invalid", "格式只能是 png、pdf 或 ofd")
    copy = await certificates.get_copy(services.store, copy_id, redeemer)
    cert = await certificates.get_certificate(services.store, copy["certificate_id"])
    if fmt == "ofd":
        from yiwang.ofd import files as ofd_files

        return await ofd_files.copy_ofd(services, copy, cert)
    view = certificates.full_view(services.cipher, cert)
    ctype = certificates.load_types().get(cert["type"])
    layout = dict(ctype.layout) if ctype else {}
    qr_text = verification.qr_url_for(cert, services.config.public_url, copy["_id"])  # opens the verify page
    if fmt == "png":
        return await services.offload.run(card_png, view, layout, qr_text, copy["watermark"])
    return await services.offload.run(print_pdf, view, layout, qr_text, copy["watermark"], annotation_of(copy))
