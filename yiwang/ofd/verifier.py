"""Offline verification of an OFD e-certificate file: safe unpacking, the OFD
signature (SM3 digests of every part, the SES_Signature and its seal), the issuer
key against the published keys, the GB/T 36903 metadata and the verification QR.

Plain and blocking (no store, no network): :func:`verify_file` takes the file's
bytes and the JSON of ``GET /api/verify/v1/keys``. The live status is added by
:func:`yiwang.ofd.files.check_file` online.
"""

from __future__ import annotations

import base64
import binascii
import io
import posixpath
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree as ET

from yiwang import verification
from yiwang.crypto import sm3
from yiwang.errors import InvalidInput, TooLarge
from yiwang.ofd import seal

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_ENTRIES = 200
MAX_PART_BYTES = 8 * 1024 * 1024
MAX_TOTAL_BYTES = 32 * 1024 * 1024
MAX_RATIO = 100  # a part that inflates more than this is a zip bomb
NS = {"ofd": "http://www.ofdspec.org/2016"}


def _bad(code: str, message: str) -> InvalidInput:
    return InvalidInput(f"ofd.{code}", message, fields={"file": message})


@dataclass
class Package:
    parts: dict[str, bytes]

    def get(self, path: str, *, base: str = "") -> bytes:
        name = resolve(path, base)
        if name not in self.parts:
            raise _bad("part_missing", f"文件缺少必需的部分：{name}")
        return self.parts[name]


def resolve(path: str, base: str = "") -> str:
    """An OFD location (absolute from the package root, or relative to ``base``) as a zip name."""
    path = path.strip()
    joined = path.lstrip("/") if path.startswith("/") else posixpath.join(base, path)
    name = posixpath.normpath(joined)
    if name.startswith("..") or name.startswith("/") or name == ".":
        raise _bad("malformed", "文件内的路径不合法")
    return name


def unpack(data: bytes) -> Package:
    """The zip's parts, with limits on size, count and inflation; clear 4xx otherwise."""
    if not isinstance(data, bytes) or not data:
        raise _bad("file_required", "请上传 OFD 文件")
    if len(data) > MAX_FILE_BYTES:
        raise TooLarge("ofd.too_large", f"文件过大（最多 {MAX_FILE_BYTES // (1024 * 1024)} MB）")
    if not data.startswith(b"PK\x03\x04"):
        raise _bad("not_zip", "这不是 OFD 文件（OFD 是 ZIP 格式的版式文档）")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError):
        raise _bad("not_zip", "文件已损坏，无法作为 OFD 打开") from None
    if len(infos) > MAX_ENTRIES:
        raise _bad("zip_bomb", "文件包含的部分过多")
    parts: dict[str, bytes] = {}
    total = 0
    for info in infos:
        if info.is_dir():
            continue
        name = info.filename
        if name in parts or name.startswith("/") or ".." in name.split("/") or "\\" in name:
            raise _bad("malformed", "文件内的路径不合法或重复")
        if info.file_size > MAX_PART_BYTES or info.file_size > max(info.compress_size, 1) * MAX_RATIO:
            raise _bad("zip_bomb", "文件解压后过大（疑似压缩炸弹）")
        total += info.file_size
        if total > MAX_TOTAL_BYTES:
            raise _bad("zip_bomb", "文件解压后过大（疑似压缩炸弹）")
        try:
            with archive.open(info) as stream:
                body = stream.read(info.file_size + 1)  # never more than the header promised
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, zlib.error, EOFError, ValueError):
            raise _bad("not_zip", "文件已损坏，无法作为 OFD 打开") from None
        if len(body) != info.file_size:
            raise _bad("zip_bomb", "文件内容与其目录不符")
        parts[name] = body
    return Package(parts)


def _xml(pkg: Package, path: str, *, base: str = "") -> ET.Element:
    raw = pkg.get(path, base=base)
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
        raise _bad("malformed", "文件内的 XML 不允许 DTD 或实体")
    try:
        return ET.fromstring(raw)
    except ET.ParseError:
        raise _bad("malformed", f"文件内的 XML 无法解析：{resolve(path, base)}") from None


def _text(element: ET.Element | None, path: str) -> str:
    found = element.find(path, NS) if element is not None else None
    return (found.text or "").strip() if found is not None else ""


def read_metadata(pkg: Package) -> tuple[ET.Element, dict[str, str]]:
    """The OFD.xml DocBody and its CustomDatas (GB/T 36903 metadata)."""
    root = _xml(pkg, "OFD.xml")
    body = root.find("ofd:DocBody", NS)
    if body is None:
        raise _bad("part_missing", "OFD.xml 缺少 DocBody")
    metadata: dict[str, str] = {}
    for item in body.findall("ofd:DocInfo/ofd:CustomDatas/ofd:CustomData", NS):
        name = item.get("Name")
        if name:
            metadata[name] = (item.text or "").strip()
    return body, metadata


def keys_by_public_key(published: Any) -> dict[str, Mapping[str, Any]]:
    """{public key hex: published key entry} from the JSON of GET /api/verify/v1/keys."""
    items = published.get("keys", []) if isinstance(published, Mapping) else published
    if not isinstance(items, list):
        raise InvalidInput("verification.keys_invalid", "公钥列表格式不正确")
    found: dict[str, Mapping[str, Any]] = {}
    for item in items:
        if isinstance(item, Mapping) and isinstance(item.get("public_key"), str):
            found[item["public_key"].lower()] = item
    return found


def verify_file(data: bytes, published_keys: Any) -> dict[str, Any]:
    """Everything a verifier needs to know about one OFD file, checked offline.

    ``valid`` is true only if every part is covered by the signature with a
    matching SM3 digest, both SM2 signatures (document and seal) hold, and the
    signer's key is one of the published keys of the department named in the
    metadata.
    """

    pkg = unpack(data)
    body, metadata = read_metadata(pkg)
    doc_root = _text(body, "ofd:DocRoot")
    if not doc_root:
        raise _bad("part_missing", "OFD.xml 缺少 DocRoot")
    _xml(pkg, doc_root)  # the document must at least parse
    signatures_loc = _text(body, "ofd:Signatures")
    problems: list[str] = []
    result: dict[str, Any] = {"metadata": metadata, "problems": problems}
    if not signatures_loc:
        result.update(
            valid=False, signed=False, signature={"valid": False}, seal={"valid": False}, issuer_key={"known": False}
        )
        problems.append("文件没有电子签章")
        return result
    signatures_name = resolve(signatures_loc)
    signatures = _xml(pkg, signatures_name)
    entry = signatures.find("ofd:Signature", NS)
    if entry is None or not entry.get("BaseLoc"):
        raise _bad("part_missing", "签名列表为空")
    signature_name = resolve(entry.get("BaseLoc", ""), posixpath.dirname(signatures_name))
    signature_xml = pkg.get(signature_name)
    signature = _xml(pkg, signature_name)
    signed_info = signature.find("ofd:SignedInfo", NS)
    value_loc = _text(signature, "ofd:SignedValue")
    if signed_info is None or not value_loc:
        raise _bad("part_missing", "签名缺少 SignedInfo 或 SignedValue")
    value_name = resolve(value_loc, posixpath.dirname(signature_name))
    signed_value = pkg.get(value_name)
    # 1. the parts: every one referenced, every digest right
    refs = signed_info.find("ofd:References", NS)
    if refs is None or refs.get("CheckMethod", seal.SM3_OID) not in (seal.SM3_OID, "SM3"):
        raise _bad("malformed", "签名的摘要算法不是 SM3")
    covered: set[str] = set()
    mismatched: list[str] = []
    for ref in refs.findall("ofd:Reference", NS):
        name = resolve(ref.get("FileRef", ""))
        covered.add(name)
        expected = _text(ref, "ofd:CheckValue")
        try:
            digest = base64.b64decode(expected, validate=True)
        except (binascii.Error, ValueError):
            digest = b""
        if name not in pkg.parts or digest != sm3(pkg.parts[name]):
            mismatched.append(name)
    unsigned = sorted(set(pkg.parts) - covered - {signature_name, value_name})
    if mismatched:
        problems.append("以下部分被改动：" + "、".join(sorted(mismatched)))
    if unsigned:
        problems.append("以下部分不在签名范围内：" + "、".join(unsigned))
    if "OFD.xml" not in covered or resolve(doc_root) not in covered:
        problems.append("签名未覆盖文档主体")
    # 2. the SES_Signature and its seal
    try:
        parsed = seal.parse_signature(signed_value)
    except ValueError:
        raise _bad("malformed", "电子签章数据（SES_Signature）无法解析") from None
    hash_ok = parsed.data_hash == sm3(signature_xml)
    if not hash_ok:
        problems.append("签名信息（Signature.xml）被改动")
    if not parsed.signature_valid:
        problems.append("电子签名无效")
    if not parsed.seal_valid:
        problems.append("电子印章无效")
    seal_in_time = parsed.seal_valid_from <= parsed.signed_at <= parsed.seal_valid_until
    if not seal_in_time:
        problems.append("签章时电子印章不在有效期内")
    # 3. the issuer key: published, of the department the metadata names
    known = keys_by_public_key(published_keys).get(parsed.signer_public_key.hex())
    department = dict(known.get("department") or {}) if known else {}
    issuer_matches = bool(known) and department.get("credit_code") == metadata.get("颁发机构代码")
    if not known:
        problems.append("签章密钥不在公布的部门公钥中")
    elif not issuer_matches:
        problems.append("签章部门与证照颁发机构不一致")
    # 4. the verification QR carried in the metadata, signed over the certificate core
    qr: dict[str, Any] = {"present": bool(metadata.get("核验码"))}
    if qr["present"]:
        try:
            facts = verification.verify_offline(metadata["核验码"], published_keys)
            qr.update(
                signature_valid=facts["signature_valid"],
                identifier=facts["identifier"],
                matches=facts["identifier"] == metadata.get("证照标识")
                and facts["valid_from"] == metadata.get("有效期起始日期")
                and (facts["valid_until"] or "长期") == metadata.get("有效期截止日期"),
            )
        except InvalidInput:
            qr.update(signature_valid=False, matches=False)
        if not (qr.get("signature_valid") and qr.get("matches")):
            problems.append("证面核验码与元数据不一致或签名无效")
    references_ok = not mismatched and not unsigned and "OFD.xml" in covered
    signature_ok = references_ok and hash_ok and parsed.signature_valid
    result.update(
        signed=True,
        valid=signature_ok and parsed.seal_valid and seal_in_time and issuer_matches and qr.get("matches", True),
        signature={
            "valid": signature_ok,
            "algorithm": "SM2-SM3 (GB/T 38540 SES_Signature)",
            "signed_at": parsed.signed_at,
            "parts_checked": len(covered),
            "parts_changed": sorted(mismatched),
            "parts_unsigned": unsigned,
        },
        seal={
            "valid": parsed.seal_valid and seal_in_time,
            "name": parsed.seal_name,
            "id": parsed.seal_id,
            "valid_from": parsed.seal_valid_from,
            "valid_until": parsed.seal_valid_until,
            "picture_type": parsed.seal_picture_type,
        },
        issuer_key={
            "known": bool(known),
            "kid": known.get("kid") if known else None,
            "status": known.get("status") if known else None,
            "department": department or None,
            "matches_metadata": issuer_matches,
        },
        verification_qr=qr,
    )
    return result
