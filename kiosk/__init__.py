"""The kiosk surface: touch-screen pages under /kiosk/ and the kiosk API."""

from kiosk.routes import routes

__all__ = ["routes"]
