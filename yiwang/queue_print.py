"""The printed queue ticket (排队号票): a small receipt-sized PDF drawn with Pillow, printed
through the kiosk's agent like the checklist. Blocking: call through ``services.offload.run``."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from PIL import Image, ImageDraw

from yiwang.checklist_print import _font

PAGE = (640, 900)  # 80 mm receipt paper at 203 dpi
MARGIN = 40


def _centred(draw: ImageDraw.ImageDraw, y: int, text: str, size: int, fill: str = "black") -> int:
    font = _font(size)
    width = draw.textlength(text, font=font)
    draw.text(((PAGE[0] - width) / 2, y), text, fill=fill, font=font)
    return y + size + 18


def render_ticket_pdf(ticket: Mapping[str, Any], hall_name: str, taken_at: str) -> bytes:
    page = Image.new("RGB", PAGE, "white")
    draw = ImageDraw.Draw(page)
    y = _centred(draw, MARGIN, hall_name[:18], 30)
    y = _centred(draw, y, "排队号票", 34)
    draw.line((MARGIN, y, PAGE[0] - MARGIN, y), fill="black", width=2)
    y = _centred(draw, y + 20, str(ticket["number"]), 150)
    y = _centred(draw, y + 10, str(ticket.get("category_name", "")), 36)
    ahead = ticket.get("ahead")
    if ahead is not None:
        y = _centred(draw, y + 10, f"前面还有 {ahead} 人", 36)
        y = _centred(draw, y, f"预计等候约 {ticket.get('wait_minutes') or 0} 分钟", 30)
    if ticket.get("priority"):
        y = _centred(draw, y, "优先办理（请向窗口出示相关证件）", 24)
    draw.line((MARGIN, y + 10, PAGE[0] - MARGIN, y + 10), fill="black", width=2)
    y = _centred(draw, y + 30, f"取号时间 {taken_at}", 24)
    y = _centred(draw, y, "请留意大厅叫号屏和语音提示", 24)
    _centred(draw, y, "过号请到导办台重新取号", 24)
    buffer = io.BytesIO()
    page.save(buffer, "PDF", resolution=203.0)
    return buffer.getvalue()
