"""The printed checklist (一次性告知单) of a scenario: an A4 PDF drawn with
Pillow. Blocking: call through ``services.offload.run(render_checklist_pdf, …)``."""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

from yiwang.catalog import Plan, time_limit_text
from yiwang.fonts import font

PAGE = (1240, 1754)  # A4 at 150 dpi
MARGIN = 90
FORMS = {"original": "原件", "copy": "复印件", "electronic": "电子材料"}


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return font(size)
    except RuntimeError:  # no CJK font installed: still a legible (if Latin-only) slip
        return ImageFont.load_default()


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
          width: int) -> list[str]:
    lines: list[str] = []
    current = ""
    for ch in text:
        if draw.textlength(current + ch, font=font) > width:
            lines.append(current)
            current = ch
        else:
            current += ch
    if current:
        lines.append(current)
    return lines or [""]


def checklist_lines(plan: Plan, hall_name: str, windows_label: dict[str, str]) -> list[tuple[str, str]]:
    """(style, text) lines: the same content as the checklist page."""
    out: list[tuple[str, str]] = [("title", f"{plan.name} · 办事清单"), ("small", f"服务大厅：{hall_name}")]
    for n, item in enumerate(plan.items, 1):
        out.append(("heading", f"{n}. {item.name}"))
        where = windows_label.get(item.code, "")
        out.append(("small", f"办理方式：{where}   承诺时限：{time_limit_text(item.promised_days)}"))
        for m in item.materials:
            mark = "免提交（已有电子证照）" if m.no_need_to_bring else f"{FORMS.get(m.form, m.form)} {m.copies} 份"
            need = "" if m.required else "（如适用）"
            out.append(("body", f"  □ {m.name}{need}：{mark}"))
    if plan.notes:
        out.append(("heading", "温馨提示"))
        out.extend(("body", f"• {note}") for note in plan.notes)
    return out


def render_checklist_pdf(lines: Sequence[tuple[str, str]], footer: str) -> bytes:
    fonts = {"title": _font(48), "heading": _font(34), "body": _font(28), "small": _font(24)}
    gaps = {"title": 30, "heading": 18, "body": 8, "small": 8}
    pages: list[Image.Image] = []
    page = Image.new("RGB", PAGE, "white")
    draw = ImageDraw.Draw(page)
    y = MARGIN
    for style, text in lines:
        font = fonts[style]
        for line in _wrap(draw, text, font, PAGE[0] - 2 * MARGIN):
            height = int(font.size if isinstance(font, ImageFont.FreeTypeFont) else 12) + gaps[style]
            if y + height > PAGE[1] - MARGIN - 40:
                pages.append(page)
                page = Image.new("RGB", PAGE, "white")
                draw = ImageDraw.Draw(page)
                y = MARGIN
            draw.text((MARGIN, y), line, fill="black", font=font)
            y += height
        y += gaps[style]
    pages.append(page)
    for number, p in enumerate(pages, 1):
        ImageDraw.Draw(p).text((MARGIN, PAGE[1] - MARGIN), f"{footer}  第 {number}/{len(pages)} 页", fill="#555555",
                               font=fonts["small"])
    buffer = io.BytesIO()
    pages[0].save(buffer, "PDF", resolution=150.0, save_all=True, append_images=pages[1:])
    return buffer.getvalue()
