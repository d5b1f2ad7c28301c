"""Images on notices and banners: upload onto a draft (re-encoded off the loop), remove, and the
public URL kiosks load them from (/kiosk/media/<id>.jpg)."""

from __future__ import annotations

from console.notices import NoticeBase
from web.base import BaseHandler
from yiwang import content, content_images, publishing
from yiwang.errors import InvalidInput, TooLarge


class NoticeImageHandler(NoticeBase):
    max_body_bytes = content_images.MAX_BYTES + 64 * 1024  # the image and its form

    async def post(self, content_id: str) -> None:
        doc = await self.load(content_id, "content.edit")
        store, by = self.services.store, self.current.id
        try:
            if self.form("remove"):
                before, after = await content_images.remove_from_draft(store, content_id, by=by)
            else:
                files = self.request.files.get("image") or []
                data = files[0].body if files else b""
                before, after = await content_images.attach_to_draft(self.services, content_id, data, by=by)
        except (InvalidInput, TooLarge) as error:
            self.set_error_status(error)
            versions = await content.versions(store, content_id)
            delivery = await publishing.delivery(self.services, doc.get("push_message"))
            self.render_page(
                "console/notice_edit.html", error=error, versions=versions, delivery=delivery,
                **await self.form_context(doc),
            )  # fmt: skip
            return
        action = "content.image_remove" if self.form("remove") else "content.image_add"
        await self.record(action, "content:" + content_id, publishing.summary(before), publishing.summary(after))
        self.redirect(f"/console/notices/{content_id}?saved=1")


class ContentImageHandler(BaseHandler):
    """Public and immutable (a new upload gets a new id), so kiosks and their agents may cache it."""

    async def get(self, image_id: str) -> None:
        content_type, data = await content_images.read(self.services.store, image_id)
        self.set_header("Content-Type", content_type)
        self.set_header("Cache-Control", "public, max-age=31536000, immutable")
        self.set_header("X-Kiosk-Cache", "public")
        self.finish(data)
