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
* Files are sealed (SM4-GCM, like every personal field) and kept in the database
  (``yiwang.filestore``: chunks read by ``_id``), so every process on every host
  reads what any of them stored; the ``uploads`` collection holds the metadata and
  the chunk references (``files``). Uploads made before that were kept sealed under
  ``DATA_DIR/uploads``: migration 3 (:func:`import_disk_uploads`, also
  ``python -m yiwang.admin uploads import-disk`` on each host) moves them into the
  database, and until then they are still read from the disk.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import re
import uuid
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import filetype
import pypdf
from PIL import Image, ImageOps

from yiwang import audit, filestore
from yiwang.errors import InvalidInput, NotFound, TooLarge
from yiwang.timeutil import utcnow

if TYPE_CHECKING:
    from yiwang.crypto import FieldCipher
    from yiwang.runtime import Services
    from yiwang.store import Store

log = logging.getLogger(__name__)

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


LEGACY_DIRECTORY = "uploads"  # under DATA_DIR, before uploads moved into the database


def _directory(data_dir: Path) -> Path:
    return Path(data_dir) / LEGACY_DIRECTORY


def _read_sealed(cipher: FieldCipher, path: Path) -> bytes:
    """Blocking: a file sealed on disk by an earlier version."""
    return base64.b64decode(cipher.open(UPLOAD_PURPOSE, path.read_text()))


def _file_names(upload_id: str, content_type: str) -> dict[str, str]:
    """Which files an upload has, and their names on the legacy disk store."""
    if content_type == PDF_TYPE:
        return {"main": f"{upload_id}.pdf.sealed"}
    return {"main": f"{upload_id}.jpg.sealed", "thumb": f"{upload_id}.thumb.jpg.sealed"}


async def _keep_files(store: Store, cipher: FieldCipher, offload: Any, upload_id: str,
                      files: dict[str, bytes]) -> dict[str, Any]:
    """Seal (off the loop) and store each file's chunks; returns the references for ``uploads.files``."""
    refs = {}
    for name, data in files.items():
        docs = await offload(filestore.seal_chunks, cipher, f"{upload_id}.{name}", data)
        refs[name] = await filestore.write(store, docs)
    return refs


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


async def _process(services: Services, upload_id: str, data: bytes) -> dict[str, Any]:
    """Sniff, check or re-encode (isolated), seal into the database; returns the metadata."""
    mime = sniff(data)
    if mime == PDF_TYPE:
        await services.offload.run_isolated(check_pdf, data)
        files = {"main": data}
        meta: dict[str, Any] = {"content_type": PDF_TYPE, "size": len(data), "thumbnail": False}
    else:
        jpeg, thumb, width, height = await services.offload.run_isolated(reencode_image, data)
        files = {"main": jpeg, "thumb": thumb}
        meta = {"content_type": "image/jpeg", "size": len(jpeg), "width": width, "height": height, "thumbnail": True}
    meta["files"] = await _keep_files(services.store, services.cipher, services.offload.run, upload_id, files)
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
    if doc["content_type"] == PDF_TYPE and thumbnail:
        raise NotFound("upload.no_thumbnail", "该文件没有缩略图")
    data = await _file_bytes(services, doc, "thumb" if thumbnail else "main")
    await audit.record(services.store, actor, "upload.read", upload_id, channel="mobile", on_behalf_of=owner)
    return doc["content_type"], data


async def _file_bytes(services: Services, doc: dict[str, Any], name: str) -> bytes:
    """One file of an upload: from the database, or (not yet migrated) from this host's disk."""
    ref = (doc.get("files") or {}).get(name)
    if ref is not None:
        chunks = await filestore.read_docs(services.store, ref)
        return await services.offload.run(filestore.open_chunks, services.cipher, chunks)
    path = _directory(services.config.data_dir) / _file_names(doc["_id"], doc["content_type"])[name]
    try:
        return await services.offload.run(_read_sealed, services.cipher, path)
    except FileNotFoundError:
        log.warning("upload not in the database nor on this host", extra={"fields": {"upload": doc["_id"]}})
        raise NotFound("upload.elsewhere", "文件尚未迁移到数据库，请在保存它的主机上运行 uploads import-disk") from None


async def import_disk_uploads(store: Store, cipher: FieldCipher, data_dir: Path) -> dict[str, int]:
    """Move uploads sealed on this host's disk into the database (idempotent; migration 3).

    Each file is opened, re-sealed in chunks and stored, then the upload's document
    gains its ``files``; the disk file is removed only after that. Files whose upload
    is unknown, or whose document already has ``files``, are left alone."""
    directory = _directory(data_dir)
    counts = {"moved": 0, "already": 0, "orphans": 0}
    if not await asyncio.to_thread(directory.is_dir):
        return counts
    ids = sorted({p.name.split(".", 1)[0] for p in await asyncio.to_thread(lambda: list(directory.glob("*.sealed")))})
    for upload_id in ids:
        doc = await store["uploads"].find_one({"_id": upload_id})
        if doc is None:
            counts["orphans"] += 1
            continue
        names = _file_names(upload_id, doc["content_type"])
        if doc.get("files"):
            counts["already"] += 1
        else:
            files = {}
            for name, filename in names.items():
                path = directory / filename
                if await asyncio.to_thread(path.exists):
                    files[name] = await asyncio.to_thread(_read_sealed, cipher, path)
            if "main" not in files:
                counts["orphans"] += 1
                continue
            refs = await _keep_files(store, cipher, _to_thread, upload_id, files)
            await store["uploads"].update_one({"_id": upload_id, "files": None}, {"$set": {"files": refs}})
            counts["moved"] += 1
        for filename in names.values():
            await asyncio.to_thread((directory / filename).unlink, missing_ok=True)
    log.info("uploads moved into the database", extra={"fields": counts})
    return counts


async def _to_thread(fn: Any, *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)
