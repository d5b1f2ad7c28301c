"""Who is calling: departments (issuer API) and redeeming parties (windows, kiosks).

Redeemers come from pluggable authenticators, the process's
:class:`~yiwang.certificates.RedeemerAuthenticators`: each an
``async (services, authorization_header) -> Redeemer | None``; the built-in one
accepts window credentials (``Authorization: Bearer <credential id>.<secret>``). The devices
surface can append one that turns a kiosk's device credential into ``Redeemer("kiosk", …)``.
"""

from __future__ import annotations

import time

from web.base import BaseHandler
from yiwang import departments
from yiwang.certificates import Redeemer, RedeemerAuthenticators
from yiwang.errors import NotAuthenticated
from yiwang.runtime import Services


def bearer(handler: BaseHandler) -> str:
    header = handler.request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("auth.required", "请提供凭证（Authorization: Bearer …）")
    return token.strip()


async def issuer_department(handler: BaseHandler) -> departments.Credential:
    """An issuer credential, fresh (timestamp) and not replayed (nonce)."""
    credential = await departments.authenticate(handler.services.store, bearer(handler), "issuer")
    await departments.check_fresh(
        handler.services.store,
        credential,
        handler.request.headers.get("X-Yiwang-Timestamp", ""),
        handler.request.headers.get("X-Yiwang-Nonce", ""),
        now=time.time(),
    )
    return credential


async def window_authenticator(services: Services, header: str) -> Redeemer | None:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    credential = await departments.authenticate(services.store, token.strip(), "window")
    return Redeemer("window", credential.id, credential.label, credential.department)


async def redeemer(handler: BaseHandler) -> Redeemer:
    header = handler.request.headers.get("Authorization", "")
    if not header:
        raise NotAuthenticated("auth.required", "请提供凭证")
    plugged = list(handler.services.resources.get(RedeemerAuthenticators).ways)
    last: NotAuthenticated | None = None
    for authenticate in [*plugged, window_authenticator]:
        try:
            found = await authenticate(handler.services, header)
        except NotAuthenticated as exc:
            last = exc
            continue
        if found is not None:
            return found
    raise last or NotAuthenticated("auth.required", "凭证无效")
