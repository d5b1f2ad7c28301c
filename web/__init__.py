"""The HTTP layer shared by every surface: base handlers, error mapping, app factory."""
