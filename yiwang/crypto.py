"""The one crypto module: national algorithms SM2 / SM3 / SM4 from compiled code.

* SM3 and HMAC-SM3 and SM4-GCM come from ``cryptography`` (OpenSSL).
* SM2 comes from ``tongsuopy`` (Tongsuo, an OpenSSL fork with SM2 signatures);
  ``cryptography`` has no SM2 and pure-Python SM2 is too slow.

Personal data is sealed with SM4-GCM (authenticated) and found again through a
keyed SM3-HMAC *blind index*, so the clear value is never stored or indexed.
"""

from __future__ import annotations

import base64
import hmac
import os
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from tongsuopy.crypto import hashes as ts_hashes
from tongsuopy.crypto import serialization as ts_serialization
from tongsuopy.crypto.asymciphers import ec as ts_ec
from tongsuopy.crypto.exceptions import InternalError, InvalidSignature

from yiwang.errors import InvalidInput

SM4_KEY_BYTES = 16
_GCM_NONCE_BYTES = 12
_GCM_TAG_BYTES = 16
_SEAL_VERSION = b"\x01"


def sm3(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize()


def sm3_hex(data: bytes) -> str:
    return sm3(data).hex()


def hmac_sm3(key: bytes, data: bytes) -> bytes:
    mac = crypto_hmac.HMAC(key, hashes.SM3())
    mac.update(data)
    return mac.finalize()


def constant_time_equal(a: bytes | str, b: bytes | str) -> bool:
    a_bytes = a.encode() if isinstance(a, str) else a
    b_bytes = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(a_bytes, b_bytes)


def random_token(nbytes: int = 16) -> str:
    """URL-safe random token; 16 bytes = 128 bits."""
    return secrets.token_urlsafe(nbytes)


def token_digest(token: str) -> str:
    """How a bearer token or one-time code is stored: its SM3 digest only."""
    return sm3_hex(token.encode())


def sm4_gcm_encrypt(key: bytes, plaintext: bytes, associated_data: bytes = b"") -> bytes:
    nonce = os.urandom(_GCM_NONCE_BYTES)
    encryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
    encryptor.authenticate_additional_data(associated_data)
    body = encryptor.update(plaintext) + encryptor.finalize()
    return nonce + body + encryptor.tag


def sm4_gcm_decrypt(key: bytes, sealed: bytes, associated_data: bytes = b"") -> bytes:
    if len(sealed) < _GCM_NONCE_BYTES + _GCM_TAG_BYTES:
        raise InvalidInput("crypto.corrupt", "数据已损坏")
    nonce, body, tag = sealed[:_GCM_NONCE_BYTES], sealed[_GCM_NONCE_BYTES:-_GCM_TAG_BYTES], sealed[-_GCM_TAG_BYTES:]
    decryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce, tag)).decryptor()
    decryptor.authenticate_additional_data(associated_data)
    try:
        return decryptor.update(body) + decryptor.finalize()
    except InvalidTag:
        raise InvalidInput("crypto.corrupt", "数据已损坏或密钥不匹配") from None


def key_id(key: bytes) -> bytes:
    """Four bytes that name a sealing key in every value it sealed (an SM3 digest prefix: reveals nothing)."""
    return sm3(b"yiwang-pii-key\x00" + key)[:4]


class FieldCipher:
    """Seals personal fields for storage and computes their blind indexes.

    ``purpose`` is bound into both the ciphertext (as associated data) and the
    blind index, so an encrypted phone number cannot be swapped in for an ID
    number, and equal values of different kinds index differently.

    Key rotation: values are sealed with the first key, and name it (format 2:
    ``02 ‖ key id ‖ purpose length ‖ purpose ‖ nonce ‖ ciphertext ‖ tag``); the
    other keys only open what they sealed. Format 1 (``01 ‖ nonce ‖ …``, before
    key ids) is opened by trying each key: GCM's tag tells which one sealed it.
    The purpose is carried in clear so a re-sealing job needs no map of fields;
    the reader still names the purpose it expects, and a mismatch fails.
    """

    def __init__(
        self,
        encryption_key: bytes,
        index_key: bytes,
        previous_keys: tuple[bytes, ...] = (),
        previous_index_keys: tuple[bytes, ...] = (),
    ) -> None:
        keys = (encryption_key, *previous_keys)
        if any(len(k) != SM4_KEY_BYTES for k in keys):
            raise InvalidInput("crypto.key", "SM4 密钥长度必须为 16 字节")
        self._key = encryption_key
        self._kid = key_id(encryption_key)
        self._keys = {key_id(k): k for k in keys}
        self._index_key = index_key
        self._previous_index_keys = tuple(k for k in previous_index_keys if k != index_key)

    @property
    def current_key_id(self) -> str:
        return self._kid.hex()

    def seal(self, purpose: str, value: str) -> str:
        label = purpose.encode()
        if len(label) > 255:
            raise ValueError("purpose too long")
        sealed = sm4_gcm_encrypt(self._key, value.encode(), label)
        return base64.b64encode(_SEAL_V2 + self._kid + bytes([len(label)]) + label + sealed).decode()

    def open(self, purpose: str, sealed: str) -> str:
        raw = _decode(sealed)
        if raw[:1] == _SEAL_VERSION:
            return self._open_v1(raw[1:], purpose.encode()).decode()
        kid, _label, body = _parse_v2(raw)
        key = self._keys.get(kid)
        if key is None:
            raise InvalidInput("crypto.unknown_key", "数据由未配置的密钥加密")
        return sm4_gcm_decrypt(key, body, purpose.encode()).decode()

    def _open_v1(self, body: bytes, label: bytes) -> bytes:
        for key in self._keys.values():
            try:
                return sm4_gcm_decrypt(key, body, label)
            except InvalidInput:
                continue
        raise InvalidInput("crypto.corrupt", "数据已损坏或密钥不匹配")

    def sealed_with(self, sealed: str, purposes: tuple[str, ...] = ()) -> tuple[str | None, str | None]:
        """(key id, purpose) of a sealed value, None where unknown; format 1 is tried with ``purposes``."""
        try:
            raw = _decode(sealed)
        except InvalidInput:
            return None, None
        if raw[:1] == _SEAL_VERSION:
            for purpose in purposes:
                for kid, key in self._keys.items():
                    try:
                        sm4_gcm_decrypt(key, raw[1:], purpose.encode())
                    except InvalidInput:
                        continue
                    return kid.hex(), purpose
            return None, None
        try:
            kid, label, _ = _parse_v2(raw)
        except InvalidInput:
            return None, None
        return kid.hex(), label.decode(errors="replace")

    def reseal(self, sealed: str, purposes: tuple[str, ...] = ()) -> str | None:
        """The value sealed again under the current key, or None when it already is (or cannot be opened)."""
        kid, purpose = self.sealed_with(sealed, purposes)
        if kid is None or purpose is None or (kid == self.current_key_id and _decode(sealed)[:1] == _SEAL_V2):
            return None
        return self.seal(purpose, self.open(purpose, sealed))

    def blind_index(self, purpose: str, value: str) -> str:
        return hmac_sm3(self._index_key, purpose.encode() + b"\x00" + value.encode()).hex()

    # Blind-index key rotation: new indexes use the current key; while older keys are configured,
    # lookups try every key's index (:meth:`blind_indexes`) and a job rewrites the old ones
    # (``yiwang.keyrotation.reindex_all``, from :meth:`index_rewrites`).

    @property
    def index_rotating(self) -> bool:
        return bool(self._previous_index_keys)

    def blind_indexes(self, purpose: str, value: str) -> list[str]:
        """The value's index under the current key, then under each previous key."""
        data = purpose.encode() + b"\x00" + value.encode()
        return [hmac_sm3(k, data).hex() for k in (self._index_key, *self._previous_index_keys)]

    def index_rewrites(self, purpose: str, value: str) -> dict[str, str]:
        """{index under a previous key: index under the current key} for one clear value."""
        current, *old = self.blind_indexes(purpose, value)
        return dict.fromkeys(old, current)


_SEAL_V2 = b"\x02"


def _decode(sealed: str) -> bytes:
    try:
        raw = base64.b64decode(sealed, validate=True)
    except (ValueError, TypeError):
        raise InvalidInput("crypto.corrupt", "数据已损坏") from None
    if raw[:1] not in (_SEAL_VERSION, _SEAL_V2):
        raise InvalidInput("crypto.corrupt", "数据版本未知")
    return raw


def _parse_v2(raw: bytes) -> tuple[bytes, bytes, bytes]:
    """key id, purpose, GCM body of a format-2 value."""
    if len(raw) < 6:
        raise InvalidInput("crypto.corrupt", "数据已损坏")
    kid, length = raw[1:5], raw[5]
    label, body = raw[6 : 6 + length], raw[6 + length :]
    if len(label) != length:
        raise InvalidInput("crypto.corrupt", "数据已损坏")
    return kid, label, body


# --- SM2 -----------------------------------------------------------------

_SM2_SIGNATURE = ts_ec.ECDSA(ts_hashes.SM3())


class SM2Signer:
    """An SM2 key pair for signing; the private key never leaves this object."""

    def __init__(self, private_key: ts_ec.EllipticCurvePrivateKey) -> None:
        self._key = private_key

    @classmethod
    def generate(cls) -> SM2Signer:
        return cls(ts_ec.generate_private_key(ts_ec.SM2()))

    @classmethod
    def from_pem(cls, pem: bytes) -> SM2Signer:
        key = ts_serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, ts_ec.EllipticCurvePrivateKey):
            raise InvalidInput("crypto.key", "不是 SM2 私钥")
        return cls(key)

    def private_pem(self) -> bytes:
        return self._key.private_bytes(
            ts_serialization.Encoding.PEM,
            ts_serialization.PrivateFormat.PKCS8,
            ts_serialization.NoEncryption(),
        )

    def public_key_raw(self) -> bytes:
        """Uncompressed point 04‖x‖y (65 bytes), the usual SM2 public key form."""
        return self._key.public_key().public_bytes(
            ts_serialization.Encoding.X962, ts_serialization.PublicFormat.UncompressedPoint
        )

    def public_pem(self) -> str:
        return (
            self._key.public_key()
            .public_bytes(ts_serialization.Encoding.PEM, ts_serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def sign(self, message: bytes) -> bytes:
        """SM2 signature (DER) with SM3, default signer id 1234567812345678."""
        return self._key.sign(message, _SM2_SIGNATURE)


def sm2_verify(public_key_raw: bytes, message: bytes, signature: bytes) -> bool:
    try:
        key = ts_ec.EllipticCurvePublicKey.from_encoded_point(ts_ec.SM2(), public_key_raw)
        key.verify(signature, message, _SM2_SIGNATURE)
    except (InvalidSignature, InternalError, ValueError):  # InternalError: not even DER (Tongsuo's ASN.1 parser)
        return False
    return True


def sm2_public_key_raw(pem: bytes) -> bytes:
    """An SM2 public key (PEM, SubjectPublicKeyInfo) as 04‖x‖y; a clear error for anything else."""
    try:
        key = ts_serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        raise InvalidInput("crypto.key", "不是有效的 SM2 公钥（PEM）") from None
    if not isinstance(key, ts_ec.EllipticCurvePublicKey) or not isinstance(key.curve, ts_ec.SM2):
        raise InvalidInput("crypto.key", "不是 SM2 公钥")
    return key.public_bytes(ts_serialization.Encoding.X962, ts_serialization.PublicFormat.UncompressedPoint)


# SM2 (GB/T 32918) group order; a private scalar lies in [1, n - 2].
_SM2_ORDER = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123


def derive_sm2_signer(secret: bytes, label: bytes) -> SM2Signer:
    """An SM2 key derived from a secret (HMAC-SM3 with a label, for domain separation):
    the same secret gives the same key, so it needs no storage of its own."""
    info = b"yiwang sm2 key derivation\x00" + label
    scalar = int.from_bytes(hmac_sm3(secret, info + b"\x01") + hmac_sm3(secret, info + b"\x02"), "big")  # 512 bits
    return SM2Signer(ts_ec.derive_private_key(scalar % (_SM2_ORDER - 2) + 1, ts_ec.SM2()))
