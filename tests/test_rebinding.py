"""Moving a real-name identity to another WeChat account needs more than a name and a number:
the ID card read at a kiosk (a single-use 改绑码) or face verification. The holder is told and
stays signed in; every attempt is audited."""

from __future__ import annotations

import json
import re

from tests.conftest import ROOT
from tests.kiosk_support import enrolled_kiosk
from tests.mobile_support import LI, WANG, eventually, prepare
from tests.support.miniprogram import MiniProgram
from tests.support.verifiers import FaceVerifier
from yiwang import audit
from yiwang.catalog import bump_version
from yiwang.identity_verification import IdentityVerifier
from yiwang.notifications import TEMPLATES

HALL = "gz-th-center"
PERSON = {"id_number": LI[1], "name": LI[0]}


async def _bound_pair(services, client, fake_wechat) -> tuple[MiniProgram, MiniProgram]:
    await prepare(services)
    halls = json.loads((ROOT / "data" / "halls.json").read_text(encoding="utf-8"))
    await services.store["halls"].insert_one(next({"_id": h["code"], **h} for h in halls if h["code"] == HALL))
    await bump_version(services.store)
    services.catalog.invalidate()
    holder, other = MiniProgram(client, fake_wechat), MiniProgram(client, fake_wechat)
    await holder.login()
    await holder.bind(*LI)
    await other.login()
    return holder, other


async def _actions(services) -> list[str]:
    return [e["action"] async for e in services.store["audit"].find({"action": {"$regex": "^identity"}})]


async def _kiosk_code(services, client, person=PERSON) -> str:
    kiosk = await enrolled_kiosk(services, client)
    await kiosk.identify(person)
    status, page, _ = await kiosk.post("/kiosk/rebind", data={})
    assert status == 200, page
    found = re.search(r'id="rebind-code">(\d{4} \d{4})<', page.decode())
    assert found, page.decode()
    return found.group(1)


async def test_rebinding_with_only_a_name_and_number_is_refused_and_changes_nothing(
    services, client, fake_wechat
) -> None:
    holder, other = await _bound_pair(services, client, fake_wechat)
    refused = await other.post("/me/identity", {"name": LI[0], "id_number": LI[1], "rebind": True}, expect=403)
    assert refused["error"]["code"] == "identity.rebind_proof_required"
    assert "自助终端" in refused["error"]["message"]
    assert (await other.get("/me"))["real_name_bound"] is False
    me = await holder.get("/me")
    assert me["level"] == 3 and me["real_name_bound"] and me["security_notice"] is None
    assert len((await holder.get("/certificates"))["certificates"]) == 1
    await other.get("/certificates", expect=403)
    assert "identity.rebind_refused" in await _actions(services)
    assert "identity.rebind" not in await _actions(services)


async def test_a_kiosk_rebind_code_moves_the_identity_and_the_holder_is_told_not_signed_out(
    services, client, fake_wechat
) -> None:
    holder, other = await _bound_pair(services, client, fake_wechat)
    await holder.subscribe(TEMPLATES["identity_rebound"])
    code = await _kiosk_code(services, client)
    body = {"name": LI[0], "id_number": LI[1], "rebind": True}
    wrong = "00000000" if code.replace(" ", "") != "00000000" else "11111111"
    bad = await other.post("/me/identity", {**body, "rebind_code": wrong}, expect=403)
    assert bad["error"]["code"] == "identity.rebind_code_invalid"
    assert (await holder.get("/me"))["level"] == 3  # nothing changed

    moved = await other.post("/me/identity", {**body, "rebind_code": code})
    assert moved["level"] == 5 and moved["real_name_bound"]
    assert len((await other.get("/certificates"))["certificates"]) == 1

    me = await holder.get("/me")  # still signed in, told what happened
    assert me["real_name_bound"] is False and me["level"] == 1
    assert me["security_notice"]["kind"] == "identity_moved" and "改绑" in me["security_notice"]["message"]
    await holder.get("/certificates", expect=403)
    await eventually(lambda: any(m["template_id"] == TEMPLATES["identity_rebound"]
                                 for m in fake_wechat.sent_messages))
    actions = await _actions(services)
    assert {"identity.rebind_code_issued", "identity.rebind_refused", "identity.rebind"} <= set(actions)
    assert await audit.verify_chain(services.store) == (True, None)

    # single use: the holder cannot take it back with the same code
    again = await holder.post("/me/identity", {**body, "rebind_code": code}, expect=403)
    assert again["error"]["code"] == "identity.rebind_code_invalid"


async def test_a_code_is_for_one_person_and_wrong_guesses_burn_it(services, client, fake_wechat) -> None:
    holder, other = await _bound_pair(services, client, fake_wechat)
    wang_code = await _kiosk_code(services, client, {"id_number": WANG[1], "name": WANG[0]})
    body = {"name": LI[0], "id_number": LI[1], "rebind": True}
    refused = await other.post("/me/identity", {**body, "rebind_code": wang_code}, expect=403)
    assert refused["error"]["code"] == "identity.rebind_code_invalid"
    code = await _kiosk_code(services, client)
    for guess in ("12345678", "23456789", "34567890", "45678901", "56789012"):
        if guess != code.replace(" ", ""):
            await other.post("/me/identity", {**body, "rebind_code": guess}, expect=(403, 429))
    burnt = await other.post("/me/identity", {**body, "rebind_code": code}, expect=(403, 429))
    assert burnt["error"]["code"] in ("identity.rebind_code_invalid", "identity.bind_throttled")
    assert (await holder.get("/me"))["level"] == 3


async def test_bad_rebind_code_input_is_a_400_and_a_consent_session_gets_no_code(services, client, fake_wechat):
    holder, other = await _bound_pair(services, client, fake_wechat)
    bad = await other.post("/me/identity", {"name": LI[0], "id_number": LI[1], "rebind": True,
                                            "rebind_code": 12345678}, expect=400)
    assert bad["error"]["code"] == "identity.bind_invalid" and "rebind_code" in bad["error"]["fields"]
    kiosk = await enrolled_kiosk(services, client)
    status, _, _ = await kiosk.post("/kiosk/rebind", data={})
    assert status == 401  # nobody identified on the reader
    assert (await holder.get("/me"))["level"] == 3


async def test_face_verification_outranks_a_population_check(services, client, fake_wechat) -> None:
    holder, other = await _bound_pair(services, client, fake_wechat)
    services.resources.replace(FaceVerifier(), IdentityVerifier)
    moved = await other.post("/me/identity", {"name": LI[0], "id_number": LI[1], "rebind": True})
    assert moved["level"] == 4
    assert (await holder.get("/me"))["security_notice"]["kind"] == "identity_moved"
    # a face-verified holder now needs more than another face check: the card at a kiosk
    refused = await holder.post("/me/identity", {"name": LI[0], "id_number": LI[1], "rebind": True}, expect=403)
    assert refused["error"]["code"] == "identity.rebind_proof_insufficient"
