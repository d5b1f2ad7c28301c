"""The mini-program's JSON API, versioned under /api/mobile/v1/ (see docs/mobile-api.md).

Routes are not listed here: each handler declares its ``path`` and its operations
(``mobile_api.handlers``), and the table is made from those declarations."""

from __future__ import annotations

from mobile_api import openapi  # noqa: F401 (imports the handlers and the document's own two)
from mobile_api.base import PREFIX, declared_handlers, route_pattern

__all__ = ["PREFIX", "routes"]


def routes() -> list[tuple[str, type]]:
    return [(route_pattern(handler), handler) for handler in declared_handlers()]
