"""Verification QR codes (核验码) printed on every copy, and their checks.

Signed payload: ``YWV1:`` + Base45( CBOR array ``[core, signature]`` ), where
``core`` is the byte string of the certificate's signed core (canonical CBOR,
see :func:`yiwang.certificates.signed_core`) and ``signature`` the issuing
department's SM2 signature (DER) over SM3(core). Base45 keeps the text in the
QR alphanumeric set, as the EU digital COVID certificates do.

A printed copy's QR holds a URL that anyone's phone opens (WeChat's scanner included):
``<PUBLIC_URL>/verify?c=<the payload, percent-encoded>&copy=<copy id>`` (:func:`qr_url_for`). The
signed payload stays inside it, so it still verifies offline; every reader here
(:func:`decode_payload`, :func:`verify_offline`, the OFD verifier, ``python -m yiwang.verification``)
accepts both the URL and the bare ``YWV1:`` text.

* :func:`verify_offline` needs only the published keys (``GET /api/verify/v1/keys``).
* :func:`check_online` also looks up the live status (a revoked certificate
  shows revoked) and records the check in the holder's access history.
"""

from __future__ import annotations

import binascii
import re
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import base45
import cbor2

from yiwang import audit, certificates, departments, qrdecode
from yiwang.crypto import sm2_verify
from yiwang.errors import InvalidInput
from yiwang.timeutil import utcnow
from yiwang.versioned import Rendered

if TYPE_CHECKING:
    from yiwang.runtime import Services
    from yiwang.store import Document

PREFIX = "YWV1:"
MAX_TEXT = 1200
MAX_URL = 3 * MAX_TEXT + 300  # percent-encoding triples a character at most
_COPY_ID = re.compile(r"^[0-9a-f]{32}$")
PUBLIC = audit.Actor("public", "public", "公众扫码核验")


def payload_for(doc: Mapping[str, Any]) -> str:
    """The verification QR text of one stored certificate version."""
    core = certificates.signed_core(doc)
    signature = bytes.fromhex(doc["signature"]["value"])
    return PREFIX + base45.b45encode(cbor2.dumps([core, signature])).decode("ascii")


def qr_url_for(doc: Mapping[str, Any], public_url: str, copy_id: str | None = None) -> str:
    """What a printed copy's QR holds: the verification page's URL with the signed payload inside."""
    query = {"c": payload_for(doc), **({"copy": copy_id} if copy_id else {})}
    return f"{public_url.rstrip('/')}/verify?" + urllib.parse.urlencode(query, safe=":", quote_via=urllib.parse.quote)


def qr_text_from(c: str, copy_id: str | None) -> str:
    """The verify page's own query (``?c=…&copy=…``) back as the QR text it came from."""
    if copy_id and not c.strip().lower().startswith(("http://", "https://")):
        query = urllib.parse.urlencode({"c": c, "copy": copy_id}, safe=":", quote_via=urllib.parse.quote)
        return "https://verify.invalid/verify?" + query  # only the query matters
    return c


def split_qr_text(text: Any) -> tuple[Any, str | None]:
    """(the ``YWV1:`` payload, the copy id or None) from either form of QR text; anything else unchanged."""
    if not isinstance(text, str):
        return text, None
    stripped = text.strip()
    if not stripped.lower().startswith(("http://", "https://")):
        return stripped, None
    if len(stripped) > MAX_URL:
        raise _invalid("核验码过长")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(stripped).query)
    payload = (query.get("c") or [""])[0]
    if not payload:
        raise _invalid("这不是一网电子证照核验码")
    copy_id = (query.get("copy") or [""])[0]
    return payload, copy_id if _COPY_ID.match(copy_id) else None


def _invalid(message: str = "核验码无法识别") -> InvalidInput:
    return InvalidInput("verification.payload_invalid", message, fields={"c": message})


def decode_payload(text: Any) -> tuple[bytes, dict[int, Any], bytes]:
    """(core bytes, core map, signature); raises a clear 400 for anything else."""
    text, _copy = split_qr_text(text)
    if not isinstance(text, str) or not text.strip():
        raise _invalid("缺少核验码")
    text = text.strip()
    if len(text) > MAX_TEXT:
        raise _invalid("核验码过长")
    if not text.upper().startswith(PREFIX):
        raise _invalid("这不是一网电子证照核验码")
    try:
        raw = base45.b45decode(text[len(PREFIX) :].upper())
        outer = cbor2.loads(raw)
        core_bytes, signature = outer
        core = cbor2.loads(core_bytes)
    except (ValueError, TypeError, binascii.Error, cbor2.CBORDecodeError):
        raise _invalid() from None
    if not isinstance(core_bytes, bytes) or not isinstance(signature, bytes) or not isinstance(core, dict):
        raise _invalid()
    expected = {1: str, 2: str, 3: str, 4: bytes, 5: str, 6: str, 8: bytes}
    if any(not isinstance(core.get(k), kind) for k, kind in expected.items()) or not (
        core.get(7) is None or isinstance(core.get(7), str)
    ):
        raise _invalid()
    certificates.parse_identifier(certificates.ROOT_CODE + "." + core[1])  # wrong check character → clear 400
    return core_bytes, core, signature


def _describe(core: Mapping[int, Any]) -> dict[str, Any]:
    ident = certificates.parse_identifier(certificates.ROOT_CODE + "." + core[1])
    ctype = certificates.type_by_type_code(ident.type_code)
    issuer = departments.department_by_credit_code(ident.issuer_code)
    return {
        "identifier": str(ident),
        "version": ident.version,
        "type_code": ident.type_code,
        "type_name": ctype.name if ctype else None,
        "issuer_code": ident.issuer_code,
        "issuer_name": issuer.name if issuer else None,
        "holder_masked": core[2],
        "holder_code_type": core[3],
        "fields_digest": core[4].hex(),
        "issued_on": core[5],
        "valid_from": core[6],
        "valid_until": core[7],
        "kid": core[8].hex(),
    }


def keys_by_kid(published: Any) -> dict[str, str]:
    """Accept the JSON of GET /api/verify/v1/keys (or its "keys" list) → {kid: public key hex}."""
    items = published.get("keys", []) if isinstance(published, Mapping) else published
    return {k["kid"]: k["public_key"] for k in items}


def verify_offline(text: str, published_keys: Any) -> dict[str, Any]:
    """Verify a scanned QR with the published keys only (no network, no DB).

    Returns the decoded facts and ``signature_valid``; the live status needs
    :func:`check_online`.
    """
    core_bytes, core, signature = decode_payload(text)
    facts = _describe(core)
    public_hex = keys_by_kid(published_keys).get(facts["kid"])
    facts["signature_valid"] = bool(public_hex) and sm2_verify(
        bytes.fromhex(public_hex or ""), certificates.signing_message(core_bytes), signature
    )
    return facts


async def check_online(services: Services, text: str, *, actor: audit.Actor = PUBLIC) -> dict[str, Any]:
    """Verify the signature and report the live status; recorded as an access.

    A printed copy's URL also names the copy: the result then carries ``copy`` (制作事由, 制作者,
    制作时间, 有效期至, and whether the copy is still valid), looked up live."""
    _payload, copy_id = split_qr_text(text)
    core_bytes, core, signature = decode_payload(text)
    facts = _describe(core)
    key = await departments.public_key(services, facts["kid"])
    signature_valid = key is not None and await services.offload.run(
        sm2_verify, bytes.fromhex(key["public_key"]), certificates.signing_message(core_bytes), signature
    )
    doc: Document | None = None
    if signature_valid:
        doc = await services.store["certificates"].find_one({"identifier": facts["identifier"]})
        if doc is not None and certificates.signed_core(doc) != core_bytes:
            doc = None  # a validly signed core that is not what we hold: treat as unknown
    if doc is None:
        status = "unknown" if signature_valid else "forged"
        result = {
            **facts,
            "signature_valid": signature_valid,
            "status": status,
            "status_label": "未在证照库中找到" if signature_valid else "签名无效，可能是伪造的",
            "valid": False,
            "checked_at": utcnow(),
        }
        return result
    summary = certificates.summary(doc)
    await certificates.record_access(services.store, doc, actor, "verify", channel="public", purpose="核验")
    await audit.record(services.store, actor, "certificate.verify", doc["_id"], channel="public", purpose="核验")
    copy = await _copy_facts(services, doc, copy_id)
    return {
        **facts,
        "signature_valid": True,
        "status": summary["status"],
        "status_label": summary["status_label"],
        "valid": summary["status"] == "valid" and (copy is None or copy["valid"]),
        "superseded_by": _superseded_identifier(doc),
        "copy": copy,
        "checked_at": utcnow(),
    }


async def _copy_facts(services: Services, doc: Mapping[str, Any], copy_id: str | None) -> dict[str, Any] | None:
    if not copy_id:
        return None
    copy = await services.store["certificate_copies"].find_one({"_id": copy_id, "certificate_id": doc["_id"]})
    if copy is None:
        return None
    now = utcnow()
    return {
        "purpose": copy["purpose"],  # 制作事由
        "made_by": copy["made_by"]["label"],  # 制作者
        "made_at": copy["made_at"],
        "valid_until": copy["valid_until"],
        "valid": copy["valid_until"] > now,
    }


def _is_ours(text: str) -> bool:
    try:
        return str(split_qr_text(text)[0]).upper().startswith(PREFIX)
    except InvalidInput:
        return False


async def check_photo(services: Services, data: bytes) -> dict[str, Any]:
    """A photo of a printed copy's QR: decoded (off the event loop), then :func:`check_online`."""

    if not data:
        raise InvalidInput("verification.photo_required", "请选择二维码照片", fields={"photo": "必填"})
    ours = [t for t in await qrdecode.decode_upload(services, data) if _is_ours(t)]
    if not ours:
        raise InvalidInput("verification.no_qr", "照片中没有找到一网核验二维码，请拍清楚二维码后重试",
                           fields={"photo": "未识别到核验码"})
    return await check_online(services, ours[0])


def _superseded_identifier(doc: Mapping[str, Any]) -> str | None:
    return doc.get("superseded_by") if doc.get("status") == "superseded" else None


def keys_document(keys: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON published at GET /api/verify/v1/keys, for these keys."""
    return {
        "format": "yiwang-verification-keys/1",
        "algorithm": "SM2 (GM/T 0003) with SM3, signer id 1234567812345678, DER signature",
        "signed_message": "SM3(core) where core is the CBOR byte string inside the QR payload",
        "qr_prefix": PREFIX,
        "keys": keys,
        "types": [{"type_code": t.type_code, "name": t.name} for t in certificates.load_types().values()],
    }


async def open_for_holder(
    services: Services, holder_index: str, certificate_id: str, *, channel: str = "mobile"
) -> dict[str, Any]:
    doc = await certificates.holder_certificate(services.store, holder_index, certificate_id)
    await audit.record(
        services.store,
        audit.Actor("resident", holder_index[:16], "持证人"),
        "certificate.open",
        doc["_id"],
        channel=channel,
        purpose="本人查看",
    )
    view = certificates.full_view(services.cipher, doc)
    view["verification_qr"] = payload_for(doc)
    return view


async def published_keys_document(services: Services) -> dict[str, Any]:
    """The published keys document, from memory (``departments.published``)."""
    return keys_document(await departments.published(services).get())


async def published_keys_rendered(services: Services) -> Rendered:
    """The published keys document serialised once per keys version, with its ETag (no database query)."""
    return await departments.published(services).rendered("document", keys_document)


def main(argv: list[str] | None = None) -> int:
    """``python -m yiwang.verification verify "<QR text or URL>" --keys keys.json``: offline, no network."""
    import argparse
    import json
    import sys

    parser = argparse.ArgumentParser(prog="python -m yiwang.verification",
                                     description="Verify a printed copy's QR (URL or YWV1: text) offline.")
    sub = parser.add_subparsers(dest="command", required=True)
    verify = sub.add_parser("verify", help="check the signature with the published keys")
    verify.add_argument("text", help="the scanned QR: the verification URL or the YWV1: text")
    verify.add_argument("--keys", required=True, help="the JSON of GET /api/verify/v1/keys")
    args = parser.parse_args(argv)
    with open(args.keys, encoding="utf-8") as handle:
        keys = json.load(handle)
    try:
        facts = verify_offline(args.text, keys)
    except InvalidInput as error:
        print(error.message, file=sys.stderr)
        return 2
    print(json.dumps(facts, ensure_ascii=False, indent=2))
    return 0 if facts["signature_valid"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
