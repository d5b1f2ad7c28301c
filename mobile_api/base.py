"""The mobile API's base handler: bearer authentication, the declared operations
(route, body schema) of each handler, and small parsers."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from mobile_api.schemas import ID_PARAM_PATTERN, validate_body
from web.base import APIHandler
from yiwang import accounts, agents, applications
from yiwang.applications import Applicant, Staff
from yiwang.errors import Forbidden, InvalidInput

PREFIX = "/api/mobile/v1"
# Operations and the assurance level they need (Guangdong unified login grades).
LEVEL_APPLY = 3
LEVEL_CERTIFICATES = 3


_DECLARED: list[type[MobileHandler]] = []


def declared_handlers() -> list[type[MobileHandler]]:
    """Every handler that declares a ``path``, in the order they were defined."""
    return list(_DECLARED)


def route_pattern(handler: type[MobileHandler]) -> str:
    """The handler's Tornado route from its path template: ``{name}`` is an id, or one of
    the values the name's path parameter enumerates."""
    enums = {
        param["name"]: param["schema"]["enum"]
        for operation in handler.api.values()
        for param in operation.get("parameters", [])
        if param["in"] == "path" and "enum" in param["schema"]
    }
    identifier = ID_PARAM_PATTERN.strip("^$")

    def group(match: re.Match[str]) -> str:
        values = enums.get(match.group(1))
        return "(" + ("|".join(map(re.escape, values)) if values else identifier) + ")"

    parts = re.split(r"(\{\w+\})", handler.path)
    return PREFIX + "".join(
        re.sub(r"\{(\w+)\}", group, part) if part.startswith("{") else re.escape(part) for part in parts
    )


class MobileHandler(APIHandler):
    """JSON in and out; ``self.principal`` is set when the route needs a login.

    A subclass that serves a route declares ``path`` (OpenAPI template under PREFIX) and
    ``api`` (``operations(get=op(...))``); a JSON body is checked against its declared schema."""

    auth_required = True
    principal: accounts.Principal
    path: ClassVar[str]
    api: ClassVar[Mapping[str, dict[str, Any]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "path" in cls.__dict__:
            _DECLARED.append(cls)

    async def prepare(self) -> None:
        super().prepare()
        if self.auth_required:
            self.principal = await accounts.authenticate(self.services, self.request.headers.get("Authorization"))

    # ---- who is asking ------------------------------------------------------

    def resident_index(self, level: int) -> str:
        return self.principal.require_level(level)

    async def applicant(self, level: int = LEVEL_APPLY) -> Applicant:
        applicant: Applicant = await applications.applicant_of(self.services, self.principal, level)
        return applicant

    def staff(self) -> Staff:
        if self.principal.kind != "staff" or not self.principal.department:
            raise Forbidden("auth.staff_only", "仅限部门工作人员使用")
        return Staff(self.principal.department, self.principal.actor)

    async def agent_doc(self) -> dict[str, Any]:
        if self.principal.kind != "resident" or not self.principal.agent:
            raise Forbidden("auth.agent_only", "仅限已激活的代办员账号使用")
        return await agents.agent(self.services, self.principal.agent)

    # ---- input ----------------------------------------------------------------

    def json_body(self) -> dict[str, Any]:
        body = super().json_body()
        operation = self.api.get((self.request.method or "").lower())
        if operation is not None:
            validate_body(operation, body)
        return body

    def query_int(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.get_query_argument(name, None)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise InvalidInput(
                "request.query_invalid", f"参数 {name} 必须是整数", fields={name: "必须是整数"}
            ) from None
        if not low <= value <= high:
            raise InvalidInput("request.query_invalid", f"参数 {name} 超出范围", fields={name: f"{low}–{high}"})
        return value

    def upload_bytes(self) -> bytes:
        files = self.request.files.get("file") or []
        if len(files) != 1:
            raise InvalidInput(
                "upload.file_required", "请以 multipart/form-data 上传一个名为 file 的文件", fields={"file": "必填"}
            )
        return files[0]["body"]

    @property
    def idempotency_key(self) -> str | None:
        return self.request.headers.get("Idempotency-Key")


class PublicHandler(MobileHandler):
    auth_required = False
