"""Resource limits: what a stranger (or a resident) can make the server hold.

* image bombs are refused by a pixel budget that fits the purpose, and images are decoded
  in a worker process, so the server's own memory does not grow with what is decoded;
* bodies: the declared length and the login are checked before the body is read; too
  large is 413 in the JSON error shape;
* uploads are re-encoded (images) or parsed (PDF) and served back as sandboxed downloads.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
from typing import Any

import pytest
from PIL import Image

from tests.conftest import Client
from tests.mobile_support import LI, prepare
from tests.support.miniprogram import PREFIX, MiniProgram


@pytest.fixture
async def resident(services: Any, client: Client, fake_wechat: Any) -> MiniProgram:
    await prepare(services)
    mp = MiniProgram(client, fake_wechat)
    await mp.login()
    await mp.bind(*LI)
    return mp


def _png(size: tuple[int, int], mode: str = "1") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size).save(out, "PNG")
    return out.getvalue()


def _pdf(tail: bytes = b"") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (200, 280), "white").save(out, "PDF")
    return out.getvalue() + tail


def _peak_rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


async def test_a_40_megapixel_png_of_a_few_kilobytes_is_refused_for_a_document_photo(resident: MiniProgram) -> None:
    bomb = _png((6320, 6320))  # the attack's 131 KB PNG: 40 MP, 1.9 s and 256 MB to decode in-process
    assert len(bomb) < 200_000
    refused = await resident.upload(bomb, expect=400)
    assert refused["error"]["code"] == "upload.too_many_pixels"


async def test_decoding_an_upload_does_not_grow_the_servers_memory(resident: MiniProgram) -> None:
    photo = _png((4000, 3800), "RGB")  # 15 MP, allowed: 45 MB of pixels once decoded
    await resident.upload(_png((64, 64), "RGB"))  # the worker pool is up
    before = _peak_rss_kb()
    uploaded = await resident.upload(photo)
    assert uploaded["content_type"] == "image/jpeg" and uploaded["width"] == 4000
    assert _peak_rss_kb() - before < 30_000  # the pixels lived in a worker process, not here


def _raw(server: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send the head of a request (and maybe a little body) on a bare socket; read the answer."""
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
    answer = b"".join(chunks)
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split(" ")[1]), headers, body


def _head(path: str, length: int, extra: str = "", content_type: str = "application/json") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n"
        f"{extra}Connection: close\r\n\r\n"
    ).encode() + b"{"


async def test_a_40_mb_body_to_a_public_endpoint_is_a_413_in_the_error_shape(server: str) -> None:
    status, headers, body = await asyncio.to_thread(_raw, server, _head(PREFIX + "/session", 40 * 1024 * 1024))
    assert status == 413
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body)["error"]["code"] == "request.too_large"


async def test_an_upload_from_a_stranger_is_refused_before_its_body_is_read(server: str) -> None:
    request = _head(PREFIX + "/uploads", 9 * 1024 * 1024, content_type="multipart/form-data; boundary=x")
    status, _, body = await asyncio.to_thread(_raw, server, request)
    assert status == 401  # answered from the head alone: the 9 MB never came
    assert json.loads(body)["error"]["code"].startswith("auth.")


async def test_an_upload_larger_than_allowed_is_refused_from_its_declared_length(
    server: str, resident: MiniProgram
) -> None:
    request = _head(PREFIX + "/uploads", 40 * 1024 * 1024, f"Authorization: Bearer {resident.token}\r\n",
                    "multipart/form-data; boundary=x")  # fmt: skip
    status, _, body = await asyncio.to_thread(_raw, server, request)
    assert status == 413 and json.loads(body)["error"]["code"] == "request.too_large"


async def test_a_json_body_over_the_small_limit_is_a_413(client: Client) -> None:
    status, body, _ = await client.post(PREFIX + "/session", json={"code": "x" * 300_000})
    assert status == 413 and body["error"]["code"] == "request.too_large"


async def test_an_uploaded_file_is_served_back_as_a_sandboxed_download(resident: MiniProgram) -> None:
    polyglot = _pdf(b"<html><script>alert(document.cookie)</script></html>\n%%EOF\n")  # a PDF and a page
    pdf = await resident.upload(polyglot, filename="scan.html")
    photo = await resident.upload(_png((64, 64), "RGB"))
    for upload in (pdf, photo):
        status, _, response = await resident.client.get(f"{PREFIX}/uploads/{upload['id']}", headers=resident.headers)
        assert status == 200
        assert response.headers["Content-Disposition"].startswith("attachment")
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in response.headers["Content-Security-Policy"]


async def test_a_pdf_is_checked_as_a_pdf(resident: MiniProgram) -> None:
    fake = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"  # the magic bytes, no document
    assert (await resident.upload(fake, expect=400))["error"]["code"] == "upload.corrupt"
    scripted = _pdf().replace(b"/Type /Catalog", b"/Type /Catalog /OpenAction << /S /JavaScript /JS (app.alert(1)) >>")
    assert (await resident.upload(scripted, expect=400))["error"]["code"] in (
        "upload.pdf_active_content", "upload.corrupt",
    )  # fmt: skip
    assert (await resident.upload(_pdf()))["content_type"] == "application/pdf"
