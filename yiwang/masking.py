"""What a kiosk screen may show of a person: one policy, applied in one place.

Anyone may be standing behind the resident at a kiosk, and the screen stays lit
while the resident looks away. So every certificate field shown on a kiosk
screen goes through :func:`kiosk_certificate_view`, which decides by the kind
of field (:func:`field_kind`):

============  =====================================  ==================================
kind          rule on the kiosk screen               example
============  =====================================  ==================================
name          surname kept, rest masked              陈国华 → 陈**
id_number     region (6) and last 4 kept             440104********2151
number        other personal numbers: ends kept      440104012345 → 440104**2345
birth_date    hidden entirely (it *is* the hidden    1952-03-12 → ****-**-**
              digits of the ID number)
address       kept up to the county/district         广州市越秀区北京街… → 广州市越秀区******
other         shown (gender, authority, dates…)      男 · 广州市公安局越秀区分局
============  =====================================  ==================================

The printed annotated copy (加注件) and the holder's own phone show the
complete certificate; the kiosk's session banner shows only the masked name and
number (``yiwang.kiosk_sessions``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from yiwang.identity import mask_name, mask_number

FieldKind = Literal["name", "id_number", "number", "birth_date", "address", "other"]

NAME_FIELDS = frozenset({"name", "holder_name", "right_holder", "legal_representative", "daily_supervisor", "doctor"})
ADDRESS_FIELDS = frozenset({"address", "location", "birth_place", "premises_address"})
HIDDEN_DATE = "****-**-**"
_ID_NUMBER = re.compile(r"^[1-9]\d{5}(19|20)\d{2}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])\d{3}[\dX]$")
_COUNTY = re.compile(r"^.{2,}?(?:自治县|县|区|旗|市(?=.{0,2}(?:镇|乡|街)))")
_CITY = re.compile(r"^.{2,}?市")
ADDRESS_MASK = "******"


def field_kind(key: str, value: Any = None) -> FieldKind:
    """The kind of a certificate field, by its name (and, for ID numbers, its value)."""
    if key in NAME_FIELDS or key.endswith("_name"):
        return "name"
    if "birth" in key and ("date" in key or "time" in key):
        return "birth_date"
    if key in ADDRESS_FIELDS or key.endswith("_address"):
        return "address"
    if key.endswith("id_number") or key == "social_security_number" or (
        isinstance(value, str) and _ID_NUMBER.match(value)
    ):
        return "id_number"
    if key.endswith(("_number", "_serial")):
        return "number"
    return "other"


def mask_address(address: str) -> str:
    """Up to the county or district (区/县), else up to the city; the rest masked."""
    text = address.strip()
    found = _COUNTY.match(text) or _CITY.match(text)
    kept = found.group(0) if found and len(found.group(0)) < len(text) else text[: min(3, len(text) // 2)]
    return kept + ADDRESS_MASK


def mask_field(key: str, value: Any) -> Any:
    """One field as a kiosk screen shows it."""
    if not isinstance(value, str) or not value:
        return value
    kind = field_kind(key, value)
    if kind == "name":
        return mask_name(value)
    if kind in ("id_number", "number"):
        return mask_number(value)
    if kind == "birth_date":
        return HIDDEN_DATE
    if kind == "address":
        return mask_address(value)
    return value


def kiosk_certificate_view(view: Mapping[str, Any]) -> dict[str, Any]:
    """A certificate view (``certificates.full_view``) with every field masked by the policy."""
    fields = {key: mask_field(key, value) for key, value in (view.get("fields") or {}).items()}
    return {**view, "fields": fields}
