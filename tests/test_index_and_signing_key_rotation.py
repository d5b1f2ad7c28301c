"""Rotating BLIND_INDEX_KEY (lookups try both keys, a job re-indexes, the old key can go) and the
departments' SM2 signing keys (published with validity; what a retired key signed still verifies)."""

from __future__ import annotations

import dataclasses
import secrets

import pytest

from tests.fixtures.certs import OTHER, id_card_body, issue
from yiwang import audit, departments, keyrotation, people, verification
from yiwang.admin import parser
from yiwang.boot import open_services
from yiwang.config import Config, load_config
from yiwang.errors import InvalidInput
from yiwang.identity import OneNumber, number_index
from yiwang.keyrotation import Reindexer
from yiwang.store import Store

NUMBER, NAME = "440106199406183318", "李明轩"


async def test_blind_index_rotation_keeps_lookups_working_and_reindexes_everything(
    config: Config, store: Store
) -> None:
    first = await open_services(config, store=store)
    person = await people.register_resident(store, first.cipher, NUMBER, NAME, phone="13912345678")
    old_index = person.index
    await store["uploads"].insert_one({"_id": "u" * 32, "owner": old_index, "content_type": "image/jpeg",
                                       "size": 1, "created_at": person_created(), "media_check": {"status": "pass"}})
    await store["certificate_copies"].insert_one({"_id": "c1", "holder_index": old_index, "made_at": person_created()})
    await first.close(close_store=False)

    new_key = secrets.token_bytes(32)
    rotating_config = dataclasses.replace(
        config, blind_index_key=new_key, blind_index_keys_previous=(config.blind_index_key,)
    )
    rotating = await open_services(rotating_config, store=store)
    try:
        # During the rotation a lookup by the clear number finds the person under the old index,
        # and registering them again does not make a second resident.
        found = await people.resident_by_number(store, rotating.cipher, NUMBER)
        assert found is not None and found.id == person.id
        again = await people.register_resident(store, rotating.cipher, NUMBER, NAME)
        assert again.id == person.id
        counts = await rotating.resources.get(Reindexer).wait()
        assert counts["residents"] >= 1 and counts["uploads"] == 1 and counts["certificate_copies"] == 1
        assert await keyrotation.index_census(store, rotating.cipher) == {}
        new_index = number_index(rotating.cipher, OneNumber("person", NUMBER))
        assert new_index != old_index
        assert (await store["uploads"].find_one({"_id": "u" * 32}))["owner"] == new_index
        assert (await store["certificate_copies"].find_one({"_id": "c1"}))["holder_index"] == new_index
        assert (await store["index_aliases"].find_one({"_id": old_index}))["current"] == new_index
    finally:
        await rotating.close(close_store=False)

    retired = await open_services(dataclasses.replace(config, blind_index_key=new_key), store=store)
    try:
        found = await people.resident_by_number(store, retired.cipher, NUMBER)
        assert found is not None and found.id == person.id and found.index == new_index
        assert await people.name_matches(store, retired.cipher, found.index, NAME)
        assert await store["residents"].count_documents({}) == 1
    finally:
        await retired.close(close_store=False)


def person_created():  # type: ignore[no-untyped-def]
    from yiwang.timeutil import utcnow

    return utcnow()


def test_a_previous_blind_index_key_must_differ_and_be_32_bytes(tmp_path) -> None:
    key = secrets.token_hex(32)
    for previous in (key, "abcd"):
        with pytest.raises(InvalidInput) as raised:
            load_config({"DATA_DIR": str(tmp_path), "BLIND_INDEX_KEY": key, "BLIND_INDEX_KEYS_PREVIOUS": previous})
        assert "BLIND_INDEX_KEYS_PREVIOUS" in raised.value.message


async def test_a_rotated_signing_key_is_published_retired_and_old_copies_still_verify(services) -> None:
    old_doc = await issue(services)
    old_text = verification.payload_for(old_doc)
    old_kid, _ = await departments.signer_for(services, "gz-psb")
    new_key = await departments.rotate_signing_key(services, "gz-psb", by=audit.SYSTEM)
    assert new_key["kid"] != old_kid and new_key["status"] == "active" and new_key["not_after"] is None

    new_doc = await issue(services, id_card_body(OTHER, "王静怡"))
    new_text = verification.payload_for(new_doc)
    published = await verification.published_keys_document(services)
    by_kid = {k["kid"]: k for k in published["keys"]}
    assert by_kid[old_kid]["status"] == "retired" and by_kid[old_kid]["not_after"] is not None
    assert by_kid[old_kid]["not_before"] <= by_kid[old_kid]["not_after"] <= by_kid[new_key["kid"]]["not_before"]
    old_facts = verification.verify_offline(old_text, published)
    new_facts = verification.verify_offline(new_text, published)
    assert old_facts["signature_valid"] and old_facts["kid"] == old_kid
    assert new_facts["signature_valid"] and new_facts["kid"] == new_key["kid"]  # new signatures: the new key
    online = await verification.check_online(services, old_text)
    assert online["signature_valid"] and online["status"] == "valid"
    assert await services.store["audit"].count_documents({"action": "signing_key.rotate"}) == 1


def test_rotate_commands_have_chinese_and_english_help(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["keys", "--help"], ["uploads", "--help"], ["keys", "rotate-signing", "--help"]):
        with pytest.raises(SystemExit):
            parser().parse_args(argv)
    out = capsys.readouterr().out
    for words in ("rotate-signing", "reindex", "index-census", "import-disk", "签名密钥", "signing key", "盲索引",
                  "blind-index", "部门编码"):  # fmt: skip
        assert words in out
