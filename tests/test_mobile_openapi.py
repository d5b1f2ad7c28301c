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
from tornado.web import RequestHandler

import mobile_api
from tests.mobile_support import LI, prepare
from tests.support.miniprogram import MiniProgram
from yiwang.accounts import issue_staff_token

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
MAX_EXAMPLES = 8


HTTP_METHODS = ("get", "post", "put", "patch", "delete")


def _concrete(path: str, operations: dict) -> str:
    """The path with each parameter filled by a value its schema allows."""
    params = {
        p["name"]: p["schema"] for op in operations.values() for p in op.get("parameters", []) if p["in"] == "path"
    }
    return re.sub(r"\{(\w+)\}", lambda m: params[m.group(1)].get("enum", ["x1"])[0], path)


def test_every_route_is_documented_and_nothing_else() -> None:
    from mobile_api.openapi import DocsHandler, OpenAPIHandler, document

    routes = mobile_api.routes()
    served: set[type] = set()
    for path, operations in document()["paths"].items():
        url = mobile_api.PREFIX + _concrete(path, operations)
        handlers = [handler for pattern, handler in routes if re.fullmatch(pattern, url)]
        assert len(handlers) == 1, (path, handlers)
        implemented = {m for m in HTTP_METHODS if getattr(handlers[0], m) is not getattr(RequestHandler, m)}
        assert set(operations) == implemented, path
        served.add(handlers[0])
    assert {handler for _, handler in routes} - served == {DocsHandler, OpenAPIHandler}


def test_a_body_of_the_wrong_shape_is_refused_naming_every_field_before_the_domain_sees_it() -> None:
    from mobile_api.handlers import ApplicationsHandler, IdentityHandler
    from mobile_api.schemas import validate_body
    from yiwang.errors import InvalidInput

    def refused(operation: dict, body: dict) -> InvalidInput:
        try:
            validate_body(operation, body)
        except InvalidInput as error:
            return error
        raise AssertionError(body)

    create = ApplicationsHandler.api["post"]
    validate_body(create, {"item": "x", "submit": False})
    error = refused(create, {"form": [], "materials": "none", "submit": "yes"})
    assert error.code == "request.body_invalid"
    assert error.fields == {
        "item": "必填", "form": "应为对象", "materials": "应为数组", "submit": "应为布尔值（true 或 false）"
    }
    # Rules on values stay the domain's (its own codes), and a known code is kept where clients rely on it.
    validate_body(IdentityHandler.api["post"], {"name": "", "id_number": "1"})
    assert refused(IdentityHandler.api["post"], {"name": ["李四"]}).code == "identity.bind_invalid"


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
