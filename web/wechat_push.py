"""``/api/wechat/push``: WeChat's message push (URL check and events), verified by signature."""

from __future__ import annotations

from typing import Any

from web.base import APIHandler, serve_as_download
from yiwang import uploads, wechat_push


class PushHandler(APIHandler):
    def get(self) -> None:
        echo = wechat_push.verify_url(
            self.services.config, self.get_query_argument("signature", ""), self.get_query_argument("timestamp", ""),
            self.get_query_argument("nonce", ""), self.get_query_argument("echostr", ""),
        )  # fmt: skip
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(echo)

    async def post(self) -> None:
        event = wechat_push.open_event(
            self.services.config, self.request.body, self.get_query_argument("msg_signature", ""),
            self.get_query_argument("timestamp", ""), self.get_query_argument("nonce", ""),
        )  # fmt: skip
        await wechat_push.handle_event(self.services.store, event)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish("success")


class MediaHandler(APIHandler):
    """The image WeChat's mediaCheckAsync fetches: a one-time URL, only while the check is pending."""

    async def get(self, upload_id: str, token: str) -> None:
        content_type, data = await uploads.media_for_check(self.services, upload_id, token)
        serve_as_download(self, content_type, f"{upload_id}.jpg")
        self.set_header("Cache-Control", "no-store")
        self.finish(data)


def routes() -> list[tuple[str, type, dict[str, Any]] | tuple[str, type]]:
    return [
        (r"/api/wechat/push", PushHandler),
        (r"/api/wechat/media/([0-9a-f]{32})/([0-9A-Za-z_-]{20,64})", MediaHandler),
    ]
