"""Signed issuer API requests: the signing string, signing (for departments' systems and tests) and checking.

Each request to ``/api/issuer/v1/…`` carries four headers::

    X-Yiwang-Credential: <credential id>          32 lowercase hex, from ``python -m yiwang.admin credentials issue``
    X-Yiwang-Timestamp:  <Unix seconds>           within ±300 s of the platform's clock
    X-Yiwang-Nonce:      <16–64 letters/digits>   never used before with this credential
    X-Yiwang-Signature:  <hex of the DER SM2 signature>

and the signature is SM2 with SM3 (GB/T 32918, default signer id ``1234567812345678``) by the credential's
private key over the UTF-8 signing string, seven lines joined by ``\\n`` with no trailing newline::

    YIWANG-SM2-SM3
    <method, upper case>
    <request target: the path and query exactly as sent, e.g. /api/issuer/v1/certificates>
    <timestamp, as in the header>
    <nonce, as in the header>
    <credential id, as in the header>
    <SM3 of the exact body bytes, 64 lowercase hex; SM3 of the empty string for no body>

docs/certificates.md has a worked example. The platform keeps only the public key.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass

from yiwang.crypto import SM2Signer, sm2_verify, sm3_hex
from yiwang.errors import NotAuthenticated

ALGORITHM = "YIWANG-SM2-SM3"
MAX_CLOCK_SKEW_SECONDS = 300
HEADERS = ("X-Yiwang-Credential", "X-Yiwang-Timestamp", "X-Yiwang-Nonce", "X-Yiwang-Signature")
_CREDENTIAL = re.compile(r"[0-9a-f]{32}")
_NONCE = re.compile(r"[0-9A-Za-z]{16,64}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"[0-9a-fA-F]{16,300}")


def signing_string(
    *, method: str, target: str, timestamp: str, nonce: str, credential_id: str, body: bytes
) -> bytes:
    lines = (ALGORITHM, method.upper(), target, timestamp, nonce, credential_id, sm3_hex(body))
    return "\n".join(lines).encode("utf-8")


def sign_request(
    private_pem: bytes,
    credential_id: str,
    method: str,
    target: str,
    body: bytes = b"",
    *,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The four headers of a signed request (what a department's system computes)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    once = nonce or secrets.token_hex(16)
    message = signing_string(
        method=method, target=target, timestamp=stamp, nonce=once, credential_id=credential_id, body=body
    )
    signature = SM2Signer.from_pem(private_pem).sign(message)
    return {
        "X-Yiwang-Credential": credential_id,
        "X-Yiwang-Timestamp": stamp,
        "X-Yiwang-Nonce": once,
        "X-Yiwang-Signature": signature.hex(),
    }


@dataclass(frozen=True)
class SignedRequest:
    """What arrived: the headers' values and the raw request."""

    method: str
    target: str
    body: bytes
    credential_id: str
    timestamp: str
    nonce: str
    signature: str


def check_form(request: SignedRequest, *, now: float) -> bytes:
    """Refuse a malformed or stale request before any lookup; returns the decoded signature."""
    if not (request.credential_id and request.timestamp and request.nonce and request.signature):
        raise NotAuthenticated(
            "issuer.signature_required",
            "签发接口的请求必须签名（X-Yiwang-Credential、X-Yiwang-Timestamp、X-Yiwang-Nonce、X-Yiwang-Signature）",
        )
    if not _CREDENTIAL.fullmatch(request.credential_id):
        raise NotAuthenticated("department.credential_invalid", "部门凭证无效")
    if not _TIMESTAMP.fullmatch(request.timestamp):
        raise NotAuthenticated("issuer.timestamp_invalid", "请求时间戳无效")
    if abs(now - int(request.timestamp)) > MAX_CLOCK_SKEW_SECONDS:
        raise NotAuthenticated("issuer.stale_request", "请求时间与服务器相差超过 5 分钟")
    if not _NONCE.fullmatch(request.nonce):
        raise NotAuthenticated("issuer.nonce_invalid", "请求随机数应为 16–64 位字母或数字")
    if not _SIGNATURE.fullmatch(request.signature) or len(request.signature) % 2:
        raise NotAuthenticated("issuer.signature_invalid", "请求签名无效")
    return bytes.fromhex(request.signature)


def verify(request: SignedRequest, public_key_raw: bytes, signature: bytes) -> None:
    message = signing_string(
        method=request.method,
        target=request.target,
        timestamp=request.timestamp,
        nonce=request.nonce,
        credential_id=request.credential_id,
        body=request.body,
    )
    if not sm2_verify(public_key_raw, message, signature):
        raise NotAuthenticated("issuer.signature_invalid", "请求签名无效")
