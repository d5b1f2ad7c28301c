"""The OpenAPI document says what the server really does: every route is in it,
and schemathesis finds no 500s and no response that breaks the schema."""

from __future__ import annotations

import asyncio
import re

import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import mobile_api
from tests.mobile_support import LI, prepare
from tests.support.miniprogram import MiniProgram
from yiwang.accounts import issue_staff_token

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
MAX_EXAMPLES = 8


def _route_to_template(pattern: str) -> str:
    path = pattern.removeprefix(mobile_api.PREFIX)
    path = path.replace(r"\.", ".").replace("/?", "")
    names = iter(["{a}", "{b}"])
    return re.sub(r"\([^)]*\)", lambda _: next(names), path)


def test_every_route_is_documented_and_nothing_else() -> None:
    from mobile_api.openapi import document

    spec_paths = {re.sub(r"\{[^}]+\}", "{}", p) for p in document()["paths"]}
    routes = {re.sub(r"\{[^}]+\}", "{}", _route_to_template(r[0])) for r in mobile_api.routes()}
    routes -= {"/openapi.json", "/docs"}
    assert routes == spec_paths


def test_every_operation_has_a_unique_stable_operation_id_for_generated_clients() -> None:
    from mobile_api.openapi import document

    paths = document()["paths"]
    ids = [(path, method, op.get("operationId")) for path, ops in paths.items() for method, op in ops.items()]
    assert all(re.fullmatch(r"[a-z]+[A-Za-z0-9]*", i or "") for _, _, i in ids)
    assert len({i for _, _, i in ids}) == len(ids)
    found = {(p, m): i for p, m, i in ids}
    assert found[("/applications/{application_id}/submit", "post")] == "postApplicationsByApplicationIdSubmit"


async def test_docs_page_and_document_are_served(client) -> None:
    status, body, _ = await client.get("/api/mobile/v1/openapi.json")
    assert status == 200 and body["openapi"] == "3.1.0"
    status, page, response = await client.get("/api/mobile/v1/docs")
    assert status == 200 and response.content_type == "text/html"
    assert "/applications/{application_id}/submit" in page.decode()


async def test_schemathesis_finds_no_server_errors_and_no_schema_violations(services, client, fake_wechat, server):
    await prepare(services, agents=True)
    mp = MiniProgram(client, fake_wechat)
    await mp.login()
    await mp.bind(*LI)
    staff_token = await issue_staff_token(services, "gz-hrss", "fuzz")
    status, spec, _ = await client.get("/api/mobile/v1/openapi.json")
    assert status == 200
    spec["servers"] = [{"url": server + mobile_api.PREFIX}]
    schema = schemathesis.openapi.from_dict(spec)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 40

    # Signing out revokes the token the others use: fuzz it last.
    operations.sort(key=lambda op: (op.method.upper(), op.path) == ("DELETE", "/session"))

    statuses: list[int] = []

    def make_check(operation, token: str, http: requests.Session):  # type: ignore[no-untyped-def]
        @settings(
            max_examples=MAX_EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def check(case) -> None:  # type: ignore[no-untyped-def]
            response = case.call(
                base_url=server + mobile_api.PREFIX,
                session=http,
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
            statuses.append(response.status_code)
            case.validate_response(response, checks=CHECKS)

        return check

    def run_all() -> list[str]:
        failures: list[str] = []
        http = requests.Session()
        for operation in operations:
            token = staff_token if operation.path.startswith("/staff/") else str(mp.token)
            try:
                make_check(operation, token, http)()
            except Exception as exc:  # collect, report all at once
                failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:800]}")
        return failures

    failures = await asyncio.to_thread(run_all)
    assert not failures, "\n\n".join(failures)
    assert sum(1 for s in statuses if s < 300) >= 40  # not only errors: the fuzzing reached real answers
    assert 500 not in statuses
