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
from yiwang import departments, issuer_signing
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
    """A signed issuer request (docs/certificates.md, "Signing a request"): checked before the body is parsed."""
    headers = handler.request.headers
    credential, stamp, nonce, signature = (headers.get(name, "").strip() for name in issuer_signing.HEADERS)
    request = issuer_signing.SignedRequest(
        method=handler.request.method or "",
        target=handler.request.uri or "",
        body=handler.request.body or b"",
        credential_id=credential,
        timestamp=stamp,
        nonce=nonce,
        signature=signature,
    )
    return await departments.authenticate_issuer(handler.services.store, request, now=time.time())


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
