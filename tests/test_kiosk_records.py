"""What the kiosk leaves behind: annotated copies in the holder's history, anonymous usage events."""

from __future__ import annotations

import pytest
import pytest_asyncio

from tests.kiosk_support import RESIDENT, enrolled_kiosk
from yiwang import certificates, figures, kiosk_events
from yiwang.identity import OneNumber, number_index
from yiwang.runtime import Services
from yiwang.seed import load_demo_data


@pytest_asyncio.fixture
async def demo(services: Services) -> Services:
    await load_demo_data(services)
    await certificates.load_demo_certificates(services)
    return services


async def test_printing_at_a_kiosk_records_an_annotated_copy_in_the_holders_history(demo: Services, client) -> None:
    kiosk = await enrolled_kiosk(demo, client)
    await kiosk.identify()
    holder = number_index(demo.cipher, OneNumber("person", RESIDENT["id_number"]))
    cert = (await certificates.list_for_holder(demo.store, holder))[0]
    status, pdf, response = await kiosk.get(f"/kiosk/certificates/{cert['id']}/print.pdf?purpose=资格审核")
    assert status == 200 and response.content_type == "application/pdf" and pdf.startswith(b"%PDF")
    history = await certificates.access_history(demo.store, holder, cert["id"])
    printed = [e for e in history if e["copy"] and e["who"]["label"] == "天河 9 号机"]
    assert len(printed) == 1
    assert printed[0]["who"]["kind"] == "kiosk" and printed[0]["purpose"] == "资格审核"
    assert printed[0]["copy"]["watermark"].startswith("仅供办理资格审核使用")
    actions = [e["action"] async for e in demo.store["audit"].find({"subject": cert["id"]})]
    assert "certificate.copy" in actions and "certificate.print" in actions


async def test_printing_needs_a_purpose_and_an_identified_resident(demo: Services, client) -> None:
    kiosk = await enrolled_kiosk(demo, client)
    holder = number_index(demo.cipher, OneNumber("person", RESIDENT["id_number"]))
    cert = (await certificates.list_for_holder(demo.store, holder))[0]
    status, body, _ = await kiosk.get(f"/kiosk/certificates/{cert['id']}/print.pdf?purpose=资格审核")
    assert status == 401 and body["error"]["code"] == "kiosk.identification_required"
    await kiosk.identify()
    status, body, _ = await kiosk.get(f"/kiosk/certificates/{cert['id']}/print.pdf?purpose=x")
    assert status == 400 and body["error"]["code"] == "certificate.purpose_required"
    assert await demo.store["certificate_copies"].count_documents({}) == 0


async def test_a_scenario_walk_and_a_print_show_up_in_the_figures(demo: Services, client) -> None:
    kiosk = await enrolled_kiosk(demo, client)
    status, _, _ = await kiosk.get("/kiosk/scenarios/birth/checklist?gz_hukou=yes&mother_insured=yes&need_ss_card=no",
                                   headers={"Accept": "text/html"})
    assert status == 200
    status, _, _ = await kiosk.get("/kiosk/scenarios/birth/checklist.pdf?gz_hukou=yes&mother_insured=yes"
                                   "&need_ss_card=no")
    assert status == 200
    await kiosk.identify()
    holder = number_index(demo.cipher, OneNumber("person", RESIDENT["id_number"]))
    cert = (await certificates.list_for_holder(demo.store, holder))[0]
    status, _, _ = await kiosk.get(f"/kiosk/certificates/{cert['id']}/print.pdf?purpose=本人留存")
    assert status == 200
    await kiosk_events.flush(demo)
    rows = await figures.kiosk_usage(demo.store, figures.Scope("天河", halls=["gz-th-center"]), figures.period("7d"))
    assert sum(r["sessions"] for r in rows) == 1
    assert sum(r["scenario_uses"] for r in rows) == 1
    assert sum(r["prints"] for r in rows) == 2
    other = await figures.kiosk_usage(demo.store, figures.Scope("别处", halls=["gz-city-center"]), figures.period("7d"))
    assert other == []
    event = await demo.store["kiosk_events"].find_one({})
    assert set(event) == {"_id", "hall", "kind", "mode", "at"}


async def test_an_agent_session_never_shows_the_residents_certificates(demo: Services) -> None:
    from yiwang import kiosk_desk
    from yiwang.errors import Forbidden
    from yiwang.kiosk_sessions import KioskSession

    holder = number_index(demo.cipher, OneNumber("person", RESIDENT["id_number"]))
    cert = (await certificates.list_for_holder(demo.store, holder))[0]
    # The resident's card has authorised the agent: the session knows the resident, but the agent is at the screen.
    session = KioskSession(
        id="s", device="d", hall="gz-th-center", mode="agent", resident_index=holder, resident_id="r",
        masked_name="李*", masked_number="440106********3318", agent_code="agent-1", agent_label="何**",
    )  # fmt: skip
    device = object()  # refused before the device is used
    with pytest.raises(Forbidden) as listing:
        await kiosk_desk.visible_certificates(demo, session, device)  # type: ignore[arg-type]
    with pytest.raises(Forbidden):
        await kiosk_desk.open_certificate(demo, session, device, cert["id"])  # type: ignore[arg-type]
    with pytest.raises(Forbidden):
        await kiosk_desk.print_certificate(demo, session, device, cert["id"], "资格审核")  # type: ignore[arg-type]
    assert listing.value.code == "kiosk.holder_only"
    assert await demo.store["certificate_copies"].count_documents({}) == 0
