"""Images on notices and banners, uploaded in the console and shown on kiosks.

* Sniffed by content (``filetype``), decoded with :func:`yiwang.uploads.open_image`
  (pixel limit, decompression bombs and broken files refused, EXIF orientation
  applied), flattened onto white, fitted into the kiosk banner size
  (``MAX_WIDTH`` × ``MAX_HEIGHT``, never enlarged) and re-encoded as JPEG
  without any metadata — in a worker process (``services.offload.run_isolated``).
* Kept in MongoDB (``content_images``, the bytes as BSON binary, well under 1 MB
  after re-encoding), so every server process serves them without a shared disk.
* Served publicly at ``/kiosk/media/<id>.jpg`` (random id, immutable), which the
  device agent proxies and caches like any kiosk page.
* A notice's draft refers to one by ``image = {"id", "width", "height"}``; the
  reference is versioned with the rest of the notice (publish, roll back).
"""

from __future__ import annotations

import io
import re
import uuid
from typing import TYPE_CHECKING, Any

import filetype
from bson.binary import Binary
from PIL import Image
from pymongo import ReturnDocument

from yiwang import content
from yiwang.errors import Conflict, InvalidInput, NotFound, TooLarge
from yiwang.store import Document, Store
from yiwang.timeutil import utcnow
from yiwang.uploads import open_image

if TYPE_CHECKING:
    from yiwang.runtime import Services

MAX_BYTES = 8 * 1024 * 1024
MAX_PIXELS = 24_000_000  # 6000 × 4000; anything larger is refused before decoding
MIN_SIDE = 64
MAX_WIDTH, MAX_HEIGHT = 1920, 1080  # landscape kiosk banner; portrait kiosks scale it to 1080 wide
ACCEPTED = frozenset({"image/jpeg", "image/png", "image/webp"})
_ID = re.compile(r"^[0-9a-f]{32}$")


def url(image_id: str) -> str:
    return f"/kiosk/media/{image_id}.jpg"


def process(data: bytes) -> tuple[bytes, int, int, str]:
    """Blocking: check, decode, fit, re-encode → (jpeg, width, height, sniffed type)."""
    if not data:
        raise InvalidInput("content_image.empty", "请选择图片文件", fields={"image": "文件为空"})
    if len(data) > MAX_BYTES:
        raise TooLarge("content_image.too_large", "图片不能超过 8 MB", fields={"image": "图片不能超过 8 MB"})
    kind = filetype.guess(data)
    mime = kind.mime if kind else ""
    if mime not in ACCEPTED:
        raise InvalidInput(
            "content_image.unsupported_type", "只能上传 JPG、PNG 或 WEBP 图片", fields={"image": "不是受支持的图片"}
        )
    try:
        image = open_image(data, max_pixels=MAX_PIXELS)
    except InvalidInput as error:
        raise InvalidInput(error.code, error.message, fields={"image": error.message}) from None
    if image.mode in ("RGBA", "LA", "P", "PA"):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        image = flat
    else:
        image = image.convert("RGB")
    if min(image.size) < MIN_SIDE:
        raise InvalidInput(
            "content_image.too_small", f"图片太小（短边至少 {MIN_SIDE} 像素）", fields={"image": "图片太小"}
        )
    image.thumbnail((MAX_WIDTH, MAX_HEIGHT), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85, optimize=True, progressive=True)  # no exif= → no metadata
    return out.getvalue(), image.size[0], image.size[1], mime


async def attach_to_draft(
    services: Services, content_id: str, data: bytes, *, by: str
) -> tuple[Document, Document]:
    """Check and keep an uploaded image, and put it on the notice's draft. Returns (before, after).

    Nothing is written unless the image is acceptable."""
    store = services.store
    before = await content.get(store, content_id)
    jpeg, width, height, mime = await services.offload.run_isolated(process, data)
    image_id = uuid.uuid4().hex
    await store["content_images"].insert_one(
        {"_id": image_id, "data": Binary(jpeg), "content_type": "image/jpeg", "width": width, "height": height,
         "size": len(jpeg), "source_type": mime, "source_size": len(data), "content_id": content_id,
         "created_at": utcnow(), "created_by": by}
    )  # fmt: skip
    ref = {"id": image_id, "width": width, "height": height}
    return before, await _set_draft_image(store, before, ref, by=by)


async def remove_from_draft(store: Store, content_id: str, *, by: str) -> tuple[Document, Document]:
    before = await content.get(store, content_id)
    return before, await _set_draft_image(store, before, None, by=by)


async def _set_draft_image(store: Store, before: Document, ref: dict[str, Any] | None, *, by: str) -> Document:
    after = await store["content"].find_one_and_update(
        {"_id": before["_id"], "updated_at": before.get("updated_at")},
        {"$set": {"draft.image": ref, "updated_at": utcnow(), "updated_by": by}},
        return_document=ReturnDocument.AFTER,
    )
    if after is None:
        raise Conflict("content.changed", "内容已被他人修改，请刷新后再试")
    return after


async def read(store: Store, image_id: str) -> tuple[str, bytes]:
    """(content type, bytes) of a stored image."""
    doc = await store["content_images"].find_one({"_id": image_id}) if _ID.match(image_id or "") else None
    if doc is None:
        raise NotFound("content_image.not_found", "找不到该图片")
    return str(doc["content_type"]), bytes(doc["data"])
