"""The one number (一号): citizen ID numbers (GB 11643-1999) and unified social
credit codes (GB 32100-2015): validation with a precise reason, normalisation,
masking for display, and the sealed form kept at rest.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from yiwang.crypto import FieldCipher
from yiwang.errors import InvalidInput

# ---- GB 11643-1999 citizen identity number ---------------------------------

_ID_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
_ID_CHECK = "10X98765432"
# GB/T 2260 province-level codes (first two digits of the region code).
PROVINCE_CODES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 "
    "50 51 52 53 54 61 62 63 64 65 71 81 82 83 91".split()
)


def id_check_character(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character over the first 17 digits."""
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def _reject(code: str, message: str) -> InvalidInput:
    return InvalidInput(f"id_number.{code}", message)


def _birth_date(digits: str) -> dt.date:
    try:
        born = dt.date(int(digits[0:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        raise _reject("birth_date", "身份证号码中的出生日期不存在") from None
    if born > dt.date.today() or born.year < 1880:
        raise _reject("birth_date", "身份证号码中的出生日期不合理")
    return born


def normalize_id_number(raw: str) -> str:
    """Return the canonical 18-character number or raise with the exact reason.

    15-digit legacy numbers (first generation, 19xx birth year) are upgraded.
    """
    if not isinstance(raw, str):
        raise _reject("type", "身份证号码必须是文字")
    value = raw.strip()
    if not value.isascii():
        # Decided once for every identifier: no NFKC folding, full-width or other
        # non-ASCII characters are refused (docs/certificates.md).
        raise _reject("characters", "身份证号码只能包含半角数字和 X（请关闭全角输入）")
    value = value.upper()
    if len(value) == 15:
        if not value.isdigit():
            raise _reject("characters", "15 位身份证号码只能包含数字")
        if value[:2] not in PROVINCE_CODES:
            raise _reject("region", "身份证号码中的行政区划代码无效")
        _birth_date("19" + value[6:12])
        if value[12:15] == "000":
            raise _reject("sequence", "身份证号码中的顺序码无效")
        first17 = value[:6] + "19" + value[6:]
        return first17 + id_check_character(first17)
    if len(value) != 18:
        raise _reject("length", "身份证号码应为 18 位")
    if not value[:17].isdigit() or not (value[17].isdigit() or value[17] == "X"):
        raise _reject("characters", "身份证号码前 17 位必须是数字，最后一位是数字或 X")
    if value[:2] not in PROVINCE_CODES:
        raise _reject("region", "身份证号码中的行政区划代码无效")
    _birth_date(value[6:14])
    if value[14:17] == "000":
        raise _reject("sequence", "身份证号码中的顺序码无效")
    if id_check_character(value[:17]) != value[17]:
        raise _reject("checksum", "身份证号码校验位不正确，请核对")
    return value


@dataclass(frozen=True)
class CitizenId:
    number: str
    region: str
    birth_date: dt.date
    gender: Literal["male", "female"]


def parse_id_number(raw: str) -> CitizenId:
    number = normalize_id_number(raw)
    return CitizenId(
        number=number,
        region=number[:6],
        birth_date=_birth_date(number[6:14]),
        gender="male" if int(number[16]) % 2 else "female",
    )


# ---- GB 32100-2015 unified social credit code ------------------------------

CREDIT_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_VALUE = {c: i for i, c in enumerate(CREDIT_CHARSET)}
_CREDIT_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
# Registration authority → allowed organisation types (GB 32100-2015 table 1).
_CREDIT_TYPES = {
    "1": "1239",  # 机构编制: 机关, 事业单位, 中央编办直接管理机构编制的群众团体, 其他
    "2": "19",  # 外交
    "3": "12349",  # 司法行政
    "4": "19",  # 文化
    "5": "1239",  # 民政: 社会团体, 民办非企业单位, 基金会, 其他
    "6": "129",  # 旅游
    "7": "129",  # 宗教
    "8": "19",  # 工会
    "9": "123",  # 工商/市场监管: 企业, 个体工商户, 农民专业合作社
    "A": "19",  # 中央军委改革和编制办公室
    "N": "1239",  # 农业
    "Y": "1",  # 其他
}


def _org_value(c: str) -> int:
    return int(c) if c.isdigit() else ord(c) - ord("A") + 10


def org_code_check_character(body8: str) -> str:
    """GB 11714 check character of the 9-character organisation code."""
    remainder = 11 - sum(_org_value(c) * w for c, w in zip(body8, _ORG_WEIGHTS, strict=True)) % 11
    return {10: "X", 11: "0"}.get(remainder, str(remainder))


def credit_check_character(first17: str) -> str:
    total = sum(_CREDIT_VALUE[c] * w for c, w in zip(first17, _CREDIT_WEIGHTS, strict=True))
    return CREDIT_CHARSET[(31 - total % 31) % 31]


def normalize_credit_code(raw: str) -> str:
    if not isinstance(raw, str):
        raise InvalidInput("credit_code.type", "统一社会信用代码必须是文字")
    value = raw.strip()
    if not value.isascii():
        raise InvalidInput("credit_code.characters", "统一社会信用代码只能包含半角数字和大写字母（请关闭全角输入）")
    value = value.upper()
    if len(value) != 18:
        raise InvalidInput("credit_code.length", "统一社会信用代码应为 18 位")
    if any(c not in _CREDIT_VALUE for c in value):
        raise InvalidInput("credit_code.characters", "统一社会信用代码含有不允许的字符（不使用 I、O、Z、S、V）")
    authority, kind = value[0], value[1]
    if authority not in _CREDIT_TYPES or kind not in _CREDIT_TYPES[authority]:
        raise InvalidInput("credit_code.type_code", "统一社会信用代码的登记管理部门或机构类别代码无效")
    if not value[2:8].isdigit():
        raise InvalidInput("credit_code.region", "统一社会信用代码中的行政区划代码无效")
    if org_code_check_character(value[8:16]) != value[16]:
        raise InvalidInput("credit_code.org_checksum", "统一社会信用代码中的组织机构代码校验位不正确")
    if credit_check_character(value[:17]) != value[17]:
        raise InvalidInput("credit_code.checksum", "统一社会信用代码校验位不正确，请核对")
    return value


# ---- The one number, either kind -------------------------------------------

HolderKind = Literal["person", "organisation"]
# GB/T 36903 持证主体代码类型: 111 居民身份证号码, 001 统一社会信用代码.
HOLDER_CODE_TYPE = {"person": "111", "organisation": "001"}


@dataclass(frozen=True)
class OneNumber:
    kind: HolderKind
    value: str

    @property
    def masked(self) -> str:
        return mask_number(self.value)


def parse_one_number(raw: str) -> OneNumber:
    """Accept either a citizen ID number or a credit code.

    Both are 18 characters and a credit code may be all digits, so the shape
    alone cannot decide: whichever validates wins; if neither does, the error
    of the likelier kind is reported.
    """
    if not isinstance(raw, str):
        raise InvalidInput("one_number.type", "证件号码必须是文字")
    value = raw.strip()
    if not value.isascii():
        raise _reject("characters", "证件号码只能包含半角数字和字母（请关闭全角输入）")
    value = value.upper()
    try:
        return OneNumber("person", normalize_id_number(value))
    except InvalidInput as id_error:
        if len(value) == 18 and not (value[:17].isdigit() and value[17] in "0123456789X"):
            return OneNumber("organisation", normalize_credit_code(value))
        try:
            return OneNumber("organisation", normalize_credit_code(value))
        except InvalidInput:
            raise id_error from None


def mask_number(value: str) -> str:
    """440106********123X: region and last four stay, the birth date hides."""
    if len(value) <= 10:
        return value[:2] + "*" * max(len(value) - 4, 0) + value[-2:]
    return value[:6] + "*" * (len(value) - 10) + value[-4:]


def mask_name(name: str) -> str:
    """张三 → 张*, 欧阳娜娜 → 欧阳**; one-character names keep their first."""
    if len(name) <= 1:
        return name
    keep = 2 if len(name) >= 4 else 1
    return name[:keep] + "*" * (len(name) - keep)


def mask_phone(phone: str) -> str:
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 7 else "*" * len(phone)


# ---- At rest --------------------------------------------------------------

NUMBER_PURPOSE = "one_number"


def protect_number(cipher: FieldCipher, number: OneNumber) -> dict[str, str]:
    """The three stored forms of a number: sealed, blind index, masked."""
    return {
        "kind": number.kind,
        "sealed": cipher.seal(NUMBER_PURPOSE, number.value),
        "index": cipher.blind_index(NUMBER_PURPOSE, number.value),
        "masked": number.masked,
    }


def number_index(cipher: FieldCipher, number: OneNumber) -> str:
    return cipher.blind_index(NUMBER_PURPOSE, number.value)


def number_indexes(cipher: FieldCipher, number: OneNumber) -> list[str]:
    """The number's index under the current blind-index key, then under each previous one (rotation)."""
    return cipher.blind_indexes(NUMBER_PURPOSE, number.value)


def index_match(indexes: list[str]) -> str | dict[str, list[str]]:
    """A query value matching any of ``indexes`` (plain equality outside a rotation: no ``$in`` scan)."""
    return indexes[0] if len(indexes) == 1 else {"$in": indexes}


def reveal_number(cipher: FieldCipher, stored: dict[str, str]) -> OneNumber:
    value = cipher.open(NUMBER_PURPOSE, stored["sealed"])
    if stored["kind"] == "person":
        return OneNumber("person", value)
    if stored["kind"] == "organisation":
        return OneNumber("organisation", value)
    raise InvalidInput("one_number.kind", "证件类型未知")
