"""Edge cases of every identifier the product parses: citizen ID numbers, unified
social credit codes and GB/T 36904 certificate identifiers. One rule for all:
ASCII only, no NFKC folding, so full-width input is refused (docs/certificates.md)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fixtures.certs import id_card_body, issue
from tests.test_identity import citizen_ids, credit_codes
from yiwang import certificates
from yiwang.errors import InvalidInput
from yiwang.identity import normalize_credit_code, normalize_id_number, parse_id_number, parse_one_number

FULL_WIDTH = "０１２３４５６７８９Ｘ"
ID_ALPHABET = "0123456789X" + FULL_WIDTH + "A "
CREDIT_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ" + FULL_WIDTH + "Ａ"
IDENT_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ." + FULL_WIDTH


def to_full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


@st.composite
def identifiers(draw: st.DrawFn) -> certificates.Identifier:
    type_code = draw(credit_codes()) + f"{draw(st.integers(1, 999)):03d}"
    serial = f"{draw(st.integers(0, 10**10 - 1)):010d}"
    return certificates.Identifier(type_code, draw(credit_codes()), serial, draw(st.integers(1, 999)))


def test_full_width_id_numbers_are_refused_for_their_characters() -> None:
    mixed = "４４０１０６19８５０１０１１２３"
    for raw in (to_full_width("44010619850101123X"), to_full_width("440106850101123"), mixed):
        with pytest.raises(InvalidInput) as caught:
            normalize_id_number(raw)
        assert caught.value.code == "id_number.characters"
        with pytest.raises(InvalidInput) as caught:
            parse_one_number(raw)
        assert caught.value.code == "id_number.characters"


def test_full_width_credit_codes_and_identifiers_are_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        normalize_credit_code(to_full_width("91350100M000100Y43"))
    assert caught.value.code == "credit_code.characters"
    text = str(certificates.Identifier("11100000000013127D001", "11440100007499078Q", "0000000042", 1))
    with pytest.raises(InvalidInput) as caught:
        certificates.parse_identifier(text.replace(".001.", ".００１."))
    assert caught.value.code == "certificate.identifier_invalid"


@pytest.mark.parametrize(
    ("number", "code"),
    [
        ("000000850101123", "id_number.region"),
        ("990106850101123", "id_number.region"),
        ("440106850101000", "id_number.sequence"),
        ("440106850230123", "id_number.birth_date"),
        ("44010685010112X", "id_number.characters"),
    ],
)
def test_fifteen_digit_numbers_are_checked_like_eighteen_digit_ones(number: str, code: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        normalize_id_number(number)
    assert caught.value.code == code


@given(citizen_ids())
def test_every_valid_citizen_id_round_trips_and_its_fifteen_digit_form_upgrades_to_it(number: str) -> None:
    assert parse_id_number(number).number == number
    assert parse_one_number(number).value == number
    if number[6:8] == "19":
        legacy = number[:6] + number[8:17]
        assert normalize_id_number(legacy) == number


@settings(max_examples=300)
@given(citizen_ids(), st.integers(0, 17), st.sampled_from(ID_ALPHABET))
def test_every_single_character_corruption_of_a_citizen_id_is_refused(number: str, pos: int, new: str) -> None:
    corrupted = number[:pos] + new + number[pos + 1 :]
    if corrupted == number:
        return
    with pytest.raises(InvalidInput):
        parse_id_number(corrupted)
    # An 18-character corruption can happen to be a valid credit code (1 in 31): never a citizen's number.
    try:
        found = parse_one_number(corrupted)
    except InvalidInput:
        return
    assert found.kind == "organisation"


@given(credit_codes())
def test_every_valid_credit_code_round_trips(code: str) -> None:
    assert normalize_credit_code(code) == code
    assert normalize_credit_code(code.lower()) == code
    assert parse_one_number(code).value == code


@settings(max_examples=300)
@given(credit_codes(), st.integers(0, 17), st.sampled_from(CREDIT_ALPHABET))
def test_every_single_character_corruption_of_a_credit_code_is_refused(code: str, pos: int, new: str) -> None:
    corrupted = code[:pos] + new + code[pos + 1 :]
    if corrupted == code:
        return
    with pytest.raises(InvalidInput):
        normalize_credit_code(corrupted)


@given(identifiers())
def test_every_valid_certificate_identifier_round_trips(ident: certificates.Identifier) -> None:
    text = str(ident)
    assert certificates.parse_identifier(text) == ident
    assert str(certificates.parse_identifier(text.lower())) == text


@settings(max_examples=300)
@given(identifiers(), st.integers(0, 200), st.sampled_from(IDENT_ALPHABET))
def test_every_single_character_corruption_of_an_identifier_is_refused(
    ident: certificates.Identifier, pos: int, new: str
) -> None:
    text = str(ident)
    i = pos % len(text)
    corrupted = text[:i] + new + text[i + 1 :]
    if corrupted == text:
        return
    with pytest.raises(InvalidInput) as caught:
        certificates.parse_identifier(corrupted)
    assert caught.value.code in ("certificate.identifier_invalid", "certificate.identifier_checksum")


async def test_reissue_without_any_field_keeps_the_certificates_content(services) -> None:
    old = await issue(services)
    new = await certificates.reissue(services, "gz-psb", old["identifier"], {})
    assert new["version"] == 2 and new["fields_digest"] == old["fields_digest"]
    assert certificates.open_fields(services, new) == id_card_body()["fields"]
    assert certificates.full_view(services.cipher, new)["number"] == id_card_body()["number"]
