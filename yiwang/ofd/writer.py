"""The OFD package (GB/T 33190-2016) of one certificate or annotated copy.

```
OFD.xml                          DocInfo + CustomDatas (GB/T 36903 metadata), DocRoot, Signatures
Doc_0/Document.xml               CommonData (page area, MaxUnitID, PublicRes), Pages
Doc_0/PublicRes.xml              RGB colour space, the embedded font
Doc_0/Res/font_<id>.ttf          TrueType subset of the glyphs used
Doc_0/Pages/Page_0/Content.xml   the card as vector text and paths (QR as paths, watermark)
Doc_0/Signs/Signatures.xml       one Signature, Type="Seal"
Doc_0/Signs/Sign_0/Signature.xml SignedInfo: References (SM3 of every other part), StampAnnot
Doc_0/Signs/Sign_0/SignedValue.dat  SES_Signature (GB/T 38540, DER)
```

Everything here is plain and blocking (no store): build a :class:`CardContent` with
:func:`content_for`, then :func:`build_package`. Units are millimetres.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import io
import math
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import segno

from yiwang.crypto import SM2Signer, sm3
from yiwang.ofd import fonts, seal

NS = "http://www.ofdspec.org/2016"
CARD_W, CARD_H = 85.6, 54.0
ANNOTATION_H = 22.0
DOC = "Doc_0"
SIGNATURES_PATH = f"{DOC}/Signs/Signatures.xml"
SIGNATURE_PATH = f"{DOC}/Signs/Sign_0/Signature.xml"
SIGNED_VALUE_PATH = f"{DOC}/Signs/Sign_0/SignedValue.dat"
FONT_ID = 3
COLOUR_SPACE_ID = 2
PAGE_ID = 4


def _fmt(value: float) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return text if text not in ("-0", "") else "0"


def _rgb(colour: tuple[int, int, int]) -> str:
    return " ".join(str(c) for c in colour)


@dataclass
class CardContent:
    """What the page shows, decided from a certificate view (plain values)."""

    title: str
    colour: tuple[int, int, int]
    rows: list[tuple[str, str]]
    footer: list[str]
    qr_text: str
    status_stamp: str | None = None
    watermark: str | None = None
    annotation: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _Page:
    objects: list[str] = field(default_factory=list)
    next_id: int = 10
    chars: set[str] = field(default_factory=set)

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def rect(self, x: float, y: float, w: float, h: float, colour: tuple[int, int, int], *, alpha: int = 255) -> None:
        """A filled rectangle, written as one stroked line as thick as the rectangle (butt caps):
        the same pixels in every reader, and drawn even by readers that only stroke paths."""
        oid = self.new_id()
        extra = f' Alpha="{alpha}"' if alpha != 255 else ""
        self.objects.append(
            f'<ofd:PathObject ID="{oid}" Boundary="{_fmt(x)} {_fmt(y)} {_fmt(w)} {_fmt(h)}" Stroke="true" '
            f'Fill="false" LineWidth="{_fmt(h)}"{extra}><ofd:StrokeColor Value="{_rgb(colour)}"/>'
            f"<ofd:FillColor Value=\"{_rgb(colour)}\"/>"
            f"<ofd:AbbreviatedData>M 0 {_fmt(h / 2)} L {_fmt(w)} {_fmt(h / 2)}</ofd:AbbreviatedData>"
            "</ofd:PathObject>"
        )

    def text(
        self,
        x: float,
        y: float,
        text: str,
        size: float,
        colour: tuple[int, int, int],
        *,
        max_width: float | None = None,
        alpha: int = 255,
        ctm: str | None = None,
    ) -> float:
        """Text with its top-left at (x, y); shrinks to 60 % then cuts to fit. Returns the width."""
        src = fonts.source_font()
        if max_width is not None:
            floor = size * 0.6
            while size > floor and src.width(text, size) > max_width:
                size = max(floor, size - 0.1)
            while len(text) > 1 and src.width(text, size) > max_width:
                text = text[:-2] + "…"
        if not text:
            return 0.0
        self.chars.update(text)
        deltas = [src.advance(c) * size for c in text[:-1]]
        width = src.width(text, size)
        oid = self.new_id()
        extra = (f' Alpha="{alpha}"' if alpha != 255 else "") + (f' CTM="{ctm}"' if ctm else "")
        delta = f' DeltaX="{" ".join(_fmt(d) for d in deltas)}"' if deltas else ""
        self.objects.append(
            f'<ofd:TextObject ID="{oid}" Boundary="{_fmt(x)} {_fmt(y)} {_fmt(width + 1)} {_fmt(size * 1.3)}" '
            f'Font="{FONT_ID}" Size="{_fmt(size)}"{extra}><ofd:FillColor Value="{_rgb(colour)}"/>'
            f'<ofd:TextCode X="0" Y="{_fmt(size * 0.88)}"{delta}>{escape(text)}</ofd:TextCode></ofd:TextObject>'
        )
        return width

    def frame(self, x: float, y: float, w: float, h: float, colour: tuple[int, int, int], *, width: float) -> None:
        oid = self.new_id()
        self.objects.append(
            f'<ofd:PathObject ID="{oid}" Boundary="{_fmt(x)} {_fmt(y)} {_fmt(w)} {_fmt(h)}" Stroke="true" '
            f'Fill="false" LineWidth="{_fmt(width)}"><ofd:StrokeColor Value="{_rgb(colour)}"/>'
            f'<ofd:FillColor Value="{_rgb(colour)}"/>'
            f"<ofd:AbbreviatedData>M 0 0 L {_fmt(w)} 0 L {_fmt(w)} {_fmt(h)} L 0 {_fmt(h)} C</ofd:AbbreviatedData>"
            "</ofd:PathObject>"
        )

    def qr(self, x: float, y: float, size: float, text: str) -> None:
        self.rect(x, y, size, size, (255, 255, 255))  # hides the watermark: the QR stays clean so it scans
        path, unit = qr_path(text, size)
        oid = self.new_id()
        self.objects.append(
            f'<ofd:PathObject ID="{oid}" Boundary="{_fmt(x)} {_fmt(y)} {_fmt(size)} {_fmt(size)}" Stroke="true" '
            f'Fill="false" LineWidth="{_fmt(unit)}"><ofd:StrokeColor Value="0 0 0"/><ofd:FillColor Value="0 0 0"/>'
            f"<ofd:AbbreviatedData>{path}</ofd:AbbreviatedData></ofd:PathObject>"
        )

    def watermark(self, text: str, size: float, colour: tuple[int, int, int], *, alpha: int) -> None:
        """The purpose text, rotated 28° (CTM) and repeated over the card."""
        src = fonts.source_font()
        self.chars.update(text)
        width = src.width(text, size)
        cos, sin = math.cos(math.radians(28)), math.sin(math.radians(28))
        box_w, box_h = width * cos + size * sin + 1, width * sin + size * 1.4
        deltas = " ".join(_fmt(src.advance(c) * size) for c in text[:-1])
        for row in range(5):
            for col in range(3):
                x = -10 + col * (box_w + 2) - (row % 2) * box_w / 2
                y = -6 + row * 12.5
                oid = self.new_id()
                self.objects.append(
                    f'<ofd:TextObject ID="{oid}" Boundary="{_fmt(x)} {_fmt(y)} {_fmt(box_w)} {_fmt(box_h)}" '
                    f'Font="{FONT_ID}" Size="{_fmt(size)}" Alpha="{alpha}" '
                    f'CTM="{cos:.4f} {-sin:.4f} {sin:.4f} {cos:.4f} 0 {_fmt(width * sin)}">'
                    f'<ofd:FillColor Value="{_rgb(colour)}"/><ofd:TextCode X="0" Y="{_fmt(size * 0.88)}" '
                    f'DeltaX="{deltas}">{escape(text)}</ofd:TextCode></ofd:TextObject>'
                )


@functools.lru_cache(maxsize=512)
def qr_path(text: str, size: float) -> tuple[str, float]:
    """The QR (level M, quiet zone 2) as one path of horizontal strokes, one per run of
    dark modules, and the module size (the line width). Cached: a certificate version's
    QR never changes and segno's mask choice is slow."""
    matrix = segno.make(text, error="m", micro=False, boost_error=False).matrix
    border = 2
    unit = size / (len(matrix) + 2 * border)
    parts: list[str] = []
    for row, line in enumerate(matrix):
        col = 0
        mid = _fmt((row + border + 0.5) * unit)
        while col < len(line):
            if not line[col] & 1:
                col += 1
                continue
            start = col
            while col < len(line) and line[col] & 1:
                col += 1
            parts.append(f"M {_fmt((start + border) * unit)} {mid} L {_fmt((col + border) * unit)} {mid}")
    return " ".join(parts), unit


def _layout(content: CardContent) -> tuple[_Page, float]:
    page = _Page()
    height = CARD_H + (ANNOTATION_H if content.annotation else 0.0)
    colour = content.colour
    # Only thin paths near text: some readers paint paths after text, so no filled
    # background may lie under a text object (the page itself is white).
    if content.watermark:
        # under the text (a light tint, so readers that ignore Alpha keep the fields legible)
        page.watermark(content.watermark, 2.9, (236, 150, 150), alpha=110)
    page.frame(0.6, 0.6, CARD_W - 1.2, CARD_H - 1.2, colour, width=0.5)
    page.text(3.4, 2.0, content.title, 3.7, colour, max_width=CARD_W - 6.8)
    page.rect(2.7, 7.4, CARD_W - 5.4, 0.5, colour)
    qr_size = 25.4
    qr_x, qr_y = CARD_W - qr_size - 2.0, 9.5
    page.qr(qr_x, qr_y, qr_size, content.qr_text)
    label = "扫码核验真伪与状态"
    page.text(qr_x + (qr_size - fonts.source_font().width(label, 1.7)) / 2, qr_y + qr_size + 0.4, label, 1.7,
              (60, 60, 60))
    top, bottom = 9.5, CARD_H - 7.8
    rows = content.rows
    line = min(3.9, max(2.2, (bottom - top) / max(1, len(rows))))
    size = min(2.2, line - 0.6)
    src = fonts.source_font()
    label_w = min(19.5, max((src.width(lbl, size - 0.15) for lbl, _ in rows), default=8.0)) + 1.4
    value_w = qr_x - 3.4 - label_w - 1.7
    for i, (lbl, value) in enumerate(rows):
        y = top + i * line
        page.text(3.4, y, lbl, size - 0.15, (110, 110, 110), max_width=label_w - 1.0)
        page.text(3.4 + label_w, y, value, size, (20, 20, 20), max_width=value_w)
    page.rect(2.7, CARD_H - 7.1, CARD_W - 5.4, 0.17, colour)
    for i, text in enumerate(content.footer):
        page.text(2.7, CARD_H - 6.3 + i * 2.7, text, 1.7 - 0.15 * i, (50 + 40 * i, 50 + 40 * i, 50 + 40 * i),
                  max_width=CARD_W - 5.4)
    if content.status_stamp:
        page.text(22, CARD_H / 2 - 3, content.status_stamp, 5.4, (200, 0, 0), alpha=220)
    if content.annotation:
        y = CARD_H + 2.0
        for lbl, value in content.annotation:
            page.text(3.4, y, f"{lbl}：{value}", 2.3, (30, 30, 30), max_width=CARD_W - 6.8)
            y += 3.4
        page.text(3.4, y + 0.6, "本加注件仅限上述用途使用；扫描证面二维码可核验真伪及当前状态。", 1.8,
                  (90, 90, 90), max_width=CARD_W - 6.8)
    return page, height


def _xml(body: str) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + body).encode()


def _custom_datas(metadata: Sequence[tuple[str, str]]) -> str:
    return "".join(f"<ofd:CustomData Name={quoteattr(k)}>{escape(v)}</ofd:CustomData>" for k, v in metadata)


@dataclass(frozen=True)
class PackageRequest:
    """Everything one OFD needs, as plain values."""

    doc_id: str
    title: str
    author: str
    content: CardContent
    metadata: Sequence[tuple[str, str]]
    issuer: seal.Issuer
    kid: str
    signer: SM2Signer
    created_at: dt.datetime


def build_package(req: PackageRequest) -> bytes:
    """The signed OFD file (zip bytes). Blocking: run it through ``services.offload``."""
    page, height = _layout(req.content)
    made = seal.department_seal(req.signer, req.issuer, req.kid)
    font_bytes = fonts.subset_font("".join(sorted(page.chars)))
    max_id = page.next_id + 1
    stamp_id = max_id
    ofd_xml = _xml(
        f'<ofd:OFD xmlns:ofd="{NS}" Version="1.2" DocType="OFD"><ofd:DocBody><ofd:DocInfo>'
        f"<ofd:DocID>{escape(req.doc_id)}</ofd:DocID><ofd:Title>{escape(req.title)}</ofd:Title>"
        f"<ofd:Author>{escape(req.author)}</ofd:Author>"
        f"<ofd:CreationDate>{req.created_at.date().isoformat()}</ofd:CreationDate>"
        f"<ofd:Creator>一网电子证照库</ofd:Creator><ofd:CreatorVersion>1</ofd:CreatorVersion>"
        f"<ofd:CustomDatas>{_custom_datas(req.metadata)}</ofd:CustomDatas></ofd:DocInfo>"
        f"<ofd:DocRoot>{DOC}/Document.xml</ofd:DocRoot><ofd:Signatures>{SIGNATURES_PATH}</ofd:Signatures>"
        "</ofd:DocBody></ofd:OFD>"
    )
    document_xml = _xml(
        f'<ofd:Document xmlns:ofd="{NS}"><ofd:CommonData><ofd:MaxUnitID>{max_id}</ofd:MaxUnitID>'
        f"<ofd:PageArea><ofd:PhysicalBox>0 0 {_fmt(CARD_W)} {_fmt(height)}</ofd:PhysicalBox></ofd:PageArea>"
        f"<ofd:PublicRes>PublicRes.xml</ofd:PublicRes><ofd:DefaultCS>{COLOUR_SPACE_ID}</ofd:DefaultCS>"
        f'</ofd:CommonData><ofd:Pages><ofd:Page ID="{PAGE_ID}" BaseLoc="Pages/Page_0/Content.xml"/></ofd:Pages>'
        "</ofd:Document>"
    )
    font_file = f"font_{FONT_ID}.ttf"
    public_res = _xml(
        f'<ofd:Res xmlns:ofd="{NS}" BaseLoc="Res"><ofd:ColorSpaces>'
        f'<ofd:ColorSpace ID="{COLOUR_SPACE_ID}" Type="RGB" BitsPerComponent="8"/></ofd:ColorSpaces>'
        f'<ofd:Fonts><ofd:Font ID="{FONT_ID}" FontName="{fonts.FAMILY}" FamilyName="{fonts.FAMILY}">'
        f"<ofd:FontFile>{font_file}</ofd:FontFile></ofd:Font></ofd:Fonts></ofd:Res>"
    )
    content_xml = _xml(
        f'<ofd:Page xmlns:ofd="{NS}"><ofd:Area><ofd:PhysicalBox>0 0 {_fmt(CARD_W)} {_fmt(height)}'
        f'</ofd:PhysicalBox></ofd:Area><ofd:Content><ofd:Layer ID="10" Type="Body">'
        + "".join(page.objects)
        + "</ofd:Layer></ofd:Content></ofd:Page>"
    )
    signatures_xml = _xml(
        f'<ofd:Signatures xmlns:ofd="{NS}"><ofd:MaxSignId>1</ofd:MaxSignId>'
        f'<ofd:Signature ID="1" Type="Seal" BaseLoc="/{SIGNATURE_PATH}"/></ofd:Signatures>'
    )
    parts: dict[str, bytes] = {
        "OFD.xml": ofd_xml,
        f"{DOC}/Document.xml": document_xml,
        f"{DOC}/PublicRes.xml": public_res,
        f"{DOC}/Res/{font_file}": font_bytes,
        f"{DOC}/Pages/Page_0/Content.xml": content_xml,
        SIGNATURES_PATH: signatures_xml,
    }
    references = "".join(
        f'<ofd:Reference FileRef="/{name}"><ofd:CheckValue>{base64.b64encode(sm3(data)).decode()}'
        "</ofd:CheckValue></ofd:Reference>"
        for name, data in parts.items()
    )
    seal_x, seal_y = 30.0, CARD_H - seal.SEAL_MM - 1.0
    signed_at = req.created_at.astimezone(dt.UTC).replace(microsecond=0)
    signature_xml = _xml(
        f'<ofd:Signature xmlns:ofd="{NS}"><ofd:SignedInfo>'
        f'<ofd:Provider ProviderName="Yiwang" Version="1" Company="一网"/>'
        f"<ofd:SignatureMethod>{seal.SM2_SM3_OID}</ofd:SignatureMethod>"
        f"<ofd:SignatureDateTime>{signed_at:%Y%m%d%H%M%S}Z</ofd:SignatureDateTime>"
        f'<ofd:References CheckMethod="{seal.SM3_OID}">{references}</ofd:References>'
        f'<ofd:StampAnnot ID="{stamp_id}" PageRef="{PAGE_ID}" '
        f'Boundary="{_fmt(seal_x)} {_fmt(seal_y)} {_fmt(seal.SEAL_MM)} {_fmt(seal.SEAL_MM)}"/>'
        f"</ofd:SignedInfo><ofd:SignedValue>/{SIGNED_VALUE_PATH}</ofd:SignedValue></ofd:Signature>"
    )
    signed_value = seal.sign_document(req.signer, made, sm3(signature_xml), f"/{SIGNATURE_PATH}", signed_at)
    parts[SIGNATURE_PATH] = signature_xml
    parts[SIGNED_VALUE_PATH] = signed_value
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, data in parts.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_level = 1
            # the seal picture and signatures do not compress
            info.compress_type = zipfile.ZIP_STORED if name == SIGNED_VALUE_PATH else zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return out.getvalue()


# ---- from a certificate view ------------------------------------------------------------


def _hex_colour(value: Any, default: str = "#1F5FA8") -> tuple[int, int, int]:
    text = value if isinstance(value, str) and len(value) == 7 and value.startswith("#") else default
    return int(text[1:3], 16), int(text[3:5], 16), int(text[5:7], 16)


def content_for(
    view: Mapping[str, Any],
    layout: Mapping[str, Any],
    qr_text: str,
    *,
    watermark: str | None = None,
    annotation: Mapping[str, str] | None = None,
) -> CardContent:
    """The same card as ``rendering.render_card`` draws, as page content."""
    titles = view.get("field_titles") or {}
    order = [f for f in (view.get("field_order") or list(view["fields"])) if f in view["fields"]]
    until = view.get("valid_until") or "长期"
    return CardContent(
        title=str(layout.get("title") or view["name"]),
        colour=_hex_colour(layout.get("color")),
        rows=[(str(titles.get(name, name)), str(view["fields"][name])) for name in order],
        footer=[
            f"颁发机构：{view['issuer']['name']}    有效期：{view['valid_from']} 至 {until}",
            f"证照标识：{view['identifier']}",
        ],
        qr_text=qr_text,
        status_stamp=None if view.get("status") == "valid" else f"【{view.get('status_label', '无效')}】",
        watermark=watermark,
        annotation=list((annotation or {}).items()),
    )
