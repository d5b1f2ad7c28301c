"""OFD e-certificate files (GB/T 36905): vector card, GB/T 36903 metadata, SM2 seal
after GB/T 38540; checked by our verifier, by independent readers from PyPI
(ofdkit reads text and metadata, easyofd renders), over HTTP and on the command line."""

from __future__ import annotations

import datetime as dt
import functools
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from tests.fixtures.certs import WINDOW, holder_index, id_card_body, issue
from tests.mobile_support import LI, prepare
from tests.support.browser import ARTIFACTS
from tests.support.miniprogram import MiniProgram
from yiwang import certificates, departments, display_codes, qrdecode, verification
from yiwang.errors import InvalidInput, TooLarge, YiwangError
from yiwang.ofd import files as ofd_files
from yiwang.ofd import verifier

ROOT = Path(__file__).resolve().parent.parent


async def published(services) -> dict[str, Any]:
    return json.loads(json.dumps(await verification.published_keys_document(services), default=str))


def parts_of(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def zipped(parts: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, body in parts.items():
            archive.writestr(name, body)
    return out.getvalue()


def render_with_easyofd(data: bytes, name: str) -> tuple[Image.Image, str]:
    """easyofd (OFD → PDF with reportlab) then PyMuPDF (PDF → PNG and text), saved to tests/artifacts."""
    from loguru import logger

    logger.remove()  # easyofd logs every parsed element at DEBUG
    import pymupdf
    from easyofd.ofd import OFD
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    # easyofd falls back to a font registered as 宋体 (SimSun); Debian has none of that name.
    if "宋体" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont("宋体", "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", subfontIndex=0))
    reader = OFD()
    reader.read(data, fmt="binary")
    pdf = reader.to_pdf()
    document = pymupdf.open(stream=pdf, filetype="pdf")
    page = document[0]
    pixmap = page.get_pixmap(dpi=300)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pixmap.save(str(ARTIFACTS / f"{name}.png"))
    image = Image.open(io.BytesIO(pixmap.tobytes("png"))).convert("RGB")
    return image, page.get_text()


async def test_certificate_file_is_a_sealed_vector_ofd_with_its_metadata(services) -> None:
    doc = await issue(services)
    data = await ofd_files.certificate_ofd(services, doc)
    parts = parts_of(data)
    content = parts["Doc_0/Pages/Page_0/Content.xml"].decode()
    assert "李明轩" in content and "<ofd:TextObject" in content and "<ofd:PathObject" in content
    assert "<ofd:ImageObject" not in content  # vector text and paths, not one bitmap
    assert parts["Doc_0/Res/font_3.ttf"][:4] == b"\x00\x01\x00\x00"  # the embedded TrueType subset
    assert len(parts["Doc_0/Res/font_3.ttf"]) < 100_000
    report = verifier.verify_file(data, await published(services))
    assert report["valid"], report["problems"]
    assert report["seal"]["valid"] and report["seal"]["name"] == "广州市公安局电子证照专用章"
    assert report["issuer_key"]["kid"] == doc["signature"]["kid"]
    assert report["verification_qr"] == {
        "present": True, "signature_valid": True, "identifier": doc["identifier"], "matches": True
    }
    meta = report["metadata"]
    assert meta["证照标识"] == doc["identifier"]
    assert meta["证照类型代码"] == doc["type_code"] and meta["证照类型名称"] == "居民身份证"
    assert meta["颁发机构代码"] == doc["issuer"]["credit_code"] and meta["颁发机构"] == "广州市公安局"
    assert meta["证照编号"] == id_card_body()["number"] and meta["颁证日期"] == "2020-06-18"
    assert meta["有效期起始日期"] == "2020-06-18" and meta["有效期截止日期"] == doc["valid_until"]
    assert meta["持证主体"] == "李明轩" and meta["持证主体代码"] == "440106199406183318"  # the holder's own file
    assert meta["持证主体代码类型"].startswith("111") and meta["证照状态"] == "有效"


async def test_a_long_term_certificate_says_so_in_its_metadata(services) -> None:
    doc = await issue(services, id_card_body(valid_until=None))
    report = verifier.verify_file(await ofd_files.certificate_ofd(services, doc), await published(services))
    assert report["valid"] and report["metadata"]["有效期截止日期"] == "长期"


async def test_changing_any_byte_of_the_file_breaks_verification(services) -> None:
    doc = await issue(services)
    data = await ofd_files.certificate_ofd(services, doc)
    keys = await published(services)
    parts = parts_of(data)
    for name, body in parts.items():
        at = len(body) // 2
        changed = {**parts, name: body[:at] + bytes([body[at] ^ 0x01]) + body[at + 1 :]}
        try:
            report = verifier.verify_file(zipped(changed), keys)
        except InvalidInput:
            continue  # a part that no longer parses is refused outright: also not valid
        assert not report["valid"], name
    renamed = parts["OFD.xml"].replace("李明轩".encode(), "李明宣".encode())
    assert not verifier.verify_file(zipped({**parts, "OFD.xml": renamed}), keys)["valid"]
    extra = verifier.verify_file(zipped({**parts, "Doc_0/Res/extra.xml": b"<x/>"}), keys)
    assert not extra["valid"] and extra["signature"]["parts_unsigned"] == ["Doc_0/Res/extra.xml"]
    other = {"keys": [{**k, "public_key": "04" + "11" * 64} for k in keys["keys"]]}
    assert not verifier.verify_file(data, other)["valid"]  # not a published key


async def test_annotated_copy_file_has_the_watermark_and_copy_metadata(services) -> None:
    doc = await issue(services)
    copy = await certificates.make_copy_for_holder(services, holder_index(services), doc["_id"], WINDOW, "社保卡申领")
    data = await ofd_files.copy_ofd(services, copy, doc)
    assert copy["watermark"] in parts_of(data)["Doc_0/Pages/Page_0/Content.xml"].decode()
    report = verifier.verify_file(data, await published(services))
    assert report["valid"], report["problems"]
    meta = report["metadata"]
    assert meta["文件类型"] == "电子证照加注件" and meta["制作者"] == WINDOW.label and meta["制作事由"] == "社保卡申领"
    assert meta["制作时间"] and meta["加注件有效期截止"] > meta["制作时间"]
    assert meta["持证主体代码"] == "440106********3318" and meta["持证主体"] == "李**"  # a copy carries masks only


async def test_independent_readers_read_text_metadata_and_render_the_card(services) -> None:
    import ofdkit

    doc = await issue(services)
    copy = await certificates.make_copy_for_holder(services, holder_index(services), doc["_id"], WINDOW, "社保卡申领")
    data = await ofd_files.copy_ofd(services, copy, doc)
    with ofdkit.open(data) as document:
        text = document.text()
        custom = document.info.custom_data
    assert "李明轩" in text and "公民身份号码" in text and copy["watermark"] in text
    assert custom["证照标识"] == doc["identifier"] and custom["制作事由"] == "社保卡申领"
    image, rendered_text = render_with_easyofd(data, "ofd-copy-easyofd")
    assert "李明轩" in rendered_text and "广州市公安局" in rendered_text
    assert image.width > 2000  # 300 dpi over the card's 85.6 mm
    # the rendered QR (vector paths) scans back to the verification payload
    [drawn] = qrdecode.decode_texts(image)  # the verify page's URL, the signed payload inside
    assert verification.split_qr_text(drawn) == (verification.payload_for(doc), copy["_id"])
    small = image.resize((300, 260)).tobytes()
    red = sum(1 for i in range(0, len(small), 3) if small[i] > 180 and small[i + 1] < 60 and small[i + 2] < 60)
    assert red > 200  # the seal's picture from the SES_Seal is drawn where the StampAnnot says


async def test_holder_downloads_their_certificate_and_copies_as_ofd(services, client, fake_wechat) -> None:
    cards = await prepare(services)
    mp = MiniProgram(client, fake_wechat)
    await mp.login()
    await mp.bind(*LI)
    status, data, response = await client.get(f"/api/mobile/v1/certificates/{cards['李明轩']}/file", headers=mp.headers)
    assert status == 200 and response.content_type == "application/ofd" and data[:2] == b"PK"
    assert verifier.verify_file(data, await published(services))["valid"]
    status, _, _ = await client.get(f"/api/mobile/v1/certificates/{cards['王静怡']}/file", headers=mp.headers)
    assert status == 404  # another resident's certificate does not exist for you
    entries = await services.store["audit"].count_documents({"action": "certificate.download"})
    assert entries == 1


async def test_redeemer_gets_the_copy_as_ofd(services, client) -> None:
    window = await departments.create_credential(services.store, "gz-psb", "window", "广州市公安局 · 2 号窗口")
    doc = await issue(services)
    code = await display_codes.create_display_code(services, holder_index(services), doc["_id"], "户籍业务")
    auth = {"Authorization": f"Bearer {window}"}
    redeem = "/api/redeem/v1/display-codes/redeem"
    status, body, _ = await client.post(redeem, json={"code": code["code"]}, headers=auth)
    assert status == 200
    status, data, response = await client.get(f"/api/redeem/v1/copies/{body['copy']['id']}.ofd", headers=auth)
    assert status == 200 and response.content_type == "application/ofd"
    report = verifier.verify_file(data, await published(services))
    assert report["valid"] and report["metadata"]["制作事由"] == "户籍业务"


async def test_uploaded_file_is_verified_with_its_live_status(services, client) -> None:
    doc = await issue(services)
    data = await ofd_files.certificate_ofd(services, doc)
    status, report, _ = await client.post(
        "/api/verify/v1/file", data=data, headers={"Content-Type": "application/ofd"}
    )
    assert status == 200 and report["valid"] and report["live"]["status"] == "valid"
    assert report["metadata"]["持证主体代码"] == "440106********3318"  # masked in the report
    assert "核验码" not in report["metadata"]
    await certificates.change_status(services, "gz-psb", doc["identifier"], "revoked", "信息有误")
    form = aiohttp.FormData()
    form.add_field("file", data, filename="card.ofd", content_type="application/ofd")
    status, report, _ = await client.post("/api/verify/v1/file", data=form)
    assert status == 200 and report["file_valid"] and not report["valid"]
    assert report["live"]["status"] == "revoked"


async def test_malformed_uploads_get_clear_errors(services, client) -> None:
    doc = await issue(services)
    parts = parts_of(await ofd_files.certificate_ofd(services, doc))
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("OFD.xml", b"\0" * (20 * 1024 * 1024))
    cases = [
        (b"", 400, "ofd.file_required"),
        (b"hello, not a zip", 400, "ofd.not_zip"),
        (b"PK\x03\x04" + b"\0" * 200, 400, "ofd.not_zip"),
        (bomb.getvalue(), 400, "ofd.zip_bomb"),
        (zipped({k: v for k, v in parts.items() if k != "Doc_0/Document.xml"}), 400, "ofd.part_missing"),
        (zipped({k: v for k, v in parts.items() if not k.endswith("SignedValue.dat")}), 400, "ofd.part_missing"),
        (zipped({**parts, "OFD.xml": b"<ofd:OFD"}), 400, "ofd.malformed"),
        (zipped({**parts, "OFD.xml": b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>'}), 400, "ofd.malformed"),
        (zipped({**parts, "Doc_0/Signs/Sign_0/SignedValue.dat": b"\x30\x03\x02\x01\x04"}), 400, "ofd.malformed"),
        (b"PK\x03\x04" + b"\0" * (5 * 1024 * 1024), 413, "ofd.too_large"),
    ]
    for body, expected_status, code in cases:
        status, answer, _ = await client.post(
            "/api/verify/v1/file", data=body, headers={"Content-Type": "application/octet-stream"}
        )
        assert (status, answer["error"]["code"]) == (expected_status, code), code
    with pytest.raises(TooLarge):
        verifier.unpack(b"PK\x03\x04" + b"\0" * (5 * 1024 * 1024))


async def test_command_verifies_a_file_offline(services, tmp_path) -> None:
    doc = await issue(services)
    data = await ofd_files.certificate_ofd(services, doc)
    (tmp_path / "keys.json").write_text(json.dumps(await published(services)), encoding="utf-8")
    (tmp_path / "card.ofd").write_bytes(data)
    parts = parts_of(data)
    content = "Doc_0/Pages/Page_0/Content.xml"
    tampered = {**parts, content: parts[content].replace("李明轩".encode(), "李明宣".encode())}
    (tmp_path / "tampered.ofd").write_bytes(zipped(tampered))
    (tmp_path / "junk.ofd").write_bytes(b"junk")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "yiwang.ofd", *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
            check=False,
        )

    assert "--keys" in run("verify", "--help").stdout
    good = run("verify", str(tmp_path / "card.ofd"), "--keys", str(tmp_path / "keys.json"))
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["metadata"]["证照标识"] == doc["identifier"]
    bad = run("verify", str(tmp_path / "tampered.ofd"), "--keys", str(tmp_path / "keys.json"))
    assert bad.returncode == 1 and content in json.loads(bad.stdout)["signature"]["parts_changed"]
    junk = run("verify", str(tmp_path / "junk.ofd"), "--keys", str(tmp_path / "keys.json"))
    assert junk.returncode == 2 and json.loads(junk.stdout)["error"]["code"] == "ofd.not_zip"



@functools.cache
def sample_file() -> tuple[bytes, str]:
    """One sealed OFD built without a database (as bench/ofd.py does), and its keys JSON."""
    from bench.ofd import sample
    from yiwang.ofd import seal, writer
    from yiwang.ofd.files import metadata_for

    _, view, qr_text, signer, kid = sample()
    dept = departments.department("gz-psb")
    content = writer.content_for(view, {}, qr_text, watermark="仅供办理测试使用 2026-12-02")
    meta = metadata_for(view, holder_name="李明轩", holder_code="440106199406183318", qr_text=qr_text)
    request = writer.PackageRequest(
        "t", "居民身份证", dept.name, content, meta, seal.Issuer(dept.code, dept.name, dept.credit_code), kid, signer,
        dt.datetime.now(dt.UTC),
    )
    keys = {"keys": [{"kid": kid, "public_key": signer.public_key_raw().hex(), "department": {
        "code": dept.code, "name": dept.name, "credit_code": dept.credit_code}, "status": "active"}]}
    return writer.build_package(request), json.dumps(keys)


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=0), st.integers(min_value=1, max_value=255), st.booleans())
def test_a_damaged_file_is_refused_or_invalid_unless_its_parts_are_intact(position: int, xor: int, cut: bool) -> None:
    data, keys = sample_file()
    assert verifier.verify_file(data, json.loads(keys))["valid"]
    at = position % len(data)
    damaged = data[:at] if cut else data[:at] + bytes([data[at] ^ xor]) + data[at + 1 :]
    try:
        report = verifier.verify_file(damaged, json.loads(keys))
    except YiwangError as exc:
        assert exc.code.startswith("ofd.")
        return
    # a byte of the zip container itself (a timestamp, a name's flag) is not part of the document:
    # valid only if every part is still byte for byte what was signed
    assert not report["valid"] or parts_of(damaged) == parts_of(data)
