"""存到手机: the kiosk offers a single-use pickup QR, only the holder's mini-program account can
claim it, the annotated copy lands in the holder's wallet and access history, the kiosk learns it."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from typing import Any

import pytest_asyncio

from tests.kiosk_support import RESIDENT, Kiosk, enrolled_kiosk
from tests.support.miniprogram import MiniProgram
from yiwang import certificates, copy_pickup, devices, kiosk_sessions
from yiwang.identity import OneNumber, number_index
from yiwang.runtime import Services
from yiwang.seed import load_catalog_files, load_demo_people

OTHER = ("李明轩", "440106199406183318")


@pytest_asyncio.fixture
async def demo(services: Services) -> Services:
    await load_catalog_files(services.store)  # the kiosk's hall
    await load_demo_people(services.store, services.cipher)
    services.catalog.invalidate()
    await certificates.load_demo_certificates(services)
    return services


def holder_index(services: Services) -> str:
    return number_index(services.cipher, OneNumber("person", RESIDENT["id_number"]))


async def first_certificate(services: Services) -> dict[str, Any]:
    return (await certificates.list_for_holder(services.store, holder_index(services)))[0]


async def offer_at(services: Services, kiosk: Kiosk, certificate_id: str, purpose: str = "本人留存") -> dict[str, Any]:
    """What the kiosk page does on 存到手机 (the domain call behind POST /kiosk/certificates/<id>/pickup)."""
    device = await devices.authenticate(services, kiosk.device_id, kiosk.credential)
    session = await kiosk_sessions.current(services, kiosk.token, kiosk.device_id)
    assert session is not None
    return await copy_pickup.offer(services, session, device, certificate_id, purpose)


async def phone(client: Any, fake_wechat: Any, person: tuple[str, str]) -> MiniProgram:
    mp = MiniProgram(client, fake_wechat)
    await mp.login()
    await mp.bind(*person)
    return mp


async def setup(demo: Services, client: Any, fake_wechat: Any) -> tuple[Kiosk, dict[str, Any], MiniProgram]:
    kiosk = await enrolled_kiosk(demo, client)
    await kiosk.identify()
    cert = await first_certificate(demo)
    holder = await phone(client, fake_wechat, (RESIDENT["name"], RESIDENT["id_number"]))
    return kiosk, cert, holder


async def test_the_holder_picks_the_copy_up_once_and_finds_it_in_the_wallet_and_history(
    demo: Services, client, fake_wechat
) -> None:
    kiosk, cert, holder = await setup(demo, client, fake_wechat)
    offer = await offer_at(demo, kiosk, cert["id"], "资格审核")

    body = await holder.post("/copies/pickup", {"code": offer["qr_text"]}, expect=201)
    copy = body["copy"]
    assert body["certificate"]["id"] == cert["id"]
    assert copy["made_by"] == {"kind": "kiosk", "label": "天河 9 号机"} and copy["purpose"] == "资格审核"
    assert copy["watermark"].startswith("仅供办理资格审核使用") and copy["expired"] is False

    again = await holder.post("/copies/pickup", {"code": offer["qr_text"]}, expect=409)
    assert again["error"]["code"] == "copy_pickup.used" and again["error"]["message"]

    wallet = await holder.get("/copies")
    assert [c["id"] for c in wallet["copies"]] == [copy["id"]]
    assert wallet["copies"][0]["certificate_name"] == cert["name"]
    status, png, response = await client.get(f"/api/mobile/v1/copies/{copy['id']}/image", headers=holder.headers)
    assert status == 200 and response.content_type == "image/png" and png.startswith(b"\x89PNG")
    status, pdf, response = await client.get(f"/api/mobile/v1/copies/{copy['id']}/image?format=pdf",
                                             headers=holder.headers)
    assert status == 200 and response.content_type == "application/pdf" and pdf.startswith(b"%PDF")
    bad = await holder.get(f"/copies/{copy['id']}/image", expect=400, format="gif")
    assert bad["error"]["code"] == "certificate.format_invalid"

    history = await holder.get(f"/certificates/{cert['id']}/access-history")
    picked = [e for e in history["entries"] if e["copy"] and e["copy"]["id"] == copy["id"]]
    assert len(picked) == 1 and picked[0]["who"]["label"] == "天河 9 号机" and picked[0]["purpose"] == "资格审核"
    assert "存到本人手机" in picked[0]["action_label"]
    actions = [e["action"] async for e in demo.store["audit"].find({"subject": cert["id"]})]
    for action in ("certificate.pickup_offered", "certificate.copy", "certificate.pickup",
                   "certificate.copy_download"):
        assert action in actions

    # the kiosk's long-poll answers at once
    status, done, _ = await kiosk.get(f"/kiosk/api/pickups/{offer['pickup_id']}/wait")
    assert status == 200 and done["status"] == "picked_up" and done["purpose"] == "资格审核"


async def test_another_resident_gets_403_and_the_code_still_works_for_the_holder(
    demo: Services, client, fake_wechat
) -> None:
    kiosk, cert, holder = await setup(demo, client, fake_wechat)
    offer = await offer_at(demo, kiosk, cert["id"])
    other = await phone(client, fake_wechat, OTHER)

    refused = await other.post("/copies/pickup", {"code": offer["qr_text"]}, expect=403)
    assert refused["error"]["code"] == "copy_pickup.not_holder" and refused["error"]["message"]
    assert await demo.store["certificate_copies"].count_documents({}) == 0
    assert (await demo.store["copy_pickups"].find_one({"_id": offer["pickup_id"]}))["status"] == "waiting"

    await holder.post("/copies/pickup", {"code": offer["qr_text"]}, expect=201)
    assert (await other.get("/copies"))["copies"] == []
    copy_id = (await holder.get("/copies"))["copies"][0]["id"]
    missing = await other.get(f"/copies/{copy_id}/image", expect=404)
    assert missing["error"]["code"] == "certificate.copy_not_found"


async def test_unknown_malformed_expired_codes_and_unverified_accounts_each_have_their_own_error(
    demo: Services, client, fake_wechat
) -> None:
    kiosk, cert, holder = await setup(demo, client, fake_wechat)
    unknown = await holder.post("/copies/pickup", {"code": "YWP1:" + "A" * 26}, expect=404)
    assert unknown["error"]["code"] == "copy_pickup.unknown"
    for bad in ("YWP1:short", "YWS1:" + "A" * 26, "YWP1:" + "1" * 26, 42, None, "x" * 500):
        body = await holder.post("/copies/pickup", {"code": bad}, expect=400)
        assert body["error"]["code"] == "copy_pickup.code_invalid" and "code" in body["error"]["fields"]
    body = await holder.post("/copies/pickup", [1, 2], expect=400)
    assert "error" in body

    offer = await offer_at(demo, kiosk, cert["id"])
    await demo.store["copy_pickups"].update_one(
        {"_id": offer["pickup_id"]}, {"$set": {"expires_at": dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)}})
    expired = await holder.post("/copies/pickup", {"code": offer["qr_text"]}, expect=410)
    assert expired["error"]["code"] == "copy_pickup.expired"

    fresh = await offer_at(demo, kiosk, cert["id"])
    unbound = MiniProgram(client, fake_wechat)
    await unbound.login()
    body = await unbound.post("/copies/pickup", {"code": fresh["qr_text"]}, expect=403)
    assert body["error"]["code"] == "auth.level_insufficient"
    body = await MiniProgram(client, fake_wechat).post("/copies/pickup", {"code": fresh["qr_text"]}, expect=401)
    assert "error" in body
    status, waited, _ = await kiosk.get(f"/kiosk/api/pickups/{offer['pickup_id']}/wait")
    assert status == 410 and waited["error"]["code"] == "copy_pickup.expired"
    assert await demo.store["certificate_copies"].count_documents({}) == 0


async def test_a_code_is_dead_once_the_kiosk_service_ended_or_the_certificate_is_no_longer_valid(
    demo: Services, client, fake_wechat
) -> None:
    kiosk, cert, holder = await setup(demo, client, fake_wechat)
    offer = await offer_at(demo, kiosk, cert["id"])
    await demo.store["certificates"].update_one({"_id": cert["id"]}, {"$set": {"status": "revoked"}})
    revoked = await holder.post("/copies/pickup", {"code": offer["qr_text"]}, expect=410)
    assert revoked["error"]["code"] == "certificate.revoked"
    assert (await demo.store["copy_pickups"].find_one({"_id": offer["pickup_id"]}))["status"] == "waiting"
    await demo.store["certificates"].update_one({"_id": cert["id"]}, {"$set": {"status": "valid"}})

    status, _, _ = await kiosk.post("/kiosk/api/session/end", json={})
    assert status == 200
    ended = await holder.post("/copies/pickup", {"code": offer["qr_text"]}, expect=410)
    assert ended["error"]["code"] == "copy_pickup.session_ended"
    assert await demo.store["certificate_copies"].count_documents({}) == 0


async def test_three_scans_at_the_same_moment_make_one_copy(demo: Services, client, fake_wechat) -> None:
    kiosk, cert, holder = await setup(demo, client, fake_wechat)
    offer = await offer_at(demo, kiosk, cert["id"])
    results = await asyncio.gather(
        *(holder.post("/copies/pickup", {"code": offer["qr_text"]}, expect=(201, 409)) for _ in range(3)))
    assert sum(1 for r in results if "copy" in r) == 1
    assert await demo.store["certificate_copies"].count_documents({}) == 1


async def test_the_kiosk_page_shows_the_qr_without_personal_data(demo: Services, client) -> None:
    kiosk = await enrolled_kiosk(demo, client)
    cert = await first_certificate(demo)
    html = {"Accept": "text/html"}
    status, _, _ = await kiosk.post(f"/kiosk/certificates/{cert['id']}/pickup", data={"purpose": "本人留存"},
                                    headers=html)
    assert status == 401  # not identified
    await kiosk.identify()
    status, _, _ = await kiosk.post(f"/kiosk/certificates/{cert['id']}/pickup", data={"purpose": "x"}, headers=html)
    assert status == 400
    assert await demo.store["copy_pickups"].count_documents({}) == 0
    status, page, _ = await kiosk.get(f"/kiosk/certificates/{cert['id']}", headers=html)
    assert status == 200 and "存到手机" in page.decode()
    status, page, response = await kiosk.post(f"/kiosk/certificates/{cert['id']}/pickup",
                                              data={"purpose": "本人留存"}, headers=html)
    text = page.decode()
    assert status == 200 and response.headers["Cache-Control"] == "no-store"
    assert 'id="pickup-qr"' in text and "<svg" in text and "120 秒内有效" in text
    assert RESIDENT["name"] not in text and RESIDENT["id_number"] not in text
    pickup_id = re.search(r'data-wait="/kiosk/api/pickups/([0-9a-f]{32})/wait"', text)
    assert pickup_id is not None
    # another kiosk cannot follow this pickup
    other = await enrolled_kiosk(demo, client, label="天河 10 号机")
    status, body, _ = await other.get(f"/kiosk/api/pickups/{pickup_id.group(1)}/wait")
    assert status == 404 and body["error"]["code"] == "copy_pickup.unknown"

    # each offer: a fresh random code; only its digest is stored
    first = await offer_at(demo, kiosk, cert["id"])
    second = await offer_at(demo, kiosk, cert["id"])
    for offer in (first, second):
        assert re.fullmatch(r"YWP1:[A-Z2-7]{26}", offer["qr_text"])  # 128 bits, no personal data
        assert offer["lifetime_seconds"] == 120
    assert first["qr_text"] != second["qr_text"]
    token = first["qr_text"].removeprefix("YWP1:")
    stored = await demo.store["copy_pickups"].find_one({"_id": first["pickup_id"]})
    assert token not in repr(stored) and stored["token_digest"] != token
    assert stored["status"] == "waiting" and stored["purpose"] == "本人留存"
    assert dt.timedelta(seconds=119) < stored["expires_at"] - stored["created_at"] <= dt.timedelta(seconds=120)
