"""亮证: single-use, short-lived display codes redeemed by kiosks and windows."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
import segno

from tests.fixtures.certs import KIOSK, OTHER, WINDOW, holder_index, issue
from yiwang import certificates, display_codes
from yiwang.errors import Conflict, Gone, InvalidInput, NotFound


async def test_display_code_is_short_random_and_free_of_personal_data(services) -> None:
    doc = await issue(services)
    code = await display_codes.create_display_code(services, holder_index(services), doc["_id"], "社保业务")
    text = code["code"]
    assert text.startswith("YWD1:") and len(text) == 31
    assert segno.make(text, error="m", micro=False).version <= 6
    assert "440106" not in text
    stored = await services.store["display_codes"].find_one({})
    assert text[5:] not in repr(stored)  # only the digest is stored
    other = await display_codes.create_display_code(services, holder_index(services), doc["_id"], "社保业务")
    assert other["code"] != text


async def test_redemption_returns_the_watermarked_certificate_and_shows_in_history(services) -> None:
    doc = await issue(services)
    code = await display_codes.create_display_code(services, holder_index(services), doc["_id"], "社保业务")
    got = await display_codes.redeem_display_code(services, code["code"], WINDOW)
    assert got["certificate"]["fields"]["name"] == "李明轩"
    assert got["watermark"]["text"].startswith("仅供办理社保业务使用 ")
    assert got["watermark"]["made_by"] == WINDOW.label
    history = await certificates.access_history(services.store, holder_index(services), doc["_id"])
    assert history[0]["who"] == {"kind": "window", "label": WINDOW.label}
    assert history[0]["purpose"] == "社保业务"
    assert history[0]["copy"]["id"] == got["copy"]["id"]


async def test_concurrent_redemptions_succeed_exactly_once(services) -> None:
    doc = await issue(services)
    code = await display_codes.create_display_code(services, holder_index(services), doc["_id"], "社保业务")
    results = await asyncio.gather(
        *(display_codes.redeem_display_code(services, code["code"], KIOSK) for _ in range(8)), return_exceptions=True
    )
    assert sum(1 for r in results if isinstance(r, dict)) == 1
    assert all(isinstance(r, Conflict) for r in results if not isinstance(r, dict))
    assert await services.store["certificate_copies"].count_documents({}) == 1


async def test_each_failure_has_its_own_code(services) -> None:
    doc = await issue(services)
    index = holder_index(services)
    code = await display_codes.create_display_code(services, index, doc["_id"], "社保业务")
    await display_codes.redeem_display_code(services, code["code"], WINDOW)
    with pytest.raises(Conflict) as used:
        await display_codes.redeem_display_code(services, code["code"], WINDOW)
    assert used.value.code == "certificate.display_code_used"

    with pytest.raises(NotFound) as unknown:
        await display_codes.redeem_display_code(services, "YWD1:" + "A" * 26, WINDOW)
    assert unknown.value.code == "certificate.display_code_unknown"

    with pytest.raises(InvalidInput) as malformed:
        await display_codes.redeem_display_code(services, "YWD1:not-a-code", WINDOW)
    assert malformed.value.code == "certificate.display_code_invalid"

    late = await display_codes.create_display_code(services, index, doc["_id"], "社保业务")
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    await services.store["display_codes"].update_many({"status": "active"}, {"$set": {"expires_at": past}})
    with pytest.raises(Gone) as expired:
        await display_codes.redeem_display_code(services, late["code"], WINDOW)
    assert expired.value.code == "certificate.display_code_expired"

    fresh = await display_codes.create_display_code(services, index, doc["_id"], "社保业务")
    await certificates.change_status(services, "gz-psb", doc["identifier"], "revoked", "错误签发")
    with pytest.raises(Gone) as revoked:
        await display_codes.redeem_display_code(services, fresh["code"], WINDOW)
    assert revoked.value.code == "certificate.revoked"
    with pytest.raises(Gone):
        await display_codes.create_display_code(services, index, doc["_id"], "社保业务")


async def test_renewal_retires_the_old_code(services) -> None:
    doc = await issue(services)
    index = holder_index(services)
    first = await display_codes.create_display_code(services, index, doc["_id"], "社保业务")
    with pytest.raises(NotFound):
        await display_codes.renew_display_code(services, holder_index(services, OTHER), first["handle"])
    second = await display_codes.renew_display_code(services, index, first["handle"])
    assert second["code"] != first["code"] and second["purpose"] == "社保业务"
    with pytest.raises(Gone):
        await display_codes.redeem_display_code(services, first["code"], WINDOW)
    assert (await display_codes.redeem_display_code(services, second["code"], WINDOW))["certificate"]["id"] == doc[
        "_id"
    ]


async def test_only_the_holder_gets_a_code_with_a_stated_purpose(services) -> None:
    doc = await issue(services)
    with pytest.raises(NotFound):
        await display_codes.create_display_code(services, holder_index(services, OTHER), doc["_id"], "社保业务")
    with pytest.raises(InvalidInput):
        await display_codes.create_display_code(services, holder_index(services), doc["_id"], "")
