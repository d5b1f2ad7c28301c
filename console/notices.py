"""Notices and banners: list, draft, preview (portrait and landscape), publish, roll back, withdraw."""

from __future__ import annotations

from typing import Any, cast

from console.base import ConsoleHandler, local_input, parse_local_datetime
from yiwang import console_accounts, content, publishing
from yiwang.console_accounts import target_place
from yiwang.errors import InvalidInput
from yiwang.store import Document


class NoticeBase(ConsoleHandler):
    def fields_from_form(self) -> dict[str, Any]:
        scope = self.form("target_scope", "hall")
        target: dict[str, Any] = {"scope": scope}
        if scope == "city":
            target["city"] = self.form("target_city")
        elif scope in ("hall", "group"):
            target["hall"] = self.form("target_hall")
            if scope == "group":
                target["group"] = self.form("target_group")
        return {
            "title": self.form("title"),
            "body_html": self.form("body_html"),
            "level": self.form("level", "info"),
            "target": target,
            "starts_at": parse_local_datetime(self.form("starts_at"), "starts_at"),
            "ends_at": parse_local_datetime(self.form("ends_at"), "ends_at"),
        }

    async def authorise_target(self, action: str, target: Any) -> None:
        if not isinstance(target, dict):
            raise InvalidInput("content.target_invalid", "投放范围不正确")
        await self.authorise(action, target_place(target, await self.halls()))

    async def load(self, content_id: str, action: str) -> Document:
        doc = await content.get(self.services.store, content_id)
        await self.authorise_target(action, doc["target"])
        return doc

    async def form_context(self, doc: Document | None, fields: dict[str, Any] | None = None) -> dict[str, Any]:
        halls = await self.halls()
        visible = console_accounts.visible_halls(self.current, halls)
        draft = fields or (doc or {}).get("draft") or {
            "title": "", "body_html": "", "level": "info",
            "target": {"scope": "hall", "hall": visible[0] if visible else ""}, "starts_at": None, "ends_at": None,
        }  # fmt: skip
        cities = sorted({h.get("city", "") for c, h in halls.items() if c in visible})
        return {
            "doc": doc,
            "draft": draft,
            "halls": [(c, halls[c]["name"]) for c in visible],
            "cities": cities,
            "may_target_city": self.current.role in ("province", "city"),
            "may_target_all": self.current.role == "province",
            "local_input": local_input,
            "kinds": content.KINDS,
            "levels": content.LEVELS,
        }


class NoticeListHandler(NoticeBase):
    async def get(self) -> None:
        user = self.current
        halls = await self.halls()
        if user.role == "province":
            docs = await content.list_content(self.services.store)
        elif user.role == "city":
            docs = await content.list_content(self.services.store, cities=[user.region])
        else:
            docs = await content.list_content(self.services.store, halls=console_accounts.visible_halls(user, halls))
        docs = [d for d in docs if console_accounts.may(user, "content.view", target_place(d["target"], halls))]
        self.render_page("console/notices.html", docs=docs, halls=halls)

    async def post(self) -> None:
        kind = self.form("kind", "notice")
        fields = self.fields_from_form()
        await self.authorise_target("content.edit", fields["target"])
        try:
            doc = await content.create_draft(self.services.store, kind, fields, by=self.current.id)
        except InvalidInput as error:
            self.set_error_status(error)
            self.render_page("console/notice_edit.html", error=error, **await self.form_context(None, fields))
            return
        await self.record("content.create", "content:" + doc["_id"], None, publishing.summary(doc))
        self.redirect(f"/console/notices/{doc['_id']}")


class NoticeNewHandler(NoticeBase):
    async def get(self) -> None:
        self.render_page("console/notice_edit.html", error=None, **await self.form_context(None))


class NoticeHandler(NoticeBase):
    async def get(self, content_id: str) -> None:
        doc = await self.load(content_id, "content.view")
        context = await self.form_context(doc)
        versions = await content.versions(self.services.store, content_id)
        delivery = await publishing.delivery(self.services, doc.get("push_message"))
        self.render_page("console/notice_edit.html", error=None, versions=versions, delivery=delivery, **context)

    async def post(self, content_id: str) -> None:
        doc = await self.load(content_id, "content.edit")
        fields = self.fields_from_form()
        await self.authorise_target("content.edit", fields["target"])  # cannot move it out of one's scope
        try:
            before, after = await content.save_draft(self.services.store, content_id, fields, by=self.current.id)
        except InvalidInput as error:
            self.set_error_status(error)
            versions = await content.versions(self.services.store, content_id)
            self.render_page(
                "console/notice_edit.html", error=error, versions=versions, delivery=[],
                **await self.form_context(doc, fields),
            )
            return
        summary = publishing.summary
        await self.record("content.save_draft", "content:" + content_id, summary(before), summary(after))
        self.redirect(f"/console/notices/{content_id}?saved=1")


class NoticeActionHandler(NoticeBase):
    """publish / rollback / withdraw."""

    async def post(self, content_id: str, action: str) -> None:
        await self.load(content_id, "content.edit")
        version = None
        if action == "rollback":
            raw = self.form("version")
            if not raw.isdigit():
                raise InvalidInput("content.version_invalid", "请选择要恢复的版本", fields={"version": "版本号不正确"})
            version = int(raw)
        await publishing.act(self.services, content_id, cast(publishing.Action, action), self.actor(), version=version)
        self.redirect(f"/console/notices/{content_id}?done={action}")


class NoticePreviewHandler(NoticeBase):
    async def get(self, content_id: str) -> None:
        doc = await self.load(content_id, "content.view")
        self.render_page("console/notice_preview.html", doc=doc)


class NoticeRenderHandler(NoticeBase):
    """The kiosk's own notice layout, framed by the preview page at kiosk sizes."""

    async def get(self, content_id: str) -> None:
        doc = await self.load(content_id, "content.view")
        source = self.get_argument("source", "draft")
        fields = doc["published"] if source == "published" and doc.get("published") else doc["draft"]
        orientation = "portrait" if self.get_argument("orientation", "landscape") == "portrait" else "landscape"
        self.set_header("X-Frame-Options", "SAMEORIGIN")
        self.set_header("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'self'")
        self.render_page(
            "console/kiosk_notice.html", notices=[content.public_view(doc, fields)], orientation=orientation,
            hall=(await self.halls()).get(doc["target"].get("hall", ""), {}),
        )


class NoticeAPIHandler(NoticeBase):
    """JSON view and draft save of one piece (same rules as the pages)."""

    async def get(self, content_id: str) -> None:
        doc = await self.load(content_id, "content.view")
        self.write_json({"id": doc["_id"], "status": doc["status"], "version": doc["version"], "draft": doc["draft"]})

    async def post(self, content_id: str) -> None:
        await self.load(content_id, "content.edit")
        body = self.json_body()
        fields = {k: body.get(k) for k in ("title", "body_html", "level", "target")}
        await self.authorise_target("content.edit", fields["target"])
        before, after = await content.save_draft(self.services.store, content_id, fields, by=self.current.id)
        summary = publishing.summary
        await self.record("content.save_draft", "content:" + content_id, summary(before), summary(after))
        self.write_json({"id": after["_id"], "status": after["status"], "draft": after["draft"]})
