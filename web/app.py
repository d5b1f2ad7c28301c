"""The application factory: the same for `server.py` and the tests."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import jinja2
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
    return app
