"""The certificate HTTP surface: issuer API, redemption, consent long-poll, verification."""

from __future__ import annotations

import asyncio
import time

from tests.fixtures.certs import holder_index, household_register_body, id_card_body, issuer_headers
from yiwang import consent, departments, display_codes


async def _issue(client, token: str, body=None, key: str | None = None):
    return await client.post(
        "/api/issuer/v1/certificates", json=body or id_card_body(), headers=issuer_headers(token, key)
    )


async def test_issuer_api_needs_a_fresh_unreplayed_credential(services, client) -> None:
    token = await departments.create_credential(services.store, "gz-psb", "issuer")
    window = await departments.create_credential(services.store, "gz-psb", "window")
    status, body, _ = await client.post("/api/issuer/v1/certificates", json=id_card_body())
    assert status == 401 and body["error"]["code"] == "auth.required"
    status, body, _ = await _issue(client, window)  # a window credential cannot issue
    assert status == 401 and body["error"]["code"] == "department.credential_invalid"
    status, body, _ = await _issue(client, token[:-2] + "xx")
    assert status == 401
    stale = {**issuer_headers(token), "X-Yiwang-Timestamp": str(int(time.time()) - 3600)}
    status, body, _ = await client.post("/api/issuer/v1/certificates", json=id_card_body(), headers=stale)
    assert status == 401 and body["error"]["code"] == "issuer.stale_request"
    headers = issuer_headers(token)
    status, _, _ = await client.post("/api/issuer/v1/certificates", json=id_card_body(), headers=headers)
    assert status == 201
    status, body, _ = await client.post("/api/issuer/v1/certificates", json=id_card_body(), headers=headers)
    assert status == 409 and body["error"]["code"] == "issuer.replayed"
    assert await services.store["certificates"].count_documents({}) == 1


async def test_issuer_api_is_idempotent_and_validates(services, client) -> None:
    token = await departments.create_credential(services.store, "gz-psb", "issuer")
    status, first, _ = await _issue(client, token, key="order-000000001")
    assert status == 201 and first["status"] == "valid"
    status, again, response = await _issue(client, token, key="order-000000001")
    assert status == 200 and again["identifier"] == first["identifier"]
    assert response.headers["Idempotent-Replayed"] == "true"
    status, body, _ = await _issue(client, token, body={**id_card_body(), "fields": {}})
    assert (
        status == 400 and body["error"]["code"] == "certificate.fields_invalid" and "姓名" in body["error"]["message"]
    )
    assert await services.store["certificates"].count_documents({}) == 1

    status, body, _ = await client.get(
        f"/api/issuer/v1/certificates/{first['identifier'][:-1]}Z", headers=issuer_headers(token)
    )
    assert status == 400 and body["error"]["code"] == "certificate.identifier_checksum"
    other = await departments.create_credential(services.store, "sz-psb", "issuer")
    status, _, _ = await client.get(f"/api/issuer/v1/certificates/{first['identifier']}", headers=issuer_headers(other))
    assert status == 404
    status, body, _ = await client.post(
        f"/api/issuer/v1/certificates/{first['identifier']}/reissue",
        json={"fields": {**id_card_body()["fields"], "address": "广州市天河区天河路1号"}},
        headers=issuer_headers(token),
    )
    assert status == 201 and body["version"] == 2
    status, body, _ = await client.get(
        f"/api/issuer/v1/certificates/{first['identifier']}", headers=issuer_headers(token)
    )
    assert body["status"] == "superseded" and body["superseded_by"] == body["superseded_by"]


async def test_published_keys_are_public_json(services, client) -> None:
    token = await departments.create_credential(services.store, "gz-psb", "issuer")
    await _issue(client, token)
    status, body, _ = await client.get("/api/verify/v1/keys")
    assert status == 200
    [key] = body["keys"]
    assert (
        key["department"]["code"] == "gz-psb" and key["public_key"].startswith("04") and len(key["public_key"]) == 130
    )
    assert "private" not in repr(body).lower()


async def test_redeem_endpoint_requires_a_redeemer_and_never_leaks_others_copies(services, client) -> None:
    token = await departments.create_credential(services.store, "gz-psb", "issuer")
    window = await departments.create_credential(services.store, "gz-psb", "window", "广州市公安局 · 2 号窗口")
    other_window = await departments.create_credential(services.store, "gz-hrss", "window")
    _, cert, _ = await _issue(client, token)
    code = await display_codes.create_display_code(services, holder_index(services), cert["id"], "户籍业务")
    path = "/api/redeem/v1/display-codes/redeem"
    status, body, _ = await client.post(path, json={"code": code["code"]})
    assert status == 401
    status, body, _ = await client.post(path, json={"code": code["code"]}, headers={"Authorization": f"Bearer {token}"})
    assert status == 401  # issuer credentials are not redeemer credentials
    auth = {"Authorization": f"Bearer {window}"}
    status, body, _ = await client.post(path, json={"code": code["code"]}, headers=auth)
    assert status == 200 and body["watermark"]["made_by"] == "广州市公安局 · 2 号窗口"
    copy_id = body["copy"]["id"]
    status, again, _ = await client.post(path, json={"code": code["code"]}, headers=auth)
    assert status == 409 and again["error"]["code"] == "certificate.display_code_used"
    status, png, response = await client.get(f"/api/redeem/v1/copies/{copy_id}.png", headers=auth)
    assert status == 200 and response.content_type == "image/png" and png[:8] == b"\x89PNG\r\n\x1a\n"
    status, pdf, response = await client.get(f"/api/redeem/v1/copies/{copy_id}.pdf", headers=auth)
    assert status == 200 and pdf[:4] == b"%PDF"
    status, _, _ = await client.get(
        f"/api/redeem/v1/copies/{copy_id}.png", headers={"Authorization": f"Bearer {other_window}"}
    )
    assert status == 404


async def test_consent_session_pushes_exactly_the_released_certificates(services, client) -> None:
    token = await departments.create_credential(services.store, "gz-psb", "issuer")
    window = await departments.create_credential(services.store, "gz-psb", "window", "天河政务中心 · 5 号窗口")
    other_window = await departments.create_credential(services.store, "gz-psb", "window")
    _, first, _ = await _issue(client, token)
    _, second, _ = await _issue(client, token, body=household_register_body())
    auth = {"Authorization": f"Bearer {window}"}
    status, session, _ = await client.post(
        "/api/redeem/v1/consent-sessions", json={"purpose": "办理居住证"}, headers=auth
    )
    assert status == 201 and session["qr_text"].startswith("YWS1:")
    url = f"/api/redeem/v1/consent-sessions/{session['session_id']}?wait=20"
    waiting = asyncio.create_task(client.get(url, headers=auth))
    await asyncio.sleep(0)  # let the long-poll start before the holder acts
    index = holder_index(services)
    seen = await consent.describe_consent_session(services, index, session["qr_text"])
    assert seen["requester"]["label"] == "天河政务中心 · 5 号窗口" and seen["purpose"] == "办理居住证"
    assert {c["id"] for c in seen["certificates"]} == {first["id"], second["id"]}
    await consent.release_to_session(services, index, session["qr_text"], [first["id"]])
    status, body, _ = await asyncio.wait_for(waiting, 10)
    assert status == 200 and body["status"] == "released"
    assert [c["certificate"]["id"] for c in body["certificates"]] == [first["id"]]
    status, _, _ = await client.get(url, headers={"Authorization": f"Bearer {other_window}"})
    assert status == 404  # for that session's kiosk only
    status, _, _ = await client.request(
        "DELETE", f"/api/redeem/v1/consent-sessions/{session['session_id']}", headers=auth
    )
    assert status == 204
    status, body, _ = await client.get(url, headers=auth)
    assert status == 410 and body["error"]["code"] == "consent.ended"
    stored = await services.store["consent_sessions"].find_one({"_id": session["session_id"]})
    assert stored["released"] == [] and stored["copies"] == []


async def test_verify_check_json_reports_bad_input_clearly(client) -> None:
    status, body, _ = await client.get("/api/verify/v1/check?c=hello")
    assert status == 400 and body["error"]["code"] == "verification.payload_invalid"
    status, body, _ = await client.get("/verify?c=hello", headers={"Accept": "text/html"})
    assert status == 400 and "核验码".encode() in body
