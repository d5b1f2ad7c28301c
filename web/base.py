"""Base handlers. Leaf handlers are a few lines: parse, authorise, call one
domain function, render. Errors become responses in exactly one place here."""

from __future__ import annotations

import asyncio
import datetime
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jinja2
import tornado.httputil
import tornado.web
from pymongo.errors import ConnectionFailure
from tornado import httputil

from web.input import parse_json, request_id
from yiwang import dbwatch, errors, logs, throttle
from yiwang.dbwatch import DbWatch
from yiwang.runtime import Services
from yiwang.versioned import Rendered, dumps

log = logging.getLogger("yiwang.http")

# The one mapping from domain errors to HTTP statuses (most specific first).
STATUS_BY_ERROR: tuple[tuple[type[errors.YiwangError], int], ...] = (
    (errors.NotAuthenticated, 401),
    (errors.Forbidden, 403),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.Gone, 410),
    (errors.TooLarge, 413),
    (errors.RateLimited, 429),
    (errors.UpstreamUnavailable, 503),
    (errors.ServiceUnavailable, 503),
    (errors.InvalidInput, 400),
    (errors.YiwangError, 400),
)

# Tornado's own HTTP errors (unknown method, bad request line, body too big…).
_HTTP_ERROR_CODES: Mapping[int, tuple[str, str]] = {
    400: ("request.bad", "请求格式有误"),
    401: ("auth.required", "请先登录"),
    403: ("auth.forbidden", "无权进行此操作"),
    404: ("not_found", "找不到请求的内容"),
    405: ("request.method_not_allowed", "不支持此请求方法"),
    413: ("request.too_large", "请求内容过大"),
    415: ("request.unsupported_media_type", "不支持的内容类型"),
    429: ("rate_limited", "操作过于频繁，请稍后再试"),
    500: ("internal", "服务器内部错误，请稍后再试"),
    503: ("unavailable", "服务暂时不可用，请稍后再试"),
}


# Bodies: small unless a handler says otherwise (uploads), checked against the declared
# length before a byte of the body is read (every BaseHandler streams its body).
SMALL_BODY_BYTES = 256 * 1024
# The whole policy for pages: no inline script or style anywhere, nothing framed.
PAGE_CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# Files people uploaded, served back: never run as a page, whatever is inside.
DOWNLOAD_CSP = "sandbox; default-src 'none'; frame-ancestors 'none'"
HSTS = "max-age=31536000; includeSubDomains"
# The HTTPServer's own limits (server.py and the tests): what a handler that is not ours (static
# files, the device WebSocket) may be sent; BaseHandlers set their own per request.
GZIP_MIN_BYTES = 1024  # as Tornado's own compression
SERVER_LIMITS: dict[str, int] = {"max_body_size": 1024 * 1024, "max_buffer_size": 16 * 1024 * 1024}


def https_only(application: tornado.web.Application) -> bool:
    """True when the public URL is https: then HSTS is sent and every cookie is Secure."""
    services = application.settings.get("services")
    return bool(services is not None and services.config.public_url.startswith("https://"))


def apply_security_headers(handler: tornado.web.RequestHandler) -> None:
    """The one place the security headers are set (pages, API answers, static files)."""
    handler.clear_header("Server")  # no version banner
    handler.set_header("X-Content-Type-Options", "nosniff")
    handler.set_header("Referrer-Policy", "no-referrer")
    handler.set_header("X-Frame-Options", "DENY")
    handler.set_header("Content-Security-Policy", PAGE_CSP)
    if https_only(handler.application):
        handler.set_header("Strict-Transport-Security", HSTS)


def serve_as_download(handler: tornado.web.RequestHandler, content_type: str, filename: str) -> None:
    """Headers for a file someone uploaded: a download, sniffing off, sandboxed if opened."""
    handler.set_header("Content-Type", content_type)
    handler.set_header("Content-Disposition", f'attachment; filename="{filename}"')
    handler.set_header("Content-Security-Policy", DOWNLOAD_CSP)
    handler.set_header("X-Content-Type-Options", "nosniff")


def _with_body(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run after the streamed body has arrived: make it available the usual way, then the method."""

    @functools.wraps(method)
    def run(self: BaseHandler, *args: Any, **kwargs: Any) -> Any:
        self._finish_body()
        return method(self, *args, **kwargs)

    run._with_body = True  # type: ignore[attr-defined]
    return run


@functools.cache
def _allowed_methods(handler: type[tornado.web.RequestHandler]) -> list[str]:
    """The methods a handler class implements (once per class, not once per request)."""
    base = tornado.web.RequestHandler
    return [m for m in handler.SUPPORTED_METHODS if getattr(handler, m.lower()) is not getattr(base, m.lower())]


def status_for(error: errors.YiwangError) -> int:
    for kind, status in STATUS_BY_ERROR:
        if isinstance(error, kind):
            return status
    return 400


class InFlight:
    """Requests being handled, so shutdown can wait for them to finish."""

    def __init__(self) -> None:
        self._handlers: set[tornado.web.RequestHandler] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def add(self, handler: tornado.web.RequestHandler) -> None:
        self._handlers.add(handler)
        self._idle.clear()

    def discard(self, handler: tornado.web.RequestHandler) -> None:
        self._handlers.discard(handler)
        if not self._handlers:
            self._idle.set()

    def __len__(self) -> int:
        return len(self._handlers)

    async def wait_idle(self, grace_seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), grace_seconds)
        except TimeoutError:
            return False
        return True


@tornado.web.stream_request_body
class BaseHandler(tornado.web.RequestHandler):
    """Shared plumbing: services, request id, security headers, body limits, error mapping.

    Every handler streams its body, so ``prepare`` (declared length, then, in the
    surfaces' subclasses, authentication) runs before any of it is read; the body is
    then collected up to ``max_body_bytes`` and parsed as Tornado would, before the
    method runs."""

    # API handlers answer errors as JSON; HTML handlers render an error page.
    error_template: str | None = None
    needs_database = True  # False: answers while the database is down (liveness, readiness)
    max_body_bytes: int = SMALL_BODY_BYTES
    _chunks: list[bytes]
    _body_done: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in ("get", "head", "post", "put", "patch", "delete", "options"):
            method = getattr(cls, name)
            if method is not getattr(tornado.web.RequestHandler, name) and not getattr(method, "_with_body", False):
                setattr(cls, name, _with_body(method))

    @property
    def services(self) -> Services:
        return self.application.settings["services"]  # type: ignore[no-any-return]

    @property
    def jinja(self) -> jinja2.Environment:
        return self.application.settings["jinja"]  # type: ignore[no-any-return]

    def set_default_headers(self) -> None:
        if "request_id" not in self.__dict__:
            self.request_id = request_id(self.request.headers.get("X-Request-Id"))
        self.set_header("X-Request-Id", self.request_id)
        apply_security_headers(self)
        self.set_header("Cache-Control", "no-store")

    def set_cookie(  # noqa: PLR0917 (Tornado's signature)
        self,
        name: str,
        value: str | bytes,
        domain: str | None = None,
        expires: float | tuple[int, ...] | datetime.datetime | None = None,
        path: str = "/",
        expires_days: float | None = None,
        *,
        max_age: int | None = None,
        httponly: bool = False,
        secure: bool = False,
        samesite: str | None = None,
        **kwargs: Any,
    ) -> None:
        """Every cookie is Secure when the public URL is https (console, kiosk, all of them)."""
        super().set_cookie(
            name, value, domain, expires, path, expires_days, max_age=max_age, httponly=httponly,
            secure=secure or https_only(self.application) or self.request.protocol == "https",
            samesite=samesite, **kwargs,
        )  # fmt: skip

    def prepare(self) -> None:
        inflight = self.application.settings["inflight"]
        inflight.add(self)
        apply_forwarding(self.request, self.services.config.trusted_proxies)
        self._forwarding_applied = True
        self._chunks = []
        allowed = self._allowed_methods()
        if allowed and self.request.method not in allowed:
            raise tornado.web.HTTPError(405)  # before any login check: the method is wrong for everyone
        self._check_declared_length()
        watch = self.services.resources.find(DbWatch)
        if self.needs_database and watch is not None:
            watch.check()  # the embedded database is being restarted: 503 at once, not a 5 s wait

    # ---- the body: declared length first, streamed, then parsed ----------------

    def _check_declared_length(self) -> None:
        declared = self.request.headers.get("Content-Length")
        if declared is not None:
            if not declared.isdigit():
                raise errors.InvalidInput("request.bad_length", "Content-Length 无效")
            if int(declared) > self.max_body_bytes:
                raise errors.TooLarge("request.too_large", f"请求内容不能超过 {self.max_body_bytes // 1024} KB")
        connection = self.request.connection
        set_limit = getattr(connection, "set_max_body_size", None)
        if set_limit is not None:
            set_limit(self.max_body_bytes)  # a chunked body is cut off at the same size

    def data_received(self, chunk: bytes) -> None:
        if not hasattr(self, "_chunks"):
            self._chunks = []
        self._chunks.append(chunk)

    def _finish_body(self) -> None:
        if self._body_done:
            return
        self._body_done = True
        request = self.request
        request.body = b"".join(getattr(self, "_chunks", ()))
        self._chunks = []
        if request.body:
            try:
                httputil.parse_body_arguments(
                    request.headers.get("Content-Type", ""), request.body, request.body_arguments, request.files,
                    request.headers,
                )  # fmt: skip
            except (httputil.HTTPInputError, ValueError):
                raise errors.InvalidInput("request.malformed_body", "请求内容格式有误") from None
            for key, values in request.body_arguments.items():
                request.arguments.setdefault(key, []).extend(values)
        self.body_received()

    def body_received(self) -> None:
        """Hook: the body is in; checks that need it (a form's CSRF token) go here."""

    def finish(self, chunk: str | bytes | dict[str, Any] | None = None) -> asyncio.Future[None]:
        # Answered before the body was read (refused in prepare): Tornado closes the connection
        # after this response rather than read the rest, so say so, and the client will not reuse it.
        if not self._body_done and not self._headers_written:
            self.set_header("Connection", "close")
        return super().finish(chunk)

    def on_finish(self) -> None:
        self.application.settings["inflight"].discard(self)

    def on_connection_close(self) -> None:
        self.application.settings["inflight"].discard(self)

    # ---- input -----------------------------------------------------------

    def json_body(self) -> dict[str, Any]:
        """The request body as a JSON object, or a clear 400."""
        content_type = self.request.headers.get("Content-Type", "application/json")
        if "json" not in content_type:
            raise errors.InvalidInput("request.content_type", "请求内容必须是 JSON")
        body = parse_json(self.request.body or b"{}")
        if not isinstance(body, dict):
            raise errors.InvalidInput("request.malformed_json", "请求内容必须是 JSON 对象")
        return body

    # ---- output ----------------------------------------------------------

    def write_json(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(dumps(value).encode())

    def write_rendered(self, rendered: Rendered, cache_control: str = "no-cache") -> None:
        """A body serialised once per data version (``yiwang.versioned``): its ETag, and ``304`` when the
        client already has it. ``no-cache``: clients may keep it but ask again (cheaply) every time."""
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", cache_control)
        self.set_header("ETag", rendered.etag)
        if self.check_etag_header():
            self.set_status(304)
            self.finish()
            return
        if (
            len(rendered.body) >= GZIP_MIN_BYTES
            and self.application.settings.get("compress_response")
            and "gzip" in self.request.headers.get("Accept-Encoding", "")
        ):
            self.set_header("Content-Encoding", "gzip")  # Tornado's transform leaves it alone, adds Vary
            self.finish(rendered.gzipped)
            return
        self.finish(rendered.body)

    def compute_etag(self) -> str | None:
        # Dynamic answers are no-store: hashing every body for an ETag nobody may reuse is waste.
        # Versioned ones set theirs (write_rendered); static files keep Tornado's.
        return None

    def render_page(self, template: str, **context: Any) -> None:
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(self.jinja.get_template(template).render(**self.template_context(), **context))

    def template_context(self) -> dict[str, Any]:
        return {"request": self.request, "request_id": self.request_id}

    # ---- errors: the one place exceptions become responses ----------------

    def _error_body(self, status_code: int, exc: BaseException | None) -> tuple[int, dict[str, Any]]:
        if isinstance(exc, ConnectionFailure):  # the database went away under this request
            exc = dbwatch.unavailable()
        if isinstance(exc, errors.YiwangError):
            return status_for(exc), exc.as_dict()
        if isinstance(exc, tornado.web.HTTPError):
            status_code = exc.status_code
        code, message = _HTTP_ERROR_CODES.get(status_code, ("error", "请求无法完成"))
        if status_code == 405:
            allowed = self._allowed_methods()
            self.set_header("Allow", ", ".join(allowed))
            return status_code, {"code": code, "message": message, "allowed": allowed}
        return status_code, {"code": code, "message": message}

    def _allowed_methods(self) -> list[str]:
        return _allowed_methods(type(self))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs["exc_info"][1] if "exc_info" in kwargs else None
        status, body = self._error_body(status_code, exc)
        self.set_status(status)
        self.clear_header("Content-Type")
        self.set_retry_after(exc if isinstance(exc, errors.YiwangError) else None, status)
        if self.error_template and self._wants_html():
            self.render_page(self.error_template, error=body, status=status)
        else:
            self.set_header("Content-Type", "application/json; charset=UTF-8")
            self.finish(dumps({"error": body}))

    def set_error_status(self, error: errors.YiwangError) -> None:
        """A page that shows a refusal in place (a form with its errors) answers with the status the one
        table gives the error (``STATUS_BY_ERROR``), and ``Retry-After`` where it applies."""
        self.set_status(status_for(error))
        self.set_retry_after(error, self.get_status())

    def set_retry_after(self, error: errors.YiwangError | None, status: int = 429) -> None:
        """Every 429 (and a 503 that knows) says when to come back: the one place ``Retry-After`` is set."""
        if isinstance(error, errors.RateLimited):
            self.set_header("Retry-After", str(error.retry_after))
        elif error is not None and error.detail and isinstance(error.detail.get("retry_after"), int | float):
            self.set_header("Retry-After", str(max(1, int(error.detail["retry_after"]))))
        elif status == 429:
            self.set_header("Retry-After", str(errors.RateLimited.DEFAULT_RETRY_AFTER))

    @property
    def client_address(self) -> str:
        """Who is calling (throttles, audit, logs): see ``yiwang.throttle.client_address``."""
        return request_address(self.request, self.services.config.trusted_proxies)

    def _wants_html(self) -> bool:
        return "text/html" in self.request.headers.get("Accept", "")

    def log_exception(self, typ: Any, value: BaseException | None, tb: Any) -> None:
        # Expected failures are not errors of ours: no traceback, no payload.
        if isinstance(value, errors.YiwangError | tornado.web.HTTPError):
            return
        if isinstance(value, ConnectionFailure):
            log.warning("database unreachable", extra={"fields": {"request_id": getattr(self, "request_id", "")}})
            return
        log.error(
            "unhandled exception",
            exc_info=(typ, value, tb),
            extra={"fields": {"request_id": getattr(self, "request_id", ""), "method": self.request.method}},
        )


class APIHandler(BaseHandler):
    """JSON in, JSON out; errors always in the {"error": {...}} shape."""

    def check_xsrf_cookie(self) -> None:
        # API clients authenticate with bearer tokens or device credentials, not cookies.
        return None


class HTMLHandler(BaseHandler):
    error_template = "common/error.html"


class NotFoundHandler(BaseHandler):
    """Catch-all: unknown paths get the error shape (JSON, or a page for browsers)."""

    error_template = "common/error.html"

    def prepare(self) -> None:
        super().prepare()
        raise errors.NotFound("not_found", "找不到请求的页面或接口")

    def _wants_html(self) -> bool:
        return not self.request.path.startswith("/api/") and super()._wants_html()


class StaticFiles(tornado.web.StaticFileHandler):
    """Static assets with the same security headers as everything else, and JSON errors."""

    def set_default_headers(self) -> None:
        self.set_header("X-Request-Id", request_id(self.request.headers.get("X-Request-Id")))
        apply_security_headers(self)

    def parse_url_path(self, url_path: str) -> str:
        if "\x00" in url_path or "\\" in url_path:
            raise tornado.web.HTTPError(400)
        return super().parse_url_path(url_path)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        code, message = _HTTP_ERROR_CODES.get(status_code, ("error", "请求无法完成"))
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(dumps({"error": {"code": code, "message": message}}))


def _peer(request: tornado.httputil.HTTPServerRequest) -> str | None:
    address = getattr(getattr(request.connection, "context", None), "address", None)
    return str(address[0]) if isinstance(address, tuple) and address else None


def request_address(request: tornado.httputil.HTTPServerRequest, trusted: Sequence[throttle.IPNetwork]) -> str:
    """The client address of ``request``: the socket peer (never ``remote_ip``, which
    ``xheaders`` would take from any caller's headers), or what a trusted proxy says."""
    return throttle.client_address(
        _peer(request) or request.remote_ip,
        request.headers.get("X-Forwarded-For"),
        request.headers.get("X-Real-IP"),
        trusted,
    )


def apply_forwarding(request: tornado.httputil.HTTPServerRequest, trusted: Sequence[throttle.IPNetwork]) -> None:
    """The one place forwarding headers take effect: ``remote_ip`` and ``protocol`` become what a
    trusted proxy says (``X-Forwarded-For``/``X-Real-IP``, ``X-Forwarded-Proto``/``X-Scheme``),
    else the socket's own, whatever ``xheaders`` did (``server.py`` leaves it off)."""
    context = getattr(request.connection, "context", None)
    protocol = str(getattr(context, "_orig_protocol", request.protocol))
    if throttle.peer_is_trusted(_peer(request), trusted):
        said = request.headers.get("X-Forwarded-Proto") or request.headers.get("X-Scheme") or ""
        said = said.split(",")[-1].strip().lower()
        if said in ("http", "https"):
            protocol = said
    request.protocol = protocol
    request.remote_ip = request_address(request, trusted)


def log_request(handler: tornado.web.RequestHandler) -> None:
    """One line per request: method, route template, status, duration, request id, client address.

    Every field is safe by construction (a route pattern, numbers, a request id that ``web.input.request_id``
    only accepts as a short token, an address), so the line skips the formatter's redaction pass."""
    request = handler.request
    status = handler.get_status()
    level = logging.INFO if status < 500 else logging.ERROR
    if not log.isEnabledFor(level):
        return
    if getattr(handler, "_forwarding_applied", False):
        client = request.remote_ip  # BaseHandler.prepare made it the client's address
    else:
        client = request_address(request, handler.application.settings["services"].config.trusted_proxies)
    route = route_template(handler)
    duration_ms = round(1000.0 * request.request_time(), 2)
    request_id = getattr(handler, "request_id", "")
    fast = logs.request_lines() if level == logging.INFO else None
    if fast is not None and log.handlers == [] and log.propagate:  # the server's own handler, nobody else's
        fast.add(method=request.method or "", route=route, status=status, duration_ms=duration_ms,
                 request_id=request_id, client=client)  # fmt: skip
        return
    fields = {
        "method": request.method, "route": route, "status": status, "duration_ms": duration_ms,
        "request_id": request_id, "client": client,
    }  # fmt: skip
    log.log(level, "request", extra={"fields": fields, "safe_fields": True})


ROUTE_TEMPLATES = "route_templates"


def route_templates(application: tornado.web.Application) -> dict[type, str]:
    """Handler class → its route's pattern, computed once per application (``web.app.make_app``)."""
    templates: dict[type, str] = {}
    for rule in application.wildcard_router.rules:
        matcher = getattr(rule, "matcher", None)
        if isinstance(rule.target, type) and matcher is not None and rule.target not in templates:
            templates[rule.target] = str(getattr(getattr(matcher, "regex", None), "pattern", "")).rstrip("$")
    return templates


def route_template(handler: tornado.web.RequestHandler) -> str:
    """The matched route's pattern (no ids, no query string), else the handler name."""
    settings = handler.application.settings
    templates = settings.get(ROUTE_TEMPLATES)
    if templates is None:
        templates = settings[ROUTE_TEMPLATES] = route_templates(handler.application)
    return templates.get(type(handler)) or type(handler).__name__
