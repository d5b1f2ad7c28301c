"""A city's local implementation (promised time, note) reaches its kiosks and the mini-program at once;
the province's standard, and other cities, stay as they are."""

from __future__ import annotations

import pytest

from tests.conftest import Client
from yiwang import catalog_admin
from yiwang.runtime import Services
from yiwang.seed import load_demo_data

BIRTH_REGISTRATION = "000701201000"  # 出生登记（新生儿入户）: promised 5, legal 20 working days


@pytest.fixture
async def demo(services: Services) -> Services:
    await load_demo_data(services)
    await catalog_admin.update_local(
        services.store, BIRTH_REGISTRATION, "440100", {"promised_days": "2", "note": "材料齐全当场受理"}, by="gz_admin"
    )
    return services


async def test_a_guangzhou_kiosk_shows_the_citys_promised_time_and_shenzhen_the_standard(
    demo: Services, client: Client
) -> None:
    _, guangzhou, _ = await client.get(f"/kiosk/items/{BIRTH_REGISTRATION}?hall=gz-th-center")
    _, shenzhen, _ = await client.get(f"/kiosk/items/{BIRTH_REGISTRATION}?hall=sz-ft-center")
    assert "承诺时限 2 个工作日" in guangzhou.decode() and "材料齐全当场受理" in guangzhou.decode()
    assert "承诺时限 5 个工作日" in shenzhen.decode() and "材料齐全当场受理" not in shenzhen.decode()


async def test_the_scenario_checklist_uses_the_local_promised_time(demo: Services, client: Client) -> None:
    query = "gz_hukou=yes&mother_insured=no&need_ss_card=no"
    _, page, _ = await client.get(f"/kiosk/scenarios/birth/checklist?{query}&hall=gz-th-center")
    assert "承诺时限 2 个工作日（法定 20 个）" in page.decode()


async def test_the_mini_program_item_lists_each_citys_implementation(demo: Services, client: Client) -> None:
    status, item, _ = await client.get(f"/api/mobile/v1/items/{BIRTH_REGISTRATION}")
    assert status == 200
    assert item["promised_days"] == 5  # the standard's default
    assert item["local_implementations"] == [
        {"city": "440100", "city_name": "广州市", "promised_days": 2, "fee": None, "note": "材料齐全当场受理"}
    ]
