"""Redemption by window scanners and kiosks: display codes, copies, consent sessions."""

from __future__ import annotations

from typing import Any

from certs_api.auth import redeemer
from web.base import APIHandler
from yiwang import consent, copy_files, display_codes
from yiwang.errors import InvalidInput


class RedeemDisplayCodeHandler(APIHandler):
    async def post(self) -> None:
        party = await redeemer(self)
        result = await display_codes.redeem_display_code(self.services, self.json_body().get("code"), party)
        self.write_json(result)


class CopyImageHandler(APIHandler):
    async def get(self, copy_id: str, fmt: str) -> None:
        party = await redeemer(self)
        data = await copy_files.copy_image(self.services, copy_id, party, fmt)
        self.set_header("Content-Type", copy_files.CONTENT_TYPES[fmt])
        self.set_header("Content-Disposition", f'inline; filename="copy-{copy_id}.{fmt}"')
        self.finish(data)


class ConsentSessionsHandler(APIHandler):
    async def post(self) -> None:
        party = await redeemer(self)
        session = await consent.create_consent_session(self.services, party, self.json_body().get("purpose"))
        self.write_json(session, status=201)


class ConsentSessionHandler(APIHandler):
    async def get(self, session_id: str) -> None:
        """Long-poll: answers as soon as the holder releases, or after ``wait`` seconds."""
        party = await redeemer(self)
        try:
            wait = float(self.get_query_argument("wait", "25"))
        except ValueError:
            raise InvalidInput("request.wait_invalid", "wait 必须是秒数") from None
        self.write_json(await consent.wait_for_release(self.services, session_id, party, wait_seconds=wait))

    async def delete(self, session_id: str) -> None:
        party = await redeemer(self)
        await consent.end_consent_session(self.services, session_id, party)
        self.set_status(204)
        self.finish()


def routes() -> list[Any]:
    return [
        (r"/api/redeem/v1/display-codes/redeem", RedeemDisplayCodeHandler),
        (r"/api/redeem/v1/copies/([0-9a-f]{32})\.(png|pdf|ofd)", CopyImageHandler),
        (r"/api/redeem/v1/consent-sessions", ConsentSessionsHandler),
        (r"/api/redeem/v1/consent-sessions/([0-9a-f]{32})", ConsentSessionHandler),
    ]
