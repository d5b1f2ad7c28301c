"""The certificate library: identifiers, issuing, status, holders' own view."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fixtures.certs import HOLDER, OTHER, holder_index, id_card_body, issue
from yiwang import certificates, verification
from yiwang.errors import Conflict, Forbidden, InvalidInput, NotFound

ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def test_identifier_round_trips_with_its_check_character() -> None:
    ident = certificates.Identifier("11100000000013127D001", "11440100007499078Q", "0000000042", 1)
    text = str(ident)
    assert text.startswith("1.2.156.3005.2.11100000000013127D001.11440100007499078Q.0000000042.001.")
    assert certificates.parse_identifier(text) == ident
    assert certificates.parse_identifier(text.lower()) == ident


@given(body=st.text(alphabet=ALNUM, min_size=5, max_size=60), pos=st.integers(min_value=0), new=st.sampled_from(ALNUM))
def test_mod37_36_detects_every_single_substitution(body: str, pos: int, new: str) -> None:
    check = certificates.mod37_36_check(body)
    i = pos % len(body)
    changed = body[:i] + new + body[i + 1 :]
    if changed != body:
        assert certificates.mod37_36_check(changed) != check


def test_wrong_check_character_is_a_clear_error() -> None:
    text = str(certificates.Identifier("11100000000013127D001", "11440100007499078Q", "0000000042", 1))
    wrong = text[:-1] + ("A" if text[-1] != "A" else "B")
    with pytest.raises(InvalidInput) as caught:
        certificates.parse_identifier(wrong)
    assert caught.value.code == "certificate.identifier_checksum"
    for bad in ("", "1.2.3", text.replace("1.2.156.3005.2", "1.2.156.3005.3"), text.replace(".001.", ".1.")):
        with pytest.raises(InvalidInput):
            certificates.parse_identifier(bad)


async def test_issued_certificate_is_signed_sealed_and_listed_for_its_holder(services) -> None:
    doc = await issue(services)
    assert doc["identifier"] == str(certificates.parse_identifier(doc["identifier"]))
    stored = await services.store["certificates"].find_one({"_id": doc["_id"]})
    raw = repr(stored)
    assert HOLDER not in raw and "李明轩" not in raw  # sealed at rest
    assert stored["holder"]["masked"] == "440106********3318"
    assert stored["holder"]["code_type"] == "111"
    mine = await certificates.list_for_holder(services.store, holder_index(services))
    assert [c["id"] for c in mine] == [doc["_id"]]
    assert await certificates.list_for_holder(services.store, holder_index(services, OTHER)) == []
    view = await verification.open_for_holder(services, holder_index(services), doc["_id"])
    assert view["fields"]["name"] == "李明轩" and view["status"] == "valid"
    assert view["valid_until"] == "2040-06-18"  # 20 years from the type's validity rule
    assert view["verification_qr"].startswith("YWV1:")


async def test_nobody_opens_another_residents_certificate(services) -> None:
    doc = await issue(services)
    other = holder_index(services, OTHER)
    for call in (
        verification.open_for_holder(services, other, doc["_id"]),
        certificates.access_history(services.store, other, doc["_id"]),
        verification.open_for_holder(services, other, uuid.uuid4().hex),
        verification.open_for_holder(services, holder_index(services), "not-an-id"),
    ):
        with pytest.raises(NotFound):
            await call


async def test_bad_issue_requests_write_nothing(services) -> None:
    cases = [
        ({**id_card_body(), "type": "no_such_type"}, "certificate.type_unknown"),
        (id_card_body(number="440106199406183319"), "id_number.checksum"),
        ({**id_card_body(), "fields": {"name": "李明轩"}}, "certificate.fields_invalid"),
        ({**id_card_body(), "issued_on": "2020-13-01"}, "certificate.date_invalid"),
        ({**id_card_body(), "holder": {"number": "91440106MA5D2K7R9L"}}, "certificate.holder_kind"),
        ({**id_card_body(), "valid_from": "2030-01-01", "valid_until": "2029-01-01"}, "certificate.validity_invalid"),
    ]
    for body, code in cases:
        with pytest.raises(InvalidInput) as caught:
            await certificates.issue(services, "gz-psb", body, idempotency_key=uuid.uuid4().hex)
        assert caught.value.code == code, body
    with pytest.raises(Forbidden):
        await certificates.issue(services, "gz-mz", id_card_body(), idempotency_key=uuid.uuid4().hex)
    assert await services.store["certificates"].count_documents({}) == 0
    assert await services.store["issuer_requests"].count_documents({}) == 0


async def test_same_request_twice_creates_one_certificate(services) -> None:
    first = await certificates.issue(services, "gz-psb", id_card_body(), idempotency_key="key-0000001")
    again = await certificates.issue(services, "gz-psb", id_card_body(), idempotency_key="key-0000001")
    assert not first.replayed and again.replayed
    assert again.certificate["identifier"] == first.certificate["identifier"]
    assert await services.store["certificates"].count_documents({}) == 1
    with pytest.raises(Conflict):
        await certificates.issue(services, "gz-psb", id_card_body(name="李明"), idempotency_key="key-0000001")


async def test_reissue_supersedes_and_keeps_the_old_version_readable(services) -> None:
    old = await issue(services)
    fields = {**id_card_body()["fields"], "address": "广州市天河区天河路1号"}
    new = await certificates.reissue(services, "gz-psb", old["identifier"], {"fields": fields})
    old_ident = certificates.parse_identifier(old["identifier"])
    new_ident = certificates.parse_identifier(new["identifier"])
    assert (new_ident.serial, new_ident.version) == (old_ident.serial, 2)
    stale = await certificates.get_certificate(services.store, old["_id"])
    assert stale["status"] == "superseded" and stale["superseded_by"] == new["_id"]
    mine = await certificates.list_for_holder(services.store, holder_index(services))
    assert [c["identifier"] for c in mine] == [new["identifier"]]
    everything = await certificates.list_for_holder(services.store, holder_index(services), include_history=True)
    assert len(everything) == 2
    with pytest.raises(Conflict):
        await certificates.reissue(services, "gz-psb", old["identifier"], {"fields": fields})


async def test_revocation_is_recorded_with_history_and_only_once(services) -> None:
    doc = await issue(services)
    with pytest.raises(NotFound):  # another department cannot touch it
        await certificates.change_status(services, "sz-psb", doc["identifier"], "revoked", "错误签发")
    revoked = await certificates.change_status(services, "gz-psb", doc["identifier"], "revoked", "错误签发")
    assert revoked["status"] == "revoked"
    assert [h["status"] for h in revoked["status_history"]] == ["valid", "revoked"]
    with pytest.raises(Conflict):
        await certificates.change_status(services, "gz-psb", doc["identifier"], "cancelled", "再次")
    with pytest.raises(InvalidInput):
        await certificates.change_status(services, "gz-psb", doc["identifier"], "deleted", "x")


async def test_demo_certificates_load_once(services) -> None:
    created = await certificates.load_demo_certificates(services)
    assert created > 20
    assert await certificates.load_demo_certificates(services) == 0
    mine = await certificates.list_for_holder(services.store, holder_index(services))
    assert len(mine) >= 5


async def test_copy_made_in_the_holders_presence_is_recorded(services) -> None:
    from tests.fixtures.certs import KIOSK

    doc = await issue(services)
    copy = await certificates.make_copy_for_holder(services, holder_index(services), doc["_id"], KIOSK, "打印备用")
    assert copy["watermark"].startswith("仅供办理打印备用使用")
    [entry] = await certificates.access_history(services.store, holder_index(services), doc["_id"])
    assert entry["copy"]["id"] == copy["_id"] and entry["who"]["kind"] == "kiosk"
    with pytest.raises(NotFound):
        await certificates.make_copy_for_holder(services, holder_index(services, OTHER), doc["_id"], KIOSK, "打印备用")
