"""The one number: GB 11643 citizen ID numbers and GB 32100 credit codes."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from yiwang.crypto import FieldCipher
from yiwang.errors import InvalidInput
from yiwang.identity import (
    CREDIT_CHARSET,
    credit_check_character,
    id_check_character,
    mask_name,
    mask_number,
    normalize_credit_code,
    normalize_id_number,
    org_code_check_character,
    parse_id_number,
    parse_one_number,
    protect_number,
    reveal_number,
)

GUANGDONG_REGIONS = ["440103", "440104", "440106", "440111", "440303", "440304", "440604", "441900", "440117"]


@st.composite
def citizen_ids(draw: st.DrawFn) -> str:
    region = draw(st.sampled_from(GUANGDONG_REGIONS))
    born = draw(st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date.today()))
    sequence = draw(st.integers(min_value=1, max_value=999))
    first17 = f"{region}{born:%Y%m%d}{sequence:03d}"
    return first17 + id_check_character(first17)


ORG_BODY_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"


@st.composite
def credit_codes(draw: st.DrawFn) -> str:
    prefix = draw(st.sampled_from(["11", "12", "13", "51", "52", "91", "92", "93"]))
    region = draw(st.sampled_from(GUANGDONG_REGIONS))
    body = "".join(draw(st.lists(st.sampled_from(ORG_BODY_CHARS), min_size=8, max_size=8)))
    org = body + org_code_check_character(body)
    first17 = prefix + region + org
    if any(c not in CREDIT_CHARSET for c in first17):  # org check "X" is allowed, others filtered
        first17 = first17.replace("I", "1")
    return first17 + credit_check_character(first17)


@given(citizen_ids())
def test_every_valid_citizen_id_is_accepted(number: str) -> None:
    assert normalize_id_number(number) == number
    assert normalize_id_number(number.lower()) == number


@given(citizen_ids(), st.integers(min_value=0, max_value=17), st.sampled_from("0123456789X"))
def test_any_single_character_change_to_a_citizen_id_is_rejected(number: str, position: int, new: str) -> None:
    if number[position] == new:
        return
    corrupted = number[:position] + new + number[position + 1 :]
    with pytest.raises(InvalidInput) as caught:
        normalize_id_number(corrupted)
    assert caught.value.code.startswith("id_number.")


@given(credit_codes())
def test_every_valid_credit_code_is_accepted(code: str) -> None:
    assert normalize_credit_code(code) == code


@settings(max_examples=300)
@given(credit_codes(), st.integers(min_value=0, max_value=17), st.sampled_from(CREDIT_CHARSET))
def test_any_single_character_change_to_a_credit_code_is_rejected(code: str, position: int, new: str) -> None:
    if code[position] == new:
        return
    corrupted = code[:position] + new + code[position + 1 :]
    with pytest.raises(InvalidInput) as caught:
        normalize_credit_code(corrupted)
    assert caught.value.code.startswith("credit_code.")


@pytest.mark.parametrize(
    ("number", "code"),
    [
        ("44010619900101123", "id_number.length"),
        ("4401061990010112345", "id_number.length"),
        ("44010619900230123X", "id_number.birth_date"),  # no 30 February
        ("440106" + "20990101" + "1234", "id_number.birth_date"),  # in the future
        ("44010619900101A23X", "id_number.characters"),
        ("99010619900101123X", "id_number.region"),
        ("440106199001011230", "id_number.checksum"),
    ],
)
def test_each_rejection_says_why(number: str, code: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        normalize_id_number(number)
    assert caught.value.code == code
    assert caught.value.message  # a Chinese sentence for the person


def test_lower_case_x_is_normalised() -> None:
    assert normalize_id_number("11010519491231002x") == "11010519491231002X"


def test_fifteen_digit_numbers_are_upgraded() -> None:
    assert normalize_id_number("110105491231002") == "11010519491231002X"


def test_birth_date_and_gender_are_read_from_the_number() -> None:
    parsed = parse_id_number("11010519491231002X")
    assert parsed.birth_date == dt.date(1949, 12, 31)
    assert parsed.gender == "female"  # 17th digit 2 is even


def test_known_credit_code_is_valid_and_corruptions_name_the_check() -> None:
    assert normalize_credit_code("91350100M000100Y43") == "91350100M000100Y43"
    with pytest.raises(InvalidInput) as caught:
        normalize_credit_code("91350100M000100Y44")
    assert caught.value.code == "credit_code.checksum"
    with pytest.raises(InvalidInput) as caught:
        normalize_credit_code("91350100M0001O0Y43")
    assert caught.value.code == "credit_code.characters"


def test_one_number_tells_person_from_organisation() -> None:
    assert parse_one_number("11010519491231002X").kind == "person"
    assert parse_one_number("91350100M000100Y43").kind == "organisation"


def test_masking_hides_birth_date_and_given_name() -> None:
    assert mask_number("44010619900101123X") == "440106********123X"
    assert mask_name("张三") == "张*"
    assert mask_name("欧阳娜娜") == "欧阳**"


def test_stored_number_is_sealed_and_found_by_blind_index() -> None:
    cipher = FieldCipher(b"0" * 16, b"1" * 32)
    number = parse_one_number("11010519491231002X")
    stored = protect_number(cipher, number)
    assert "11010519491231002X" not in repr(stored)
    assert stored["index"] == protect_number(cipher, number)["index"]  # deterministic lookup
    assert stored["sealed"] != protect_number(cipher, number)["sealed"]  # randomised encryption
    assert reveal_number(cipher, stored) == number
    other_key = FieldCipher(b"2" * 16, b"1" * 32)
    with pytest.raises(InvalidInput):
        reveal_number(other_key, stored)


def test_all_digit_credit_codes_are_read_as_organisations() -> None:
    # Government organs' codes can be digits only; they are not ID numbers.
    body = "00749912"
    first17 = "11440100" + body + org_code_check_character(body)
    code = first17 + credit_check_character(first17)
    assert code[:17].isdigit()
    assert parse_one_number(code).kind == "organisation"
