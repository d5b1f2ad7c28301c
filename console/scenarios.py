"""Life-event scenarios (场景式导航): questions, rules → checklist; drafts, preview, publish, roll back.

Everyone who reads the catalogue may look (``catalog.view``); only the province edits
(``scenario.edit``): a scenario is one guide for the whole province.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

from console.base import ConsoleHandler
from yiwang import catalog, console_accounts, scenario_admin
from yiwang.catalog import time_limit_text
from yiwang.console_accounts import Place
from yiwang.errors import InvalidInput
from yiwang.rendering import qr_svg
from yiwang.store import Document
from yiwang.timeutil import format_local, utcnow

_KEY = re.compile(r"^[a-z0-9]{1,12}$")
PREVIEW_IDLE = (540, 600)  # the kiosk's longest idle timers: a preview frame should not reset itself


def _audit_view(fields: dict[str, Any] | None, version: Any = None) -> dict[str, Any] | None:
    """What the audit trail keeps of a scenario (guidance text only, no personal data)."""
    if fields is None:
        return None
    return {**{k: fields.get(k) for k in scenario_admin.FIELDS}, "version": version}


class ScenarioBase(ConsoleHandler):
    async def may_view(self) -> None:
        user = self.current
        await self.authorise("catalog.view", user.home_place)

    def may_edit(self) -> bool:
        return console_accounts.may(self.current, "scenario.edit", Place.province())

    async def render_editor(self, code: str, *, fields: dict[str, Any] | None = None,
                            error: InvalidInput | None = None) -> None:
        store = self.services.store
        state = await scenario_admin.editing(store, code)
        snap = await self.services.catalog.snapshot()
        items = sorted((c, i["name"]) for c, i in snap.items.items())
        self.render_page(
            "console/scenario_edit.html", scenario=state.scenario, fields=fields or state.fields,
            draft=state.draft, versions=await scenario_admin.versions(store, code), items=items,
            item_names=dict(items), error=error, errors=(error.fields or {}) if error else {},
            may_edit=self.may_edit(), ask_if_text=scenario_admin.ask_if_text,
        )  # fmt: skip

    def fields_from_form(self) -> dict[str, Any]:
        """The structured form → the domain's shape. Keys tie options and conditions to their question."""
        questions: list[dict[str, Any]] = []
        qid_by_key: dict[str, str] = {}
        for key in self.get_body_arguments("q_key"):
            if not _KEY.match(key):
                continue
            qid = self.form(f"q_id.{key}").strip()
            qid_by_key[key] = qid
            options = [
                {"value": v, "label": label}
                for v, label in zip(
                    self.get_body_arguments(f"opt_value.{key}"), self.get_body_arguments(f"opt_label.{key}"),
                    strict=False,
                )
            ]
            questions.append({"id": qid, "text": self.form(f"q_text.{key}"), "options": options,
                              "ask_if": self.form(f"ask_if.{key}").strip()})
        rules: list[dict[str, Any]] = []
        for key in self.get_body_arguments("r_key"):
            if not _KEY.match(key):
                continue
            when: dict[str, str] = {}
            for qkey, qid in qid_by_key.items():
                value = self.form(f"when.{key}.{qkey}").strip()
                if value:
                    when[qid] = value
            # Conditions posted as "question=value" (kept when a question was renamed or removed).
            for pair in self.get_body_arguments(f"cond.{key}"):
                qid, _, value = pair.partition("=")
                if qid.strip() and value.strip():
                    when.setdefault(qid.strip(), value.strip())
            rules.append({"when": when, "items": [c.strip() for c in self.get_body_arguments(f"items.{key}")]})
        return {
            "name": self.form("name"), "summary": self.form("summary"),
            "notes": self.form("notes").splitlines(), "questions": questions, "rules": rules,
        }  # fmt: skip


class ScenarioList(ScenarioBase):
    async def get(self) -> None:
        await self.may_view()
        scenarios = await scenario_admin.list_scenarios(self.services.store)
        self.render_page("console/scenarios.html", scenarios=scenarios, may_edit=self.may_edit())


class ScenarioEdit(ScenarioBase):
    async def get(self, code: str) -> None:
        await self.may_view()
        await self.render_editor(code)

    async def post(self, code: str) -> None:
        await self.authorise("scenario.edit", Place.province())
        fields = self.fields_from_form()
        try:
            before, draft = await scenario_admin.save_draft(self.services.store, code, fields, by=self.current.id)
        except InvalidInput as error:
            self.set_error_status(error)
            await self.render_editor(code, fields=fields, error=error)
            return
        await self.record("scenario.save_draft", "scenario:" + code, _audit_view(before), _audit_view(draft["fields"]))
        self.redirect(f"/console/scenarios/{code}?saved=1")


class ScenarioAction(ScenarioBase):
    """publish / rollback / discard (the draft)."""

    async def post(self, code: str, action: str) -> None:
        await self.authorise("scenario.edit", Place.province())
        store, by = self.services.store, self.current.id
        if action == "discard":
            state = await scenario_admin.editing(store, code)
            await scenario_admin.discard_draft(store, code)
            await self.record("scenario.discard_draft", "scenario:" + code, _audit_view(state.fields), None)
            self.redirect(f"/console/scenarios/{code}?done=discard")
            return
        try:
            if action == "publish":
                before, after = await scenario_admin.publish(store, code, by=by)
            else:
                version = self.form("version")
                if not version.isdigit():
                    raise InvalidInput(
                        "scenario.version_invalid", "请选择要恢复的版本", fields={"version": "版本号不正确"}
                    )
                before, after = await scenario_admin.rollback(store, code, int(version), by=by)
        except InvalidInput as error:  # e.g. an item removed from the catalogue since the draft was saved
            self.set_error_status(error)
            await self.render_editor(code, error=error)
            return
        await self.record(
            "scenario." + action, "scenario:" + code,
            _audit_view(scenario_admin.fields_of(before), before.get("version", 1)),
            _audit_view(scenario_admin.fields_of(after), after.get("version")),
        )  # fmt: skip
        self.redirect(f"/console/scenarios/{code}?done={action}")


class ScenarioPreview(ScenarioBase):
    """Pick answers (and a hall, for its windows); the kiosk's checklist page of the draft in a frame."""

    async def get(self, code: str) -> None:
        await self.may_view()
        state = await scenario_admin.editing(self.services.store, code)
        snap = await self.services.catalog.snapshot()
        questions = state.fields["questions"]
        answers = {q["id"]: self.get_query_argument(q["id"], q["options"][0]["value"]) for q in questions}
        hall = self.get_query_argument("hall", "")
        hall = hall if hall in snap.halls else ""
        combos = []
        for combo in scenario_admin.combinations(questions):
            plan = scenario_admin.preview(state.scenario, state.fields, combo, snap.items)
            combos.append((combo, [i.name for i in plan.items]))
        query = urllib.parse.urlencode({**answers, **({"hall": hall} if hall else {})})
        self.render_page(
            "console/scenario_preview.html", scenario=state.scenario, fields=state.fields, draft=state.draft,
            answers=answers, hall=hall, halls=sorted((c, h["name"]) for c, h in snap.halls.items()),
            frame_url=f"/console/scenarios/{code}/render?{query}", combos=combos,
        )  # fmt: skip


class ScenarioRender(ScenarioBase):
    """The kiosk's own checklist template, for the draft (framed by the preview page)."""

    async def get(self, code: str) -> None:
        await self.may_view()
        state = await scenario_admin.editing(self.services.store, code)
        snap = await self.services.catalog.snapshot()
        answers = {q["id"]: self.get_query_argument(q["id"], "") for q in state.fields["questions"]}
        answers = {k: v for k, v in answers.items() if v}
        hall: Document = snap.halls.get(self.get_query_argument("hall", ""), {"code": "", "name": "政务服务中心"})
        plan = scenario_admin.preview(state.scenario, state.fields, answers, snap.items, hall=hall)
        query = urllib.parse.urlencode(plan.answers)
        phone_url = f"{self.services.config.public_url}/kiosk/scenarios/{code}/checklist?{query}"
        self.set_header("X-Frame-Options", "SAMEORIGIN")
        self.set_header("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'self'")
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        page = self.jinja.get_template("kiosk/checklist.html").render(
            request=self.request, request_id=self.request_id, hall=hall, device=None, session=None,
            elderly=False, idle=PREVIEW_IDLE, now=format_local(utcnow(), "%Y-%m-%d %H:%M"),
            on_device=False, scenario={**state.scenario, **state.fields}, plan=plan, where=catalog.where_to_go(plan),
            query=query, phone_qr=qr_svg(phone_url, 5), time_limit=time_limit_text, staff_call=None,
        )  # fmt: skip
        self.finish(page)
