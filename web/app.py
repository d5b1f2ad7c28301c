"""The application factory: the same for `server.py` and the tests."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import jinja2
import tornado.routing
import tornado.web

from web.base import ROUTE_TEMPLATES, InFlight, NotFoundHandler, StaticFiles, route_templates
from web.metrics import observed_log_request
from yiwang.catalog import region_name, version_source
from yiwang.runtime import Services
from yiwang.timeutil import format_local

ROOT = Path(__file__).resolve().parent.parent

# Each surface exports `routes()`; order matters only for overlapping patterns.
SURFACES = (
    "web.health", "web.metrics", "web.wechat_push", "certs_api", "console", "kiosk", "devices_api", "mobile_api",
    "hall_display",
)  # fmt: skip


def make_jinja() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(ROOT / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["local_time"] = format_local
    env.filters["region_name"] = region_name
    env.filters["version_source"] = version_source
    return env


def make_app(services: Services, *, extra_routes: list[Any] | None = None, **overrides: Any) -> tornado.web.Application:
    routes: list[Any] = list(extra_routes or [])
    for module_name in SURFACES:
        routes.extend(importlib.import_module(module_name).routes())
    settings: dict[str, Any] = dict(
        services=services,
        jinja=make_jinja(),
        inflight=InFlight(),
        cookie_secret=services.config.cookie_secret,
        static_path=str(ROOT / "static"),
        static_url_prefix="/static/",
        static_handler_class=StaticFiles,
        default_handler_class=NotFoundHandler,
        log_function=observed_log_request,
        websocket_ping_interval=20,
        websocket_ping_timeout=30,
        websocket_max_message_size=256 * 1024,
        compress_response=True,
    )
    settings.update(overrides)
    app = tornado.web.Application(routes, **settings)
    app.settings[ROUTE_TEMPLATES] = route_templates(app)  # the log and the metrics name routes from this
    index_routes(app.wildcard_router)
    return app


_REGEX_SPECIAL = set("\\.^$*+?{}[]()|")


def _first_segment(pattern: str) -> str | None:
    """The literal first path segment every match of ``pattern`` starts with (``/api/…`` → ``api``), or None."""
    literal = ""
    for char in pattern:
        if char in _REGEX_SPECIAL:
            literal = literal[:-1] if char in "?*{" else literal  # a quantifier makes the last char optional
            break
        literal += char
    else:
        return literal[1:] if literal.startswith("/") and "/" not in literal[1:] else (
            literal[1:].split("/", 1)[0] if literal.startswith("/") else None
        )
    if not literal.startswith("/") or "/" not in literal[1:]:
        return None
    return literal[1:].split("/", 1)[0]


def index_routes(router: tornado.routing.RuleRouter) -> None:
    """Match a request against the rules of its first path segment only (``/kiosk/…`` never tries the
    ninety console and mobile patterns before its own), in the rules' order; same result as Tornado's scan."""
    rules = list(router.rules)
    segments: list[str | None] = []
    for rule in rules:
        regex = getattr(rule.matcher, "regex", None)
        segments.append(_first_segment(regex.pattern) if regex is not None else None)
    anywhere = [rule for rule, segment in zip(rules, segments, strict=True) if segment is None]
    by_segment = {
        segment: [rule for rule, own in zip(rules, segments, strict=True) if own is None or own == segment]
        for segment in {s for s in segments if s is not None}
    }

    def find_handler(request: Any, **kwargs: Any) -> Any:
        path = request.path or "/"
        candidates = by_segment.get(path[1:].split("/", 1)[0], anywhere)
        for rule in candidates:
            target_params = rule.matcher.match(request)
            if target_params is not None:
                if rule.target_kwargs:
                    target_params["target_kwargs"] = rule.target_kwargs
                delegate = router.get_target_delegate(rule.target, request, **target_params)
                if delegate is not None:
                    return delegate
        return None

    router.find_handler = find_handler  # type: ignore[method-assign]
