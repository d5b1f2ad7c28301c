"""/metrics: what an operator's Prometheus scrapes, and who may scrape it."""

from __future__ import annotations

import datetime as dt

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT
from web.metrics import allowed
from yiwang.runtime import Services


def _samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


async def test_a_scrape_shows_requests_database_latency_backlogs_and_devices(client, services: Services) -> None:
    for _ in range(3):
        assert (await client.get("/healthz"))[0] == 200
    assert (await client.get("/readyz"))[0] == 200
    await client.get("/no/such/page")
    await services.store["notifications"].insert_many(
        [{"_id": f"n{i}", "status": "pending" if i < 3 else "failed"} for i in range(5)]
    )
    now, HOUR = dt.datetime.now(dt.UTC), dt.timedelta(hours=1)
    await services.store["devices"].insert_many([
        {"_id": "d1", "hall": "gz-th-center", "status": "active", "online": True, "last_seen": now},
        {"_id": "d2", "hall": "gz-th-center", "status": "active", "online": True, "last_seen": now - HOUR},
        {"_id": "d3", "hall": "gz-th-center", "status": "active", "online": False, "last_seen": None},
        {"_id": "d4", "hall": "gz-yx-center", "status": "revoked", "online": False, "last_seen": None},
    ])  # fmt: skip
    status, body, response = await client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert status == 200 and response.headers["Content-Type"].startswith("text/plain")
    samples = _samples(body.decode())
    requests = {(s["route"], s["status"]): v for s, v in samples["yiwang_http_requests_total"]}
    assert requests[("/healthz", "200")] >= 3 and requests[("/readyz", "200")] >= 1
    assert any(status == "404" for _, status in requests)  # unknown paths count, without their path
    assert not any("no/such" in route for route, _ in requests)
    durations = {s["route"]: v for s, v in samples["yiwang_http_request_duration_seconds_count"]}
    assert durations["/healthz"] >= 3
    commands = {s["command"] for s, v in samples["yiwang_db_command_duration_seconds_count"] if v > 0}
    assert {"insert", "ping"} <= commands
    assert samples["yiwang_notifications_backlog"][0][1] == 3
    assert samples["yiwang_notifications_failed"][0][1] == 2
    assert samples["yiwang_devices_connected"][0][1] == 0
    assert samples["yiwang_audit_chain_ok"][0][1] == 1  # the start-up verification passed
    # Per hall, so an alert can say which hall's kiosks went dark (a stale flag does not count as online).
    assert samples["yiwang_devices_active"] == [({"hall": "gz-th-center"}, 3)]
    assert samples["yiwang_devices_online"] == [({"hall": "gz-th-center"}, 1)]


def test_only_loopback_or_the_token_may_scrape() -> None:
    assert allowed("127.0.0.1", "", "")
    assert allowed("::1", "", "")
    assert not allowed("10.1.2.3", "", "")
    assert not allowed("10.1.2.3", "Bearer guess", "s3cret-token")
    assert allowed("10.1.2.3", "Bearer s3cret-token", "s3cret-token")
    assert not allowed("10.1.2.3", "Bearer ", "")  # no token configured: no remote scrape at all
    assert not allowed("not-an-address", "", "")


def test_every_metric_the_alerts_and_the_dashboard_use_is_one_the_server_exposes() -> None:
    import json
    import re

    import yaml

    from yiwang import metrics

    deploy = ROOT / "deploy"
    rules = yaml.safe_load((deploy / "prometheus" / "yiwang-alerts.yml").read_text(encoding="utf-8"))
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    dashboard = json.loads((deploy / "grafana" / "yiwang-dashboard.json").read_text(encoding="utf-8"))
    exprs += [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {name for e in exprs for name in re.findall(r"\byiwang_[a-z_]+", e)}
    declared: set[str] = set()
    for value in vars(metrics).values():
        name = getattr(value, "_name", None)
        kind = getattr(value, "_type", None)
        if isinstance(name, str) and name.startswith("yiwang_"):
            suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}.get(kind or "", [""])
            declared |= {name + s for s in suffixes}
    declared |= {"yiwang_notifications_backlog", "yiwang_notifications_failed", "yiwang_devices_active",
                 "yiwang_devices_online", "yiwang_scrape_db_seconds"}  # fmt: skip  (read at scrape time)
    assert used and used <= declared, used - declared
    assert all(rule.get("annotations", {}).get("summary") for g in rules["groups"] for rule in g["rules"])
