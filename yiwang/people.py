"""Residents and companies, known by their one number.

Nothing personal is stored in clear: the number is sealed with a blind index
and a masked form; names and phone numbers are sealed with a masked form.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yiwang.crypto import FieldCipher
from yiwang.errors import InvalidInput, NotFound
from yiwang.identity import (
    OneNumber,
    index_match,
    mask_name,
    mask_phone,
    normalize_credit_code,
    number_indexes,
    parse_id_number,
    parse_one_number,
    protect_number,
)
from yiwang.store import Document, Store
from yiwang.timeutil import utcnow

DEMO_DIR = Path(__file__).resolve().parent.parent / "data" / "demo"
NAME_PURPOSE = "name"
PHONE_PURPOSE = "phone"
MAX_NAME_LENGTH = 30


@dataclass(frozen=True)
class Person:
    """What the rest of the system may know about a resident without opening seals."""

    id: str
    index: str  # blind index of the one number
    masked_number: str
    masked_name: str
    region: str


def _person(doc: Document) -> Person:
    return Person(doc["_id"], doc["number"]["index"], doc["number"]["masked"], doc["name"]["masked"], doc["region"])


def validate_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("person.name_required", "请填写姓名", fields={"name": "请填写姓名"})
    clean = name.strip()
    if len(clean) > MAX_NAME_LENGTH or any(ch.isdigit() for ch in clean):
        raise InvalidInput("person.name_invalid", "姓名格式不正确", fields={"name": "姓名格式不正确"})
    return clean


def validate_phone(phone: Any, country_code: str = "86") -> str:
    """A mainland mobile number (11 digits from 1), or, with another country code, 4–15 digits (E.164)."""
    if country_code != "86":
        if not isinstance(phone, str) or not phone.isdigit() or not 4 <= len(phone) <= 15:
            raise InvalidInput("person.phone_invalid", "手机号码格式不正确", fields={"phone": "手机号码格式不正确"})
        return phone
    if not isinstance(phone, str) or len(phone) != 11 or not phone.isdigit() or phone[0] != "1":
        raise InvalidInput("person.phone_invalid", "手机号码格式不正确", fields={"phone": "请输入 11 位手机号码"})
    return phone


def sealed_text(cipher: FieldCipher, purpose: str, value: str, masked: str) -> dict[str, str]:
    return {"sealed": cipher.seal(purpose, value), "masked": masked}


async def register_resident(
    store: Store, cipher: FieldCipher, id_number: str, name: str, *, phone: str | None = None, demo: bool = False
) -> Person:
    """Create the resident if new; returns the existing one otherwise (idempotent)."""
    parsed = parse_id_number(id_number)
    clean_name = validate_name(name)
    number = OneNumber("person", parsed.number)
    indexes = number_indexes(cipher, number)
    existing = await store["residents"].find_one({"number.index": index_match(indexes)})
    if existing is not None:
        return _person(existing)
    index = indexes[0]
    doc: Document = {
        "_id": uuid.uuid4().hex,
        "number": protect_number(cipher, number),
        "name": sealed_text(cipher, NAME_PURPOSE, clean_name, mask_name(clean_name)),
        "phone": sealed_text(cipher, PHONE_PURPOSE, validate_phone(phone), mask_phone(phone)) if phone else None,
        "region": parsed.region,
        "gender": parsed.gender,
        "birth_year": parsed.birth_date.year,
        "demo": demo,
        "created_at": utcnow(),
    }
    await store["residents"].update_one({"number.index": index}, {"$setOnInsert": doc}, upsert=True)
    return _person(await store["residents"].find_one({"number.index": index}) or doc)


async def resident_by_number(store: Store, cipher: FieldCipher, raw_number: str) -> Person | None:
    number = parse_one_number(raw_number)
    doc = await store["residents"].find_one({"number.index": index_match(number_indexes(cipher, number))})
    return _person(doc) if doc else None


async def stored_person_index(store: Store, cipher: FieldCipher, number: OneNumber) -> str:
    """The index a person's records are kept under: during a blind-index key rotation a resident
    not yet re-indexed is found under an older key's index (and their records with it)."""
    indexes = number_indexes(cipher, number)
    if len(indexes) > 1:
        doc = await store["residents"].find_one({"number.index": {"$in": indexes}}, {"number.index": 1})
        if doc is not None:
            return str(doc["number"]["index"])
    return indexes[0]


async def resident_by_index(store: Store, index: str) -> Person:
    doc = await store["residents"].find_one({"number.index": index})
    if doc is None:
        raise NotFound("person.not_found", "找不到该居民")
    return _person(doc)


async def resident(store: Store, resident_id: str) -> Person:
    doc = await store["residents"].find_one({"_id": resident_id})
    if doc is None:
        raise NotFound("person.not_found", "找不到该居民")
    return _person(doc)


async def registered_name(store: Store, cipher: FieldCipher, index: str) -> str:
    """The recorded name of the holder of ``index`` (opened in memory only), or "" if unknown."""
    doc = await store["residents"].find_one({"number.index": index}, {"name": 1})
    return cipher.open(NAME_PURPOSE, doc["name"]["sealed"]) if doc else ""


async def name_matches(store: Store, cipher: FieldCipher, index: str, name: str) -> bool:
    """Whether the recorded name of the holder of ``index`` is ``name`` (opened in memory only)."""
    doc = await store["residents"].find_one({"number.index": index}, {"name": 1})
    return doc is not None and cipher.open(NAME_PURPOSE, doc["name"]["sealed"]) == name.strip()


async def register_company(
    store: Store, cipher: FieldCipher, credit_code: str, name: str, legal_representative_id: str, *, region: str
) -> str:
    code = normalize_credit_code(credit_code)
    number = OneNumber("organisation", code)
    indexes = number_indexes(cipher, number)
    existing = await store["companies"].find_one({"number.index": index_match(indexes)}, {"number.index": 1})
    if existing is not None:
        return str(existing["number"]["index"])
    index = indexes[0]
    rep = OneNumber("person", parse_id_number(legal_representative_id).number)
    doc: Document = {
        "_id": uuid.uuid4().hex,
        "number": protect_number(cipher, number),
        "name": name,  # a company's name is public register data, not personal data
        "legal_representative_index": await stored_person_index(store, cipher, rep),
        "region": region,
        "created_at": utcnow(),
    }
    await store["companies"].update_one({"number.index": index}, {"$setOnInsert": doc}, upsert=True)
    return index


async def companies_represented_by(store: Store, person_index: str) -> list[Document]:
    cursor = store["companies"].find({"legal_representative_index": person_index}, {"number.sealed": 0})
    return [doc async for doc in cursor]


async def load_demo_people(store: Store, cipher: FieldCipher) -> None:
    residents = json.loads((DEMO_DIR / "residents.json").read_text(encoding="utf-8"))
    for entry in residents:
        await register_resident(store, cipher, entry["id_number"], entry["name"], phone=entry.get("phone"), demo=True)
    companies = json.loads((DEMO_DIR / "companies.json").read_text(encoding="utf-8"))
    for entry in companies:
        await register_company(
            store,
            cipher,
            entry["credit_code"],
            entry["name"],
            entry["legal_representative_id_number"],
            region=entry["region"],
        )
