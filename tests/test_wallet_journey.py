"""The wallet journey end to end, through the mini-program over HTTP: departments issue
over the issuer API; the resident logs in with WeChat, binds, lists the certificates and
shows one with a display code; a kiosk photographs the phone screen, decodes the QR and
redeems it with its own device credential; the holder sees that access at once; the
annotated copy is rendered and verified offline and online; the department revokes; the
verify page, the online check and the wallet all show it."""

from __future__ import annotations

import io
import json
from urllib.parse import quote

from PIL import Image, ImageEnhance, ImageFilter

from tests.fixtures.certs import id_card_body, issuer_call, new_issuer
from tests.fixtures.make_qr_fixtures import photographed_screen
from tests.kiosk_support import enrolled_kiosk
from tests.mobile_support import DATA, LI, load_some_catalog, social_security_card_fields
from tests.support.miniprogram import MiniProgram
from yiwang import people, qrdecode, verification
from yiwang.catalog import bump_version
from yiwang.runtime import Services

HALL = "gz-th-center"
KIOSK_LABEL = "天河政务服务中心 3 号自助终端"
PURPOSE = "社保卡申领"


async def _catalogue_and_resident(services: Services) -> None:
    """The catalogue bits this journey touches, the kiosk's hall, and Li as a demo resident
    of the population database (no certificates yet: the departments issue them below)."""
    await load_some_catalog(services)
    hall = next(h for h in json.loads((DATA / "halls.json").read_text(encoding="utf-8")) if h["code"] == HALL)
    await services.store["halls"].insert_one({"_id": hall["code"], **hall})
    await bump_version(services.store)
    services.catalog.invalidate()
    await people.register_resident(services.store, services.cipher, LI[1], LI[0], demo=True)


def _camera_jpeg(qr_text: str) -> bytes:
    """The phone screen photographed by the kiosk camera: at an angle, dim, slightly out of
    focus, saved as the camera's JPEG."""
    frame = photographed_screen(qr_text, angle=0.18, light=0.9, seed=11)
    frame = ImageEnhance.Contrast(frame.filter(ImageFilter.GaussianBlur(0.6))).enhance(0.8)
    out = io.BytesIO()
    frame.convert("RGB").save(out, "JPEG", quality=80)
    return out.getvalue()


async def test_wallet_journey_from_issue_through_the_mini_program_to_revocation(services, client, fake_wechat):
    await _catalogue_and_resident(services)
    psb = await new_issuer(services, "gz-psb")
    hrss = await new_issuer(services, "gz-hrss")

    # 1. two departments issue through the issuer API
    issue = "/api/issuer/v1/certificates"
    status, id_card, _ = await issuer_call(client, psb, "POST", issue, id_card_body(LI[1], LI[0]))
    assert status == 201, id_card
    ss = social_security_card_fields(*LI)
    ss_body = {
        "type": "social_security_card",
        "holder": {"number": LI[1], "name": LI[0]},
        "number": ss["number"],
        "issued_on": ss["issued_on"],
        "fields": ss["fields"],
    }
    status, ss_card, _ = await issuer_call(client, hrss, "POST", "/api/issuer/v1/certificates", ss_body)
    assert status == 201, ss_card

    # 2. the mini-program: wx.login with the fake WeChat, bind the demo resident, list the wallet
    mp = MiniProgram(client, fake_wechat)
    await mp.login()
    assert (await mp.get("/certificates", expect=403))["error"]["code"] == "auth.level_insufficient"
    bound = await mp.bind(*LI)
    assert bound["level"] == 3 and bound["id_number"] == "440106********3318"
    wallet = {c["identifier"]: c for c in (await mp.get("/certificates"))["certificates"]}
    assert set(wallet) == {id_card["identifier"], ss_card["identifier"]}
    card = wallet[id_card["identifier"]]
    assert card["status"] == "valid" and card["holder"]["masked"] == "440106********3318"
    opened = await mp.get(f"/certificates/{card['id']}")
    assert opened["fields"]["name"] == LI[0] and opened["verification_qr"].startswith("YWV1:")

    # 3. show it: a display code for a stated purpose (no purpose is refused)
    refused = await mp.post(f"/certificates/{card['id']}/display-codes", {}, expect=400)
    assert refused["error"]["code"] == "certificate.purpose_required"
    shown = await mp.post(f"/certificates/{card['id']}/display-codes", {"purpose": PURPOSE}, expect=201)
    assert shown["code"].startswith("YWD1:") and LI[1] not in shown["code"]

    # 4. the kiosk camera photographs the screen; yiwang.qrdecode (pyzbar) reads it
    photo = _camera_jpeg(shown["code"])
    assert Image.open(io.BytesIO(photo)).size == (1280, 720)
    assert await qrdecode.decode_upload(services, photo) == [shown["code"]]

    # 5. the kiosk redeems it with its own device credential
    kiosk = await enrolled_kiosk(services, client, HALL, KIOSK_LABEL)
    status, redeemed, _ = await kiosk.post("/api/redeem/v1/display-codes/redeem", json={"code": shown["code"]})
    assert status == 200, redeemed
    assert redeemed["certificate"]["identifier"] == id_card["identifier"]
    assert redeemed["watermark"]["text"].startswith(f"仅供办理{PURPOSE}使用")
    status, again, _ = await kiosk.post("/api/redeem/v1/display-codes/redeem", json={"code": shown["code"]})
    assert status == 409 and again["error"]["code"] == "certificate.display_code_used"
    status, forged, _ = await client.post(
        "/api/redeem/v1/display-codes/redeem",
        json={"code": shown["code"]},
        headers={"Authorization": f"Device {kiosk.device_id}:wrong"},
    )
    assert status == 401, forged

    # 6. the holder sees that access on the phone at once
    [entry] = (await mp.get(f"/certificates/{card['id']}/access-history"))["entries"]
    assert entry["who"] == {"kind": "kiosk", "label": KIOSK_LABEL}
    assert entry["purpose"] == PURPOSE and entry["copy"]["id"] == redeemed["copy"]["id"]
    assert (await mp.get(f"/certificates/{wallet[ss_card['identifier']]['id']}/access-history"))["entries"] == []

    # 7. the annotated copy is rendered for the kiosk; its verification QR is read from the image
    status, png, response = await kiosk.get(f"/api/redeem/v1/copies/{redeemed['copy']['id']}.png")
    assert status == 200 and response.content_type == "image/png"
    [printed] = await qrdecode.decode_frame(services, Image.open(io.BytesIO(png)))
    assert printed.startswith(services.config.public_url + "/verify?c=YWV1:")  # opens the verify page
    assert LI[0] not in printed and LI[1] not in printed

    # 8. verified offline against the published keys, then online
    status, keys, _ = await client.get("/api/verify/v1/keys")
    assert status == 200
    offline = verification.verify_offline(printed, keys)
    assert offline["signature_valid"] is True and offline["identifier"] == id_card["identifier"]
    status, online, _ = await client.get("/api/verify/v1/check?c=" + quote(printed, safe=""))
    assert status == 200 and online["status"] == "valid" and online["valid"] is True
    status, page, _ = await client.get("/verify?c=" + quote(printed, safe=""))
    assert status == 200 and "证照有效" in page.decode()

    # 9. the department revokes it through the issuer API
    status, revoked, _ = await issuer_call(
        client,
        psb,
        "POST",
        f"/api/issuer/v1/certificates/{id_card['identifier']}/status",
        {"status": "revoked", "reason": "信息有误"},
    )
    assert status == 200 and revoked["status"] == "revoked"

    # 10. the verify page and the online check change; the signature itself still verifies offline
    status, online, _ = await client.get("/api/verify/v1/check?c=" + quote(printed, safe=""))
    assert status == 200 and online["status"] == "revoked" and online["valid"] is False
    status, page, _ = await client.get("/verify?c=" + quote(printed, safe=""))
    assert status == 200 and "证照撤销" in page.decode() and "证照有效" not in page.decode()
    assert verification.verify_offline(printed, keys)["signature_valid"] is True

    # 11. the wallet shows it revoked (the other certificate untouched) and it can no longer be shown
    wallet = {c["identifier"]: c for c in (await mp.get("/certificates"))["certificates"]}
    assert wallet[id_card["identifier"]]["status"] == "revoked"
    assert wallet[id_card["identifier"]]["status_label"] == "撤销"
    assert wallet[ss_card["identifier"]]["status"] == "valid"
    gone = await mp.post(f"/certificates/{card['id']}/display-codes", {"purpose": PURPOSE}, expect=410)
    assert gone["error"]["code"] == "certificate.revoked"
    history = (await mp.get(f"/certificates/{card['id']}/access-history"))["entries"]
    assert [h["action"] for h in history].count("verify") == 4  # every online check is in the holder's history
    assert history[-1]["action"] == "copy" and history[-1]["who"]["label"] == KIOSK_LABEL
