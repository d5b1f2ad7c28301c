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
import datetime as dt
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
from pymongo import ReturnDocument

from yiwang import audit, filestore
from yiwang.accounts import openid_of
from yiwang.crypto import constant_time_equal, random_token, token_digest
from yiwang.errors import InvalidInput, NotFound, TooLarge
from yiwang.timeutil import as_utc, utcnow
from yiwang.wechat import WeChatError, gateway

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
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
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
        **check_view(doc),
    }


async def store_upload(
    services: Services, owner: str, actor: audit.Actor, data: bytes, *, account_id: str | None = None
) -> dict[str, Any]:
    """Check and keep one uploaded file for ``owner`` (a person's blind index).

    An image uploaded from a WeChat account (``account_id``) is then submitted to
    WeChat's content security check (:func:`_submit_media_check`)."""
    upload_id = uuid.uuid4().hex
    meta = await _process(services, upload_id, data)
    doc = {"_id": upload_id, "owner": owner, "uploaded_by": actor.id, "created_at": utcnow(), **meta}
    openid = None
    if meta["content_type"] != PDF_TYPE and account_id is not None:

        openid = await openid_of(services, account_id)
    token = random_token(32) if openid else None
    doc["media_check"] = _pending_check(token) if token else {"status": "unchecked"}
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
    if openid and token:
        doc["media_check"] = await _submit_media_check(services, upload_id, openid, token)
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


# ---- content security: WeChat's mediaCheckAsync (v2) -------------------------------------------
#
# An image is stored first (re-encoded, sealed), then submitted: WeChat fetches it from a
# one-time URL (``/api/wechat/media/<id>/<token>``, valid while the check is pending, at most
# MEDIA_URL_SECONDS) and later pushes its verdict to ``/api/wechat/push`` with the trace_id.
# ``media_checks`` maps trace_id → upload (read by _id), whichever of the answer and the push
# arrives first. ``risky`` marks the upload refused: the resident sees why, staff never see it,
# and it cannot be attached to an application. WeChat unreachable: ``unchecked`` (kept, like
# unchecked text, for the staff who read it).

MEDIA_URL_SECONDS = 3600
MEDIA_SCENE = 1  # 资料
MEDIA_LABELS = {
    10001: "广告", 20001: "时政", 20002: "色情", 20003: "辱骂", 20006: "违法犯罪", 20008: "欺诈",
    20012: "低俗", 20013: "版权", 21000: "其他不当内容",
}  # fmt: skip
CHECK_LABELS = {"pending": "检测中", "pass": "已通过", "review": "已通过", "refused": "未通过", "unchecked": "未检测"}


def _pending_check(token: str) -> dict[str, Any]:
    now = utcnow()
    return {"status": "pending", "url_digest": token_digest(token), "url_expires": now + dt.timedelta(
        seconds=MEDIA_URL_SECONDS), "submitted_at": now}  # fmt: skip


def refusal_reason(label: Any) -> str:
    what = MEDIA_LABELS.get(label, "不当内容") if isinstance(label, int) else "不当内容"
    return f"图片未通过微信内容安全检测（疑似含有{what}），请更换图片后重新上传"


def check_view(doc: dict[str, Any]) -> dict[str, Any]:
    """What the uploader sees of the content check."""
    check = doc.get("media_check") or {"status": "unchecked"}
    out: dict[str, Any] = {"check": check["status"], "check_label": CHECK_LABELS.get(check["status"], "")}
    if check["status"] == "refused":
        out["check_reason"] = check.get("reason") or refusal_reason(None)
    return out


async def _submit_media_check(services: Services, upload_id: str, openid: str, token: str) -> dict[str, Any]:

    uploads = services.store["uploads"]
    url = f"{services.config.public_url}/api/wechat/media/{upload_id}/{token}"
    try:
        trace_id = await gateway(services).media_check_async(openid, url, MEDIA_SCENE)
    except WeChatError:
        log.warning("image content check unavailable; kept unchecked", extra={"fields": {"upload": upload_id}})
        await uploads.update_one({"_id": upload_id}, {"$set": {"media_check": {"status": "unchecked"}}})
        return {"status": "unchecked"}
    await uploads.update_one(
        {"_id": upload_id, "media_check.status": "pending"}, {"$set": {"media_check.trace_id": trace_id}}
    )
    early = await services.store["media_checks"].find_one_and_update(
        {"_id": trace_id}, {"$set": {"upload": upload_id}, "$setOnInsert": {"at": utcnow()}},
        upsert=True, return_document=ReturnDocument.AFTER,
    )  # fmt: skip
    if early and early.get("suggest"):  # the push came before the answer
        await _apply_verdict(services.store, upload_id, trace_id, early["suggest"], early.get("label"))
    doc = await uploads.find_one({"_id": upload_id}, {"media_check": 1})
    return dict(doc["media_check"]) if doc else {"status": "pending"}


async def record_media_check(store: Store, trace_id: str, suggest: str, label: Any) -> None:
    """WeChat's verdict for ``trace_id`` (from ``wxa_media_check``), applied to its upload."""
    doc = await store["media_checks"].find_one_and_update(
        {"_id": trace_id}, {"$set": {"suggest": suggest, "label": label, "at": utcnow()}},
        upsert=True, return_document=ReturnDocument.AFTER,
    )  # fmt: skip
    if doc and doc.get("upload"):
        await _apply_verdict(store, doc["upload"], trace_id, suggest, label)


async def _apply_verdict(store: Store, upload_id: str, trace_id: str, suggest: str, label: Any) -> None:
    status = {"risky": "refused", "review": "review", "pass": "pass"}.get(suggest)
    if status is None:
        return
    check: dict[str, Any] = {"status": status, "trace_id": trace_id, "label": label, "decided_at": utcnow()}
    if status == "refused":
        check["reason"] = refusal_reason(label)
    updated = await store["uploads"].find_one_and_update(
        {"_id": upload_id, "media_check.trace_id": trace_id, "media_check.status": "pending"},
        {"$set": {"media_check": check}},
    )
    if updated is not None and status == "refused":
        log.info("upload refused by content check", extra={"fields": {"upload": upload_id, "label": label}})
        await audit.record(store, audit.SYSTEM, "upload.refused", upload_id, channel="system",
                           on_behalf_of=updated["owner"], detail={"label": label})  # fmt: skip


async def media_for_check(services: Services, upload_id: str, token: str) -> tuple[str, bytes]:
    """The image WeChat fetches to check it: only with the one-time token, only while pending."""
    doc = await services.store["uploads"].find_one({"_id": upload_id}) if _UPLOAD_ID.match(upload_id) else None
    check = (doc or {}).get("media_check") or {}
    if (
        doc is None
        or check.get("status") != "pending"
        or not constant_time_equal(check.get("url_digest", ""), token_digest(token))
        or as_utc(check["url_expires"]) <= utcnow()
    ):
        raise NotFound("upload.not_found", "找不到该文件")
    data = await _file_bytes(services, doc, "main")
    await audit.record(services.store, audit.SYSTEM, "upload.read", upload_id, channel="system",
                       purpose="content_security", on_behalf_of=doc["owner"])  # fmt: skip
    return doc["content_type"], data


async def checks_of(store: Store, upload_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The content check of each upload (for application views), read by _id."""
    out = {}
    for upload_id in dict.fromkeys(upload_ids):
        doc = await store["uploads"].find_one({"_id": upload_id}, {"media_check": 1})
        if doc is not None:
            out[upload_id] = check_view(doc)
    return out
