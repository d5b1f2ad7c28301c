"""Rotating PII_KEY: old data stays readable, a background job re-seals it under the new key,
and once nothing names the old key it can be retired."""

from __future__ import annotations

import base64
import dataclasses
import secrets

import pytest

from yiwang import keyrotation, people
from yiwang.boot import open_services
from yiwang.config import Config, load_config
from yiwang.crypto import FieldCipher, key_id, sm4_gcm_encrypt
from yiwang.errors import InvalidInput
from yiwang.keyrotation import Resealer
from yiwang.store import Store

NUMBER, NAME = "440106199406183318", "李明轩"


def format_one(key: bytes, purpose: str, value: str) -> str:
    """A value as sealed before key ids existed (01 ‖ nonce ‖ ciphertext ‖ tag)."""
    return base64.b64encode(b"\x01" + sm4_gcm_encrypt(key, value.encode(), purpose.encode())).decode()


def test_a_value_names_its_key_and_old_keys_still_open_what_they_sealed() -> None:
    old, new, index = secrets.token_bytes(16), secrets.token_bytes(16), secrets.token_bytes(32)
    before = FieldCipher(old, index)
    sealed_old = before.seal("phone", "13912345678")
    legacy = format_one(old, "phone", "13912345678")
    after = FieldCipher(new, index, (old,))
    assert after.open("phone", sealed_old) == after.open("phone", legacy) == "13912345678"
    assert after.sealed_with(sealed_old) == (key_id(old).hex(), "phone")
    assert after.sealed_with(legacy, ("name", "phone")) == (key_id(old).hex(), "phone")
    resealed = after.reseal(sealed_old)
    assert resealed is not None and after.sealed_with(resealed) == (after.current_key_id, "phone")
    assert after.reseal(resealed) is None  # already under the current key
    retired = FieldCipher(new, index)
    assert retired.open("phone", resealed) == "13912345678"
    with pytest.raises(InvalidInput) as unknown:
        retired.open("phone", sealed_old)
    assert unknown.value.code == "crypto.unknown_key"
    with pytest.raises(InvalidInput):
        after.open("name", sealed_old)  # the purpose still binds: a phone number is not a name
    assert before.blind_index("one_number", NUMBER) == after.blind_index("one_number", NUMBER)


def test_a_previous_key_equal_to_the_current_one_or_malformed_is_refused(tmp_path) -> None:
    key = secrets.token_hex(16)
    for previous in (key, "abcd", "zz" * 16):
        with pytest.raises(InvalidInput) as raised:
            load_config({"DATA_DIR": str(tmp_path), "PII_KEY": key, "PII_KEYS_PREVIOUS": previous})
        assert "PII_KEYS_PREVIOUS" in raised.value.message


async def test_rotation_reseals_old_data_in_the_background_and_the_old_key_can_go(config: Config, store: Store) -> None:
    old_key = config.pii_key
    first = await open_services(config, store=store)
    person = await people.register_resident(store, first.cipher, NUMBER, NAME, phone="13912345678")
    legacy = format_one(old_key, "console_totp", "JBSWY3DPEHPK3PXP")  # data from before key ids
    await store["console_users"].insert_one({"_id": "u1", "username": "legacy", "totp": {"secret": legacy}})
    await first.close(close_store=False)

    new_key = secrets.token_bytes(16)
    rotating = dataclasses.replace(config, pii_key=new_key, pii_keys_previous=(old_key,))
    second = await open_services(rotating, store=store)
    try:
        # Everything opens during the rotation, old and new alike.
        found = await people.resident_by_number(store, second.cipher, NUMBER)
        assert found is not None and found.id == person.id
        assert await people.name_matches(store, second.cipher, found.index, NAME)
        counts = await second.resources.get(Resealer).wait()
        assert counts["residents"] >= 3 and counts["console_users"] == 1
        held = await keyrotation.census(store, second.cipher)
        assert held == {key_id(new_key).hex(): held[key_id(new_key).hex()]}  # nothing names the old key
    finally:
        await second.close(close_store=False)

    retired = await open_services(dataclasses.replace(config, pii_key=new_key, pii_keys_previous=()), store=store)
    try:
        assert await people.name_matches(store, retired.cipher, found.index, NAME)
        user = await store["console_users"].find_one({"_id": "u1"})
        assert retired.cipher.open("console_totp", user["totp"]["secret"]) == "JBSWY3DPEHPK3PXP"
        assert Resealer not in retired.resources
    finally:
        await retired.close(close_store=False)
