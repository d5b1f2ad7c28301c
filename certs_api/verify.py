"""Public verification: the keys, a JSON check for scanners and a page for people."""

from __future__ import annotations

from typing import Any

from web.base import APIHandler, HTMLHandler
from yiwang import verification
from yiwang.errors import YiwangError


class KeysHandler(APIHandler):
    async def get(self) -> None:
        self.set_header("Cache-Control", "public, max-age=300")
        self.write_json(await verification.published_keys_document(self.services))


class CheckHandler(APIHandler):
    async def get(self) -> None:
        self.write_json(await verification.check_online(self.services, self.get_query_argument("c", "")))


class VerifyPageHandler(HTMLHandler):
    async def get(self) -> None:
        text = self.get_query_argument("c", "")
        try:
            result = await verification.check_online(self.services, text)
        except YiwangError as exc:
            if not text:
                raise
            self.set_status(400)
            self.render_page("verify/page.html", result=None, error=exc.as_dict())
            return
        self.render_page("verify/page.html", result=result, error=None)


def routes() -> list[Any]:
    return [
        (r"/api/verify/v1/keys", KeysHandler),
        (r"/api/verify/v1/check", CheckHandler),
        (r"/verify", VerifyPageHandler),
    ]
