"""The OpenAPI 3.1 document of the mobile API, assembled by walking the handlers'
own declarations (``path`` and ``api``), and the handlers serving it (JSON) and a
readable docs page.

``tests/test_mobile_openapi.py`` checks that every route is documented and
runs schemathesis against the live server with this document.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from mobile_api import handlers as _handlers  # noqa: F401 (its classes declare the operations)
from mobile_api import queue as _queue  # noqa: F401 (排队取号与预约)
from mobile_api.base import PREFIX, PublicHandler, declared_handlers
from mobile_api.schemas import SCHEMAS


def _operation_id(method: str, path: str) -> str:
    """``post /applications/{application_id}/submit`` → ``postApplicationsByApplicationIdSubmit``:
    stable, unique per route and method, and a readable name in generated clients."""
    words = [method.lower()]
    for part in path.strip("/").replace("-", "_").split("/"):
        if part.startswith("{"):
            words.append("by")
        words.extend(w for w in part.strip("{}").split("_") if w)
    return words[0] + "".join(w[:1].upper() + w[1:] for w in words[1:])


def build() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for handler in declared_handlers():
        for method, operation in handler.api.items():
            documented = copy.deepcopy(operation)
            documented.setdefault("operationId", _operation_id(method, handler.path))
            paths.setdefault(handler.path, {})[method] = documented
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "一网 · 小程序 API",
            "version": "1.0.0",
            "description": '广东政务服务小程序接口。所有错误为 {"error": {"code", "message", "fields"?}}，'
            "code 为稳定的英文错误码，message 为中文说明。令牌放在 Authorization: Bearer 头中。",
        },
        "servers": [{"url": PREFIX}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": copy.deepcopy(SCHEMAS),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "POST /session 换取"}},
        },
    }


@functools.cache
def document() -> dict[str, Any]:
    return build()


class OpenAPIHandler(PublicHandler):
    path = "/openapi.json"

    def get(self) -> None:
        self.set_header("Cache-Control", "public, max-age=300")
        self.write_json(document())


class DocsHandler(PublicHandler):
    path = "/docs"

    def get(self) -> None:
        self.render_page("mobile_api/docs.html", spec=document())
