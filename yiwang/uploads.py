"""Material uploads: images and PDFs for applications.

* The type is sniffed from the content (``filetype``), never trusted from the
  name or the Content-Type.
* Images are decoded in a worker process (``services.offload.run_isolated``) with a
  pixel budget that fits the purpose (:data:`MAX_PIXELS`, a document photo: a 12 MP
  phone camera fits, a 40 MP bomb is refused before decoding); decompression bombs and
  broken files are refused; the orientation is applied, EXIF and every other metadata
  dropped by re-encoding to JPEG; a thumbnail is made. Nothing of the original is kept.
* PDFs are checked as what they claim, in a worker process too: a PDF structure that
  parses (``pypdf``, strict), not encrypted, 1–:data:`MAX_PDF_PAGES` pages, no
  JavaScript, launch actions, embedded files or forms. Kept as sent, and only ever
  served back as a sandboxed download (``web.base.serve_as_download``).
* Files are sealed (SM4-GCM, like every personal field) and kept under
  ``DATA_DIR/uploads``; the ``uploads`` collection holds the metadata.
"""

from __future__ import annotations

import base64
import io
import re
import uuid
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import filetype
import pypdf
from PIL import Image, ImageOps

from yiwang import audit
from yiwang.errors import InvalidInput, NotFound, TooLarge
from yiwang.files import write_private
from yiwang.timeutil import utcnow

if TYPE_CHECKING:
    from yiwang.runtime import Services

MAX_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 16_000_000  # a document photo; callers with another purpose pass their own budget
DECODER_MAX_PIXELS = 40_000_000  # Pillow's own ceiling, whatever a caller asks for
MAX_PDF_PAGES = 200
MAX_SIDE = 4096
MIN_SIDE = 16
THUMB_SIDE = 320
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/bmp", "image/tiff"})
PDF_TYPE = "application/pdf"
UPLOAD_PURPOSE = "upload"

Image.MAX_IMAGE_PIXELS = DECODER_MAX_PIXELS
_ACTIVE_PDF = re.compile(rb"/(?:JavaScript|JS|Launch|EmbeddedFiles?|RichMedia|XFA|OpenAction|AA)\b")


def open_image(data: bytes, *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Blocking: decode safely (pixel limit, decompression bombs, broken files → InvalidInput)
    and apply the EXIF orientation. The caller re-encodes without metadata."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as probe:
                width, height = probe.size
                if width * height > max_pixels:
                    raise InvalidInput("upload.too_many_pixels", "图片像素过多，请压缩后再上传")
                probe.verify()
            with Image.open(io.BytesIO(data)) as opened:
                opened.load()
                image = ImageOps.exif_transpose(opened) or opened
                if image is opened:
                    image = opened.copy()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise InvalidInput("upload.too_many_pixels", "图片像素过多，请压缩后再上传") from None
        except InvalidInput:
            raise
        except Exception:
            raise InvalidInput("upload.corrupt", "图片已损坏或格式不受支持") from None
    return image


def reencode_image(data: bytes) -> tuple[bytes, bytes, int, int]:
    """Blocking, run isolated: decode, orient, strip metadata, re-encode; (jpeg, thumb, w, h)."""
    image = open_image(data).convert("RGB")
    if min(image.size) < MIN_SIDE:
        raise InvalidInput("upload.too_small", "图片太小，无法看清")
    image.thumbnail((MAX_SIDE, MAX_SIDE))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85, optimize=True)  # no exif= → no metadata
    thumb = image.copy()
    thumb.thumbnail((THUMB_SIDE, THUMB_SIDE))
    thumb_out = io.BytesIO()
    thumb.save(thumb_out, "JPEG", quality=75)
    return out.getvalue(), thumb_out.getvalue(), image.size[0], image.size[1]


def _has_active_content(root: object) -> bool:
    """Document-level actions, forms or scripts in a PDF's catalogue (``[]`` resolves indirect objects)."""
    if not isinstance(root, pypdf.generic.DictionaryObject):
        return True
    if any(key in root for key in ("/OpenAction", "/AA", "/AcroForm")):
        return True
    names = root["/Names"] if "/Names" in root else None  # noqa: SIM401 (get() would not resolve it)
    return isinstance(names, pypdf.generic.DictionaryObject) and "/JavaScript" in names


def check_pdf(data: bytes) -> None:
    """Blocking, run isolated: the file is a PDF that parses, and carries nothing that runs."""
    if not data.startswith(b"%PDF-") or b"%%EOF" not in data[-2048:]:
        raise InvalidInput("upload.corrupt", "PDF 文件已损坏")
    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=True)
        if reader.is_encrypted:
            raise InvalidInput("upload.pdf_encrypted", "不能上传加密的 PDF 文件")
        pages = len(reader.pages)
        active = _has_active_content(reader.trailer["/Root"].get_object())
    except InvalidInput:
        raise
    except Exception:
        raise InvalidInput("upload.corrupt", "PDF 文件已损坏") from None
    if not 1 <= pages <= MAX_PDF_PAGES:
        raise InvalidInput("upload.pdf_pages", f"PDF 须为 1–{MAX_PDF_PAGES} 页")
    if active or _ACTIVE_PDF.search(data):
        raise InvalidInput("upload.pdf_active_content", "PDF 含有脚本、表单或嵌入文件，请打印后扫描再上传")


def _directory(services: Services) -> Path:
    return Path(services.config.data_dir) / "uploads"


def _write_sealed(services: Services, path: Path, data: bytes) -> None:
    sealed = services.cipher.seal(UPLOAD_PURPOSE, base64.b64encode(data).decode())
    write_private(path, sealed)  # 0600 in a 0700 folder


def _read_sealed(services: Services, path: Path) -> bytes:
    return base64.b64decode(services.cipher.open(UPLOAD_PURPOSE, path.read_text()))


def sniff(data: bytes) -> str:
    """The upload's type by its content (an image type or PDF), or a clear 4xx."""
    if not data:
        raise InvalidInput("upload.empty", "文件为空")
    if len(data) > MAX_BYTES:
        raise TooLarge("upload.too_large", "文件不能超过 10 MB")
    kind = filetype.guess(data[:8192])
    mime = kind.mime if kind else ""
    if mime in IMAGE_TYPES or mime == PDF_TYPE:
        return mime
    raise InvalidInput("upload.unsupported_type", "只能上传图片（JPG、PNG、WEBP）或 PDF 文件")


def _write_files(services: Services, files: dict[str, bytes]) -> None:
    directory = _directory(services)
    for name, data in files.items():
        _write_sealed(services, directory / name, data)


async def _process(services: Services, upload_id: str, data: bytes) -> dict[str, Any]:
    """Sniff, check or re-encode (isolated), seal to disk; returns the metadata."""
    mime = sniff(data)
    if mime == PDF_TYPE:
        await services.offload.run_isolated(check_pdf, data)
        files = {f"{upload_id}.pdf.sealed": data}
        meta: dict[str, Any] = {"content_type": PDF_TYPE, "size": len(data), "thumbnail": False}
    else:
        jpeg, thumb, width, height = await services.offload.run_isolated(reencode_image, data)
        files = {f"{upload_id}.jpg.sealed": jpeg, f"{upload_id}.thumb.jpg.sealed": thumb}
        meta = {"content_type": "image/jpeg", "size": len(jpeg), "width": width, "height": height, "thumbnail": True}
    await services.offload.run(_write_files, services, files)
    return meta


def upload_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "content_type": doc["content_type"],
        "size": doc["size"],
        "width": doc.get("width"),
        "height": doc.get("height"),
        "thumbnail": bool(doc.get("thumbnail")),
        "created_at": doc["created_at"],
    }


async def store_upload(services: Services, owner: str, actor: audit.Actor, data: bytes) -> dict[str, Any]:
    """Check and keep one uploaded file for ``owner`` (a person's blind index)."""
    upload_id = uuid.uuid4().hex
    meta = await _process(services, upload_id, data)
    doc = {"_id": upload_id, "owner": owner, "uploaded_by": actor.id, "created_at": utcnow(), **meta}
    await services.store["uploads"].insert_one(doc)
    await audit.record(
        services.store,
        actor,
        "upload.create",
        upload_id,
        channel="mobile",
        on_behalf_of=owner,
        detail={"content_type": meta["content_type"], "size": meta["size"]},
    )
    return upload_view(doc)


async def owned_upload(services: Services, owner: str, upload_id: Any) -> dict[str, Any]:
    if not isinstance(upload_id, str):
        raise NotFound("upload.not_found", "找不到该文件")
    doc = await services.store["uploads"].find_one({"_id": upload_id, "owner": owner})
    if doc is None:
        raise NotFound("upload.not_found", "找不到该文件")
    return doc


async def read_upload(
    services: Services, owner: str, actor: audit.Actor, upload_id: str, *, thumbnail: bool = False
) -> tuple[str, bytes]:
    """(content type, bytes) of an upload the owner holds; audited."""
    doc = await owned_upload(services, owner, upload_id)
    if doc["content_type"] == PDF_TYPE:
        if thumbnail:
            raise NotFound("upload.no_thumbnail", "该文件没有缩略图")
        name = f"{upload_id}.pdf.sealed"
    else:
        name = f"{upload_id}.thumb.jpg.sealed" if thumbnail else f"{upload_id}.jpg.sealed"
    data = await services.offload.run(_read_sealed, services, _directory(services) / name)
    await audit.record(services.store, actor, "upload.read", upload_id, channel="mobile", on_behalf_of=owner)
    return doc["content_type"], data
