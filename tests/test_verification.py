"""Verification QR: signed offline, live status online."""

from __future__ import annotations

import base45
import cbor2
import pytest

from tests.fixtures.certs import issue
from yiwang import certificates, verification
from yiwang.errors import InvalidInput


async def test_payload_verifies_offline_with_published_keys(services) -> None:
    doc = await issue(services)
    text = verification.payload_for(doc)
    assert set(text[5:]) <= set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")  # QR alphanumeric mode
    assert "李明轩" not in text and "440106199406183318" not in text
    keys = await verification.published_keys_document(services)
    facts = verification.verify_offline(text, keys)
    assert facts["signature_valid"] is True
    assert facts["identifier"] == doc["identifier"]
    assert facts["holder_masked"] == "440106********3318"
    assert facts["fields_digest"] == doc["fields_digest"]
    assert facts["type_name"] == "居民身份证"


async def test_tampered_payload_fails_offline_and_online(services) -> None:
    doc = await issue(services)
    text = verification.payload_for(doc)
    core_bytes, signature = cbor2.loads(base45.b45decode(text[5:]))
    core = cbor2.loads(core_bytes)
    core[7] = "2099-12-31"  # extend the validity
    forged = "YWV1:" + base45.b45encode(cbor2.dumps([cbor2.dumps(core, canonical=True), signature])).decode()
    keys = await verification.published_keys_document(services)
    assert verification.verify_offline(forged, keys)["signature_valid"] is False
    online = await verification.check_online(services, forged)
    assert online["status"] == "forged" and online["valid"] is False
    assert verification.verify_offline(text, {"keys": []})["signature_valid"] is False


async def test_online_check_shows_revocation(services) -> None:
    doc = await issue(services)
    text = verification.payload_for(doc)
    assert (await verification.check_online(services, text))["status"] == "valid"
    await certificates.change_status(services, "gz-psb", doc["identifier"], "revoked", "错误签发")
    result = await verification.check_online(services, text)
    assert result["status"] == "revoked" and result["valid"] is False and result["signature_valid"] is True


@pytest.mark.parametrize("text", ["", "hello", "YWV1:", "YWV1:%%%%", "YWV1:" + "A" * 2000])
async def test_garbage_is_a_clear_400(services, text: str) -> None:
    with pytest.raises(InvalidInput):
        await verification.check_online(services, text)
