"""One error hierarchy for the whole product.

Every error carries a stable English ``code`` for programs and a Chinese
``message`` for people. The HTTP layer maps the *class* to a status in one
place (``web.base.STATUS_BY_ERROR``); the domain never speaks HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class YiwangError(Exception):
    """Base of every expected failure. Never carries personal data."""

    code = "error"
    message = "请求无法完成"

    def __init__(
        self,
        code: str | None = None,
        message: str | None = None,
        *,
        fields: Mapping[str, str] | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        self.code = code or type(self).code
        self.message = message or type(self).message
        self.fields = dict(fields) if fields else None
        # Extra machine-readable data for clients (e.g. retry_after seconds).
        self.detail = dict(detail) if detail else None
        super().__init__(self.code)

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields:
            body["fields"] = self.fields
        if self.detail:
            body.update(self.detail)
        return body


class InvalidInput(YiwangError):
    code = "invalid_input"
    message = "输入的内容有误"


class NotAuthenticated(YiwangError):
    code = "auth.required"
    message = "请先登录"


class Forbidden(YiwangError):
    code = "auth.forbidden"
    message = "无权进行此操作"


class NotFound(YiwangError):
    code = "not_found"
    message = "找不到请求的内容"


class Conflict(YiwangError):
    code = "conflict"
    message = "与当前状态冲突"


class Gone(YiwangError):
    code = "gone"
    message = "已失效"


class TooLarge(YiwangError):
    code = "too_large"
    message = "内容过大"


class RateLimited(YiwangError):
    """Too many attempts: ``retry_after`` seconds until the next may succeed (the HTTP layer
    answers 429 with a ``Retry-After`` header and ``retry_after`` in the body)."""

    code = "rate_limited"
    message = "操作过于频繁，请稍后再试"
    DEFAULT_RETRY_AFTER = 60

    def __init__(
        self,
        code: str | None = None,
        message: str | None = None,
        *,
        retry_after: int | None = None,
        fields: Mapping[str, str] | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        extra = dict(detail or {})
        seconds = retry_after if retry_after is not None else extra.get("retry_after", self.DEFAULT_RETRY_AFTER)
        self.retry_after = max(1, int(seconds))
        extra["retry_after"] = self.retry_after
        super().__init__(code, message, fields=fields, detail=extra)


class UpstreamUnavailable(YiwangError):
    code = "upstream.unavailable"
    message = "外部服务暂时不可用，请稍后再试"


class ServiceUnavailable(YiwangError):
    code = "unavailable"
    message = "服务暂时不可用，请稍后再试"
