"""End to end: issue over the issuer API, show from the phone, redeem at a kiosk from a
photographed screen, render and verify the copy offline and online, revoke, see it change."""

from __future__ import annotations

import io
from urllib.parse import quote

from PIL import Image

from tests.fixtures.certs import holder_index, id_card_body, issuer_call, new_issuer
from tests.fixtures.make_qr_fixtures import photographed_screen
from yiwang import certificates, display_codes, qrdecode, verification
from yiwang.certificates import Redeemer, RedeemerAuthenticators
from yiwang.runtime import Services


async def kiosk_authenticator(services: Services, header: str) -> Redeemer | None:
    """What the devices surface plugs in: a kiosk's own credential becomes a Redeemer."""
    scheme, _, device_id = header.partition(" ")
    if scheme != "Device":
        return None
    return Redeemer("kiosk", device_id, "天河政务服务中心 3 号自助终端")


async def test_certificate_life_from_issue_to_revocation(services, client) -> None:
    services.resources.get(RedeemerAuthenticators).ways[:] = [kiosk_authenticator]
    issuer = await new_issuer(services)

    # 1. the department issues
    status, issued, _ = await issuer_call(client, issuer, "POST", "/api/issuer/v1/certificates", id_card_body())
    assert status == 201

    # 2. the holder (mini-program session → holder index) asks for a display code
    index = holder_index(services)
    [listed] = await certificates.list_for_holder(services.store, index)
    code = await display_codes.create_display_code(services, index, listed["id"], "社保卡申领")

    # 3. the kiosk camera photographs the phone screen; pyzbar reads it
    frame = photographed_screen(code["code"])
    [scanned] = await qrdecode.decode_frame(services, frame)
    assert scanned == code["code"]

    # 4. the kiosk redeems with its own credential
    kiosk = {"Authorization": "Device k-th-03"}
    status, got, _ = await client.post("/api/redeem/v1/display-codes/redeem", json={"code": scanned}, headers=kiosk)
    assert status == 200
    assert got["certificate"]["identifier"] == issued["identifier"]
    assert got["watermark"]["text"].startswith("仅供办理社保卡申领使用")

    # 5. the holder sees that access at once
    [entry] = await certificates.access_history(services.store, index, listed["id"])
    assert entry["who"] == {"kind": "kiosk", "label": "天河政务服务中心 3 号自助终端"}
    assert entry["purpose"] == "社保卡申领" and entry["copy"]["made_by"]["kind"] == "kiosk"

    # 6. the annotated copy is rendered; its verification QR scans and verifies offline
    status, png, _ = await client.get(f"/api/redeem/v1/copies/{got['copy']['id']}.png", headers=kiosk)
    assert status == 200
    [printed] = await qrdecode.decode_frame(services, Image.open(io.BytesIO(png)))
    status, keys, _ = await client.get("/api/verify/v1/keys")
    offline = verification.verify_offline(printed, keys)
    assert offline["signature_valid"] and offline["identifier"] == issued["identifier"]

    # 7. and online
    status, online, _ = await client.get("/api/verify/v1/check?c=" + quote(printed, safe=""))
    assert status == 200 and online["status"] == "valid" and online["valid"] is True
    status, page, _ = await client.get("/verify?c=" + quote(printed, safe=""))
    assert status == 200 and "证照有效" in page.decode()

    # 8. the department revokes; the verify page changes, offline signature still verifies
    status, revoked, _ = await issuer_call(
        client,
        issuer,
        "POST",
        f"/api/issuer/v1/certificates/{issued['identifier']}/status",
        {"status": "revoked", "reason": "信息有误"},
    )
    assert status == 200 and revoked["status"] == "revoked"
    status, online, _ = await client.get("/api/verify/v1/check?c=" + quote(printed, safe=""))
    assert online["status"] == "revoked" and online["valid"] is False
    status, page, _ = await client.get("/verify?c=" + quote(printed, safe=""))
    assert "证照撤销" in page.decode()
    assert verification.verify_offline(printed, keys)["signature_valid"] is True

    # 9. the used code stays used; the holder's history shows every online check
    fresh_status, _, _ = await client.post(
        "/api/redeem/v1/display-codes/redeem", json={"code": code["code"]}, headers=kiosk
    )
    assert fresh_status == 409
    history = await certificates.access_history(services.store, index, listed["id"])
    assert [h["action"] for h in history].count("verify") == 4
