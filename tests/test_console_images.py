"""Images on notices and banners: sniffed, limited, EXIF stripped, fitted to kiosk banner size,
stored, served to kiosks, versioned with the notice."""

from __future__ import annotations

import io
import re
import zlib
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from PIL import Image

from tests.console_support import Browserless, prepare
from yiwang import content, content_images
from yiwang.errors import InvalidInput, TooLarge
from yiwang.runtime import Services


def jpeg_with_exif(size: tuple[int, int] = (3000, 2000)) -> bytes:
    image = Image.new("RGB", size, (200, 30, 30))
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x0132] = "2026:11:01 09:00:00"  # DateTime
    exif[0x8825] = {2: (23.0, 7.0, 0.0)}  # GPS latitude
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


def png_bomb(width: int = 30_000, height: int = 30_000) -> bytes:
    """A tiny PNG whose header claims 900 million pixels (the compressed rows are a few KB)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([1, 0, 0, 0, 0])  # 1-bit grey
    rows = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def test_reencoding_strips_exif_and_fits_the_banner_size() -> None:
    original = jpeg_with_exif()
    assert b"SecretCam" in original
    jpeg, width, height, mime = content_images.process(original)
    assert mime == "image/jpeg" and (width, height) == (1620, 1080)
    assert b"SecretCam" not in jpeg
    with Image.open(io.BytesIO(jpeg)) as shown:
        assert shown.size == (1620, 1080) and not shown.getexif() and "exif" not in shown.info


def test_bomb_non_image_oversized_and_tiny_images_are_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        content_images.process(png_bomb())
    assert caught.value.code == "upload.too_many_pixels" and "image" in (caught.value.fields or {})
    with pytest.raises(InvalidInput) as caught:
        content_images.process(b"%PDF-1.4 not an image at all" + b"\0" * 100)
    assert caught.value.code == "content_image.unsupported_type"
    with pytest.raises(TooLarge):
        content_images.process(b"\xff\xd8\xff" + b"\0" * (content_images.MAX_BYTES + 1))
    small = io.BytesIO()
    Image.new("RGB", (20, 20)).save(small, "PNG")
    with pytest.raises(InvalidInput) as caught:
        content_images.process(small.getvalue())
    assert caught.value.code == "content_image.too_small"


@pytest_asyncio.fixture
async def console(services: Services, server: str) -> AsyncIterator[str]:
    await prepare(services)
    yield server


async def upload(c: Browserless, content_id: str, data: bytes, name: str = "banner.jpg") -> tuple[int, str]:
    import aiohttp

    form = aiohttp.FormData()
    form.add_field("_xsrf", c.token)
    form.add_field("image", data, filename=name, content_type="image/jpeg")
    async with c.session.post(f"{c.base}/console/notices/{content_id}/image", data=form,
                              headers={"Accept": "text/html"}) as r:  # fmt: skip
        return r.status, await r.text()


async def test_manager_adds_an_image_that_the_kiosk_shows_and_bad_files_change_nothing(
    console: str, services: Services
) -> None:
    c = Browserless(console)
    try:
        await c.login("th_hall")
        await c.get("/console/notices/new")
        status, page = await c.post("/console/notices", {
            "kind": "banner", "title": "新春服务安排", "body_html": "<p>春节期间正常办理</p>", "level": "info",
            "target_scope": "hall", "target_hall": "gz-th-center",
        })  # fmt: skip
        assert status == 200
        content_id = re.search(r'action="/console/notices/([0-9a-f]{32})/image"', page).group(1)  # type: ignore[union-attr]

        for bad, code_status in ((png_bomb(), 400), (b"GIF89a-not-really" + b"\0" * 64, 400)):
            status, page = await upload(c, content_id, bad)
            assert status == code_status and "alert" in page
        assert await services.store["content_images"].count_documents({}) == 0
        assert (await content.get(services.store, content_id))["draft"].get("image") is None

        status, page = await upload(c, content_id, jpeg_with_exif())
        assert status == 200 and 'id="notice-image"' in page
        image_id = re.search(r"/kiosk/media/([0-9a-f]{32})\.jpg", page).group(1)  # type: ignore[union-attr]
        # Saving the text again keeps the image on the draft.
        await c.post(f"/console/notices/{content_id}", {
            "title": "新春服务安排（更新）", "body_html": "<p>春节期间正常办理</p>", "level": "info",
            "target_scope": "hall", "target_hall": "gz-th-center",
        })  # fmt: skip
        assert (await content.get(services.store, content_id))["draft"]["image"]["id"] == image_id
        await c.post(f"/console/notices/{content_id}/publish", {})

        status, kiosk = await c.get("/kiosk/?hall=gz-th-center")
        assert f'src="/kiosk/media/{image_id}.jpg"' in kiosk
        async with c.session.get(f"{c.base}/kiosk/media/{image_id}.jpg") as r:
            assert r.status == 200 and r.headers["Content-Type"] == "image/jpeg"
            assert r.headers["X-Kiosk-Cache"] == "public" and "immutable" in r.headers["Cache-Control"]
            served = await r.read()
        assert b"SecretCam" not in served
        with Image.open(io.BytesIO(served)) as shown:
            assert max(shown.size) <= 1920 and not shown.getexif()
        async with c.session.get(f"{c.base}/kiosk/media/{'0' * 32}.jpg") as r:
            assert r.status == 404

        entries = [e async for e in services.store["audit"].find({"action": "content.image_add"})]
        assert len(entries) == 1 and entries[0]["detail"]["after"]["image"] == image_id
        assert entries[0]["detail"]["before"]["image"] is None
    finally:
        await c.close()

    other = Browserless(console)
    try:
        await other.login("yx_hall")
        await other.get("/console/notices")
        status, _ = await upload(other, content_id, jpeg_with_exif((800, 600)))
        assert status == 403
    finally:
        await other.close()
    assert await services.store["content_images"].count_documents({}) == 1
