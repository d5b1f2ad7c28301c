"""The certificate surface: issuer API, redemption by windows/kiosks, public verification."""

from __future__ import annotations

from typing import Any

from certs_api import issuer, redeem, verify


def routes() -> list[Any]:
    return [*issuer.routes(), *redeem.routes(), *verify.routes()]
