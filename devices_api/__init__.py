"""The device channel: enrolment and the one WebSocket every kiosk holds."""

from devices_api.routes import routes

__all__ = ["routes"]
