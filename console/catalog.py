"""The service catalogue: province edits the standard, cities their local implementation; halls their windows."""

from __future__ import annotations

from typing import Any

from console.base import ConsoleHandler
from yiwang import catalog_admin, console_accounts
from yiwang.console_accounts import Place, hall_place
from yiwang.errors import InvalidInput

STANDARD_FIELDS = ("name", "conditions", "legal_days", "material_names")


def _standard(doc: dict[str, Any]) -> dict[str, Any]:
    return {"name": doc.get("name"), "conditions": doc.get("conditions"), "legal_days": doc.get("legal_days"),
            "materials": [m.get("name") for m in doc.get("materials", [])], "version": doc.get("version")}  # fmt: skip


class CatalogList(ConsoleHandler):
    async def get(self) -> None:
        await self.authorise("catalog.view", self.current.home_place)
        items = sorted(await self.services.catalog.items_list(), key=lambda i: i["code"])
        query = self.get_argument("q", "").strip()[:50]
        if query:
            items = await self.services.catalog.search(query, limit=100)
        self.render_page("console/catalog.html", items=items, q=query, region=await self.local_region())

    async def local_region(self) -> str:
        """The city whose local implementation this account sees: its own, or its hall's; none for the province."""
        user = self.current
        if user.role == "city":
            return user.region
        if user.halls:
            return str((await self.halls()).get(user.halls[0], {}).get("city", ""))
        return ""


class CatalogItem(CatalogList):
    async def get(self, code: str) -> None:
        await self.authorise("catalog.view", self.current.home_place)
        await self.render_item(code, None)

    async def render_item(self, code: str, error: InvalidInput | None) -> None:
        doc = await catalog_admin.get_item(self.services.store, code)
        user = self.current
        self.render_page(
            "console/catalog_item.html", item=doc, error=error,
            versions=await catalog_admin.item_versions(self.services.store, code),
            may_standard=console_accounts.may(user, "catalog.standard", Place.province()),
            may_local=user.role == "city", city=user.region, fee_allowed=catalog_admin.fee_allowed(doc),
            local=doc.get("local", {}).get(user.region, {}),
        )

    async def post(self, code: str) -> None:
        part = self.form("part")
        store, by = self.services.store, self.current.id
        try:
            if part == "standard":
                await self.authorise("catalog.standard", Place.province())
                raw = {k: self.form(k) for k in STANDARD_FIELDS}
                before, after = await catalog_admin.update_standard(store, code, raw, by=by)
                await self.record("catalog.standard", "item:" + code, _standard(before), _standard(after))
            else:
                user = self.current
                await self.authorise("catalog.local", Place("city", user.region, user.region))
                raw = {k: self.form(k) for k in ("promised_days", "fee_yuan", "fee_note", "note")}
                before, after = await catalog_admin.update_local(store, code, user.region, raw, by=by)
                await self.record(
                    "catalog.local", "item:" + code, before.get("local", {}).get(user.region),
                    after.get("local", {}).get(user.region), city=user.region, version=after["version"],
                )
        except InvalidInput as error:
            self.set_error_status(error)
            await self.render_item(code, error)
            return
        self.redirect(f"/console/catalog/{code}?saved=1")


class HallList(ConsoleHandler):
    async def get(self) -> None:
        halls = await self.halls()
        visible = console_accounts.visible_halls(self.current, halls)
        self.render_page("console/halls.html", halls=[halls[c] for c in visible])


class HallEdit(ConsoleHandler):
    async def get(self, code: str) -> None:
        halls = await self.halls()
        await self.authorise("hall.edit", hall_place(code, halls))
        self.render_page("console/hall_edit.html", hall=await self.services.catalog.hall(code), error=None)

    async def post(self, code: str) -> None:
        halls = await self.halls()
        await self.authorise("hall.edit", hall_place(code, halls))
        raw = {
            "opening_hours": [
                {"days": d, "hours": h}
                for d, h in zip(self.get_body_arguments("days"), self.get_body_arguments("hours"), strict=False)
            ],
            "windows": [
                {"number": n, "name": m, "items": [c.strip() for c in i.replace("，", ",").split(",") if c.strip()]}
                for n, m, i in zip(
                    self.get_body_arguments("window_number"), self.get_body_arguments("window_name"),
                    self.get_body_arguments("window_items"), strict=False,
                )
            ],
        }
        try:
            before, after = await catalog_admin.update_hall(self.services.store, code, raw, by=self.current.id)
        except InvalidInput as error:
            self.set_error_status(error)
            self.render_page("console/hall_edit.html", hall={**halls[code], **raw}, error=error)
            return
        keep = ("opening_hours", "windows")
        await self.record(
            "hall.update", "hall:" + code, {k: before.get(k) for k in keep}, {k: after.get(k) for k in keep}
        )
        self.redirect(f"/console/halls/{code}?saved=1")
