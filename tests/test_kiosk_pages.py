"""Kiosk pages over HTTP: guidance is public and cacheable, personal pages are not."""

from __future__ import annotations

import pytest_asyncio

from yiwang.runtime import Services
from yiwang.seed import load_demo_data


@pytest_asyncio.fixture
async def demo(services: Services) -> Services:
    await load_demo_data(services)
    return services


async def test_home_shows_scenarios_and_hot_items_of_the_hall(demo: Services, client) -> None:
    status, body, response = await client.get("/kiosk/?hall=gz-th-center")
    text = body.decode()
    assert status == 200
    assert "广州市天河区政务服务中心" in text
    assert "我要生孩子" in text and "本厅热门事项" in text
    assert response.headers["X-Kiosk-Cache"] == "public"


async def test_checklist_lists_items_in_order_with_windows_of_this_hall(demo: Services, client) -> None:
    status, body, _ = await client.get(
        "/kiosk/scenarios/birth/checklist?gz_hukou=yes&mother_insured=yes&need_ss_card=no&hall=gz-city-center"
    )
    text = body.decode()
    assert status == 200
    assert text.index("出生医学证明") < text.index("打印清单")
    assert "<svg" in text  # QR to continue on the phone


async def test_incomplete_answers_get_a_friendly_page_not_a_500(demo: Services, client) -> None:
    url = "/kiosk/scenarios/birth/checklist?gz_hukou=maybe"
    status, body, _ = await client.get(url, headers={"Accept": "text/html"})
    assert status == 400
    assert "请完整回答所有问题" in body.decode()


async def test_checklist_prints_as_pdf(demo: Services, client) -> None:
    status, body, response = await client.get(
        "/kiosk/scenarios/birth/checklist.pdf?gz_hukou=no&mother_insured=no&need_ss_card=yes"
    )
    assert status == 200 and response.content_type == "application/pdf"
    assert body.startswith(b"%PDF")


async def test_certificates_need_a_kiosk_device(demo: Services, client) -> None:
    status, body, _ = await client.get("/kiosk/certificates", headers={"Accept": "application/json"})
    assert status == 401
    assert body["error"]["code"] == "kiosk.device_required"


async def test_unknown_scenario_is_404(demo: Services, client) -> None:
    status, body, _ = await client.get("/kiosk/scenarios/nothing", headers={"Accept": "application/json"})
    assert status == 404 and body["error"]["code"] == "catalog.scenario_not_found"


async def test_offline_manifest_lists_guidance_pages(demo: Services, client) -> None:
    status, body, _ = await client.get("/kiosk/api/offline-manifest")
    assert status == 200
    assert "/kiosk/scenarios/birth" in body["urls"]
    assert any(u.startswith("/kiosk/scenarios/birth/checklist?") for u in body["urls"])


async def test_every_item_and_scenario_page_renders(demo: Services, client) -> None:
    snap = await demo.catalog.snapshot()
    for code in snap.items:
        status, _, _ = await client.get(f"/kiosk/items/{code}?hall=gz-city-center")
        assert status == 200, code
    for code in snap.scenarios:
        status, _, _ = await client.get(f"/kiosk/scenarios/{code}")
        assert status == 200, code
