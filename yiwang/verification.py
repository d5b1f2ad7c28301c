"""Verification QR codes (核验码) printed on every copy, and their checks.

QR text: ``YWV1:`` + Base45( CBOR array ``[core, signature]`` ), where
``core`` is the byte string of the certificate's signed core (canonical CBOR,
see :func:`yiwang.certificates.signed_core`) and ``signature`` the issuing
department's SM2 signature (DER) over SM3(core). Base45 keeps the text in the
QR alphanumeric set, as the EU digital COVID certificates do.

* :func:`verify_offline` needs only the published keys (``GET /api/verify/v1/keys``).
* :func:`check_online` also looks up the live status (a revoked certificate
  shows revoked) and records the check in the holder's access history.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import base45
import cbor2

from yiwang import audit, certificates, departments
from yiwang.crypto import sm2_verify
from yiwang.errors import InvalidInput
from yiwang.timeutil import utcnow
from yiwang.versioned import Rendered

if TYPE_CHECKING:
    from yiwang.runtime import Services
    from yiwang.store import Document

PREFIX = "YWV1:"
MAX_TEXT = 1200
PUBLIC = audit.Actor("public", "public", "公众扫码核验")


def payload_for(doc: Mapping[str, Any]) -> str:
    """The verification QR text of one stored certificate version."""
    core = certificates.signed_core(doc)
    signature = bytes.fromhex(doc["signature"]["value"])
    return PREFIX + base45.b45encode(cbor2.dumps([core, signature])).decode("ascii")


def _invalid(message: str = "核验码无法识别") -> InvalidInput:
    return InvalidInput("verification.payload_invalid", message, fields={"c": message})


def decode_payload(text: Any) -> tuple[bytes, dict[int, Any], bytes]:
    """(core bytes, core map, signature); raises a clear 400 for anything else."""
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
    """Verify the signature and report the live status; recorded as an access."""
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
    return {
        **facts,
        "signature_valid": True,
        "status": summary["status"],
        "status_label": summary["status_label"],
        "valid": summary["status"] == "valid",
        "superseded_by": _superseded_identifier(doc),
        "checked_at": utcnow(),
    }


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
