"""Electronic seals and signatures after GB/T 38540-2020 (信息安全技术 安全电子签章密码技术规范),
in DER with asn1crypto, signed with SM2/SM3 (tongsuopy through :mod:`yiwang.crypto`).

```
SES_Signature ::= SEQUENCE { toSign TBS_Sign, cert OCTET STRING (signer's X.509),
                             signatureAlgID OID (1.2.156.10197.1.501), signature BIT STRING }
TBS_Sign      ::= SEQUENCE { version INTEGER (4), eseal SES_Seal, timeInfo GeneralizedTime,
                             dataHash BIT STRING (SM3 of Signature.xml), propertyInfo IA5String }
SES_Seal      ::= SEQUENCE { esealInfo SES_SealInfo, cert OCTET STRING (maker's X.509),
                             signAlgID OID, signedValue BIT STRING }
SES_SealInfo  ::= SEQUENCE { header {id "ES", version 4, vid}, esID, property, picture }
```

The seal maker and the signer are both the issuing department, with one self-issued
SM2 X.509 certificate per department key (``department_certificate``): the trust
anchor is the published key list (``GET /api/verify/v1/keys``), not a CA chain.
"""

# ruff: noqa: RUF012  (asn1crypto declares ASN.1 types as class-level _fields lists)
from __future__ import annotations

import datetime as dt
import functools
import io
import math
import threading
from dataclasses import dataclass

from asn1crypto import core, keys, x509

from yiwang.crypto import SM2Signer, sm2_verify
from yiwang.fonts import font

SM2_SM3_OID = "1.2.156.10197.1.501"
SM3_OID = "1.2.156.10197.1.401"
SES_VERSION = 4
VENDOR_ID = "YIWANG"
CERT_NOT_BEFORE = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
CERT_NOT_AFTER = dt.datetime(2049, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
SEAL_MM = 22.0  # the seal picture's size on the page (mm)


class SESHeader(core.Sequence):  # type: ignore[misc]
    _fields = [("id", core.IA5String), ("version", core.Integer), ("vid", core.IA5String)]


class CertInfoList(core.SequenceOf):  # type: ignore[misc]
    _child_spec = core.OctetString


class SESESPropertyInfo(core.Sequence):  # type: ignore[misc]
    # certList is the CHOICE branch ``certs`` (certListType 1): DER cannot tell the
    # two untagged SEQUENCE OF branches apart, certListType does.
    _fields = [
        ("type", core.Integer),
        ("name", core.UTF8String),
        ("cert_list_type", core.Integer),
        ("cert_list", CertInfoList),
        ("create_date", core.GeneralizedTime),
        ("valid_start", core.GeneralizedTime),
        ("valid_end", core.GeneralizedTime),
    ]


class SESESPictureInfo(core.Sequence):  # type: ignore[misc]
    _fields = [
        ("type", core.IA5String),
        ("data", core.OctetString),
        ("width", core.Integer),
        ("height", core.Integer),
    ]


class ExtData(core.Sequence):  # type: ignore[misc]
    _fields = [
        ("extn_id", core.ObjectIdentifier),
        ("critical", core.Boolean, {"default": False}),
        ("extn_value", core.OctetString),
    ]


class ExtensionDatas(core.SequenceOf):  # type: ignore[misc]
    _child_spec = ExtData


class SESSealInfo(core.Sequence):  # type: ignore[misc]
    _fields = [
        ("header", SESHeader),
        ("es_id", core.IA5String),
        ("property", SESESPropertyInfo),
        ("picture", SESESPictureInfo),
        ("ext_datas", ExtensionDatas, {"optional": True}),
    ]


class SESSeal(core.Sequence):  # type: ignore[misc]
    _fields = [
        ("eseal_info", SESSealInfo),
        ("cert", core.OctetString),
        ("sign_alg_id", core.ObjectIdentifier),
        ("signed_value", core.OctetBitString),
    ]


class TBSSign(core.Sequence):  # type: ignore[misc]
    _fields = [
        ("version", core.Integer),
        ("eseal", SESSeal),
        ("time_info", core.GeneralizedTime),
        ("data_hash", core.OctetBitString),
        ("property_info", core.IA5String),
        ("ext_datas", ExtensionDatas, {"optional": True}),
    ]


class SESSignature(core.Sequence):  # type: ignore[misc]
    _fields = [
        ("to_sign", TBSSign),
        ("cert", core.OctetString),
        ("signature_alg_id", core.ObjectIdentifier),
        ("signature", core.OctetBitString),
        ("time_stamp", core.OctetBitString, {"explicit": 0, "optional": True}),
    ]


# ---- the department's certificate and seal ----------------------------------------


@dataclass(frozen=True)
class Issuer:
    """Who seals: the issuing department (plain values, no store)."""

    code: str
    name: str
    credit_code: str


def _name(issuer: Issuer) -> x509.Name:
    return x509.Name.build(
        {
            "country_name": "CN",
            "organization_name": issuer.name,
            "organizational_unit_name": issuer.credit_code,
            "common_name": f"{issuer.name}电子证照签章",
        }
    )


def _public_key_info(signer: SM2Signer) -> keys.PublicKeyInfo:
    pem = signer.public_pem().encode()
    body = b"".join(line for line in pem.splitlines() if not line.startswith(b"-----"))
    import base64

    return keys.PublicKeyInfo.load(base64.b64decode(body))


def make_certificate(signer: SM2Signer, issuer: Issuer, kid: str) -> bytes:
    """A self-issued SM2 X.509 v3 certificate (DER) of the department's key."""
    name = _name(issuer)
    tbs = x509.TbsCertificate(
        {
            "version": "v3",
            "serial_number": int(kid, 16),
            "signature": {"algorithm": SM2_SM3_OID},
            "issuer": name,
            "validity": {
                "not_before": x509.Time({"utc_time": CERT_NOT_BEFORE}),
                "not_after": x509.Time({"utc_time": CERT_NOT_AFTER}),
            },
            "subject": name,
            "subject_public_key_info": _public_key_info(signer),
            "extensions": [
                {"extn_id": "basic_constraints", "critical": True, "extn_value": {"ca": False}},
                {
                    "extn_id": "key_usage",
                    "critical": True,
                    "extn_value": {"digital_signature", "non_repudiation"},
                },
            ],
        }
    )
    cert = x509.Certificate(
        {
            "tbs_certificate": tbs,
            "signature_algorithm": {"algorithm": SM2_SM3_OID},
            "signature_value": signer.sign(tbs.dump()),
        }
    )
    return bytes(cert.dump())


def certificate_public_key(cert_der: bytes) -> bytes:
    """The uncompressed SM2 point (04‖x‖y) of a certificate; ValueError if it is not one."""
    cert = x509.Certificate.load(cert_der)
    point = cert["tbs_certificate"]["subject_public_key_info"]["public_key"].native
    if not isinstance(point, bytes) or len(point) != 65 or point[0] != 4:
        raise ValueError("not an uncompressed SM2 public key")
    return point


def certificate_is_self_signed(cert_der: bytes) -> bool:
    cert = x509.Certificate.load(cert_der)
    tbs = cert["tbs_certificate"]
    return sm2_verify(certificate_public_key(cert_der), tbs.dump(), cert["signature_value"].native)


def seal_picture(name: str) -> bytes:
    """A red round seal (PNG, transparent): ring, star, the name along the top arc."""
    from PIL import Image, ImageDraw

    size, red = 480, (214, 0, 0, 255)
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    draw.ellipse((12, 12, size - 12, size - 12), outline=red, width=16)
    cx = cy = size / 2
    outer, inner = 78, 30
    points = [
        (cx + (outer if i % 2 == 0 else inner) * math.sin(i * math.pi / 5),
         cy - (outer if i % 2 == 0 else inner) * math.cos(i * math.pi / 5))
        for i in range(10)
    ]
    draw.polygon(points, fill=red)
    text = name[:16]
    glyph_font = font(50 if len(text) <= 12 else 40)
    span = min(250.0, 20.0 * len(text))
    radius = size / 2 - 76
    for i, char in enumerate(text):
        angle = -span / 2 + span * (i + 0.5) / len(text)
        tile = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
        ImageDraw.Draw(tile).text((32, 32), char, font=glyph_font, fill=red, anchor="mm")
        tile = tile.rotate(-angle, resample=Image.Resampling.BICUBIC)
        x = cx + radius * math.sin(math.radians(angle)) - 32
        y = cy - radius * math.cos(math.radians(angle)) - 32
        img.alpha_composite(tile, (round(x), round(y)))
    draw.text((cx, cy + 120), "电子证照专用章", font=font(34), fill=red, anchor="mm")
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=True)
    return out.getvalue()


@dataclass(frozen=True)
class DepartmentSeal:
    kid: str
    certificate: bytes
    seal: SESSeal


_SEALS: dict[str, DepartmentSeal] = {}
_SEALS_LOCK = threading.Lock()


def department_seal(signer: SM2Signer, issuer: Issuer, kid: str) -> DepartmentSeal:
    """The department's certificate and SES_Seal, made once per key and process."""
    with _SEALS_LOCK:
        cached = _SEALS.get(kid)
        if cached is not None:
            return cached
        cert = make_certificate(signer, issuer, kid)
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        seal_name = f"{issuer.name}电子证照专用章"
        info = SESSealInfo(
            {
                "header": {"id": "ES", "version": SES_VERSION, "vid": VENDOR_ID},
                "es_id": f"{issuer.credit_code}{kid}".upper(),
                "property": {
                    "type": 1,  # 单位印章
                    "name": seal_name,
                    "cert_list_type": 1,
                    "cert_list": [cert],
                    "create_date": now,
                    "valid_start": CERT_NOT_BEFORE,
                    "valid_end": CERT_NOT_AFTER,
                },
                "picture": {"type": "PNG", "data": _picture(issuer.name), "width": 40, "height": 40},
            }
        )
        to_sign = _seal_signed_part(info, cert)
        seal = SESSeal(
            {"eseal_info": info, "cert": cert, "sign_alg_id": SM2_SM3_OID, "signed_value": signer.sign(to_sign)}
        )
        made = DepartmentSeal(kid, cert, seal)
        _SEALS[kid] = made
        return made


@functools.lru_cache(maxsize=64)
def _picture(name: str) -> bytes:
    return seal_picture(name)


def _seal_signed_part(info: SESSealInfo, cert: bytes) -> bytes:
    """What the seal maker signs: SEQUENCE { esealInfo, cert, signAlgID } (DER)."""

    class _ToSign(core.Sequence):  # type: ignore[misc]
        _fields = [("eseal_info", SESSealInfo), ("cert", core.OctetString), ("sign_alg_id", core.ObjectIdentifier)]

    return bytes(_ToSign({"eseal_info": info, "cert": cert, "sign_alg_id": SM2_SM3_OID}).dump())


def _tlv(tag: int, body: bytes) -> bytes:
    """One DER element (definite length)."""
    size = len(body)
    if size < 0x80:
        return bytes([tag, size]) + body
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(octets)]) + octets + body


@functools.lru_cache(maxsize=64)
def _seal_der(seal_value: SESSeal) -> bytes:
    return bytes(seal_value.dump())


def sign_document(
    signer: SM2Signer, made: DepartmentSeal, data_hash: bytes, property_info: str, at: dt.datetime
) -> bytes:
    """The SES_Signature (DER) over ``data_hash`` (SM3 of Signature.xml).

    Assembled from DER pieces around the cached seal: asn1crypto re-serialising
    the seal (certificate and picture) for every document costs more than the rest.
    """
    tbs = _tlv(
        0x30,
        core.Integer(SES_VERSION).dump()
        + _seal_der(made.seal)
        + core.GeneralizedTime(at.astimezone(dt.UTC).replace(microsecond=0)).dump()
        + core.OctetBitString(data_hash).dump()
        + core.IA5String(property_info).dump(),
    )
    return _tlv(
        0x30,
        tbs
        + core.OctetString(made.certificate).dump()
        + core.ObjectIdentifier(SM2_SM3_OID).dump()
        + core.OctetBitString(signer.sign(tbs)).dump(),
    )


# ---- reading back --------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedSignature:
    data_hash: bytes
    signed_at: dt.datetime
    signer_public_key: bytes
    signature_valid: bool
    seal_valid: bool
    seal_name: str
    seal_id: str
    seal_valid_from: dt.datetime
    seal_valid_until: dt.datetime
    seal_maker_public_key: bytes
    seal_picture_type: str
    property_info: str


def parse_signature(der: bytes) -> ParsedSignature:
    """Decode an SES_Signature and check both SM2 signatures; ValueError if malformed."""
    try:
        signature = SESSignature.load(der, strict=True)
        tbs = signature["to_sign"]
        seal = tbs["eseal"]
        info = seal["eseal_info"]
        if signature["signature_alg_id"].dotted != SM2_SM3_OID or seal["sign_alg_id"].dotted != SM2_SM3_OID:
            raise ValueError("unsupported signature algorithm")
        if info["header"]["id"].native != "ES":
            raise ValueError("not an electronic seal")
        signer_key = certificate_public_key(signature["cert"].native)
        maker_cert = seal["cert"].native
        maker_key = certificate_public_key(maker_cert)
        signature_valid = sm2_verify(signer_key, tbs.dump(force=False), signature["signature"].native)
        seal_valid = sm2_verify(
            maker_key, _seal_signed_part(info, maker_cert), seal["signed_value"].native
        ) and certificate_is_self_signed(maker_cert)
        prop = info["property"]
        return ParsedSignature(
            data_hash=bytes(tbs["data_hash"].native),
            signed_at=tbs["time_info"].native,
            signer_public_key=signer_key,
            signature_valid=signature_valid,
            seal_valid=seal_valid,
            seal_name=str(prop["name"].native),
            seal_id=str(info["es_id"].native),
            seal_valid_from=prop["valid_start"].native,
            seal_valid_until=prop["valid_end"].native,
            seal_maker_public_key=maker_key,
            seal_picture_type=str(info["picture"]["type"].native),
            property_info=str(tbs["property_info"].native),
        )
    except ValueError:
        raise
    except Exception as exc:  # asn1crypto raises TypeError/KeyError/... on hostile DER
        raise ValueError(f"malformed SES_Signature: {type(exc).__name__}") from None

