"""Figures: aggregation pipelines over generated data, scoped by place."""

from __future__ import annotations

import datetime as dt

from console.generate import generate
from yiwang import figures
from yiwang.catalog import load_catalog_files
from yiwang.store import Store


async def test_dashboard_counts_generated_data_and_scopes_by_place(store: Store) -> None:
    await load_catalog_files(store)
    end = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    written = await generate(store, days=3, per_day=30, end=end)
    halls = {h["_id"]: h async for h in store["halls"].find({})}
    departments = {d["_id"]: d async for d in store["departments"].find({})}
    p = figures.Period("7d", end - dt.timedelta(days=7), end)
    city = figures.scope_for("city", "440100", halls, departments, {})
    data = await figures.dashboard(store, city, p)
    assert sum(r["sessions"] + r["scenario_uses"] + r["prints"] for r in data["kiosk"]) <= written["kiosk_events"]
    assert sum(r["total"] for r in data["applications"]) == written["applications"]
    assert sum(data["deadlines"].values()) > 0
    assert data["evaluations"]["total"] == written["evaluations"]
    hall = figures.scope_for("hall", "gz-th-center", halls, departments, {})
    hall_data = await figures.dashboard(store, hall, p)
    assert 0 < sum(r["sessions"] for r in hall_data["kiosk"]) < sum(r["sessions"] for r in data["kiosk"])
    shenzhen = figures.scope_for("city", "440300", halls, departments, {})
    assert (await figures.dashboard(store, shenzhen, p))["applications"] == []
    rows = figures.csv_rows("applications", data["applications"])
    assert rows[0][:3] == ["item", "name", "total"] and len(rows) > 1


async def test_figures_page_charts_and_csv_for_a_hall_manager(server: str, services) -> None:  # type: ignore[no-untyped-def]
    from tests.console_support import Browserless, prepare

    await prepare(services)
    await generate(services.store, days=2, per_day=20)
    c = Browserless(server)
    try:
        await c.login("th_hall")
        status, text = await c.get("/console/figures?place=hall:gz-th-center&period=7d")
        assert status == 200 and "<svg" in text and "广州市天河区政务服务中心" in text
        status, csv_text = await c.get("/console/figures/applications.csv?place=hall:gz-th-center&period=7d")
        assert status == 200 and csv_text.lstrip("\ufeff").startswith("item,name,total")
        status, _ = await c.get("/console/figures?place=hall:gz-yx-center")
        assert status == 403
        status, _ = await c.get("/console/figures?place=city:440100")
        assert status == 403
        status, _ = await c.get("/console/figures?period=2y")
        assert status == 400
    finally:
        await c.close()
