"""Kiosk pages (HTML) and the kiosk's small JSON API.

Who is the kiosk: a request proxied by the device agent carries
``Authorization: Device <id>:<credential>``; a plain browser may name a device
with ``?device=<id>`` (remembered in a cookie) or a hall with ``?hall=``; only
the former can identify residents, redeem codes and print certificates.
Public guidance pages are marked ``X-Kiosk-Cache: public`` so the agent keeps
them for offline use; nothing personal is ever marked cacheable.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import urllib.parse
from collections.abc import Awaitable
from typing import Any

from web.base import APIHandler, HTMLHandler
from yiwang import (
    catalog,
    checklist_print,
    content,
    copy_pickup,
    devices,
    display_codes,
    kiosk_agents,
    kiosk_desk,
    kiosk_events,
    kiosk_sessions,
    masking,
    rebinding,
    staff_calls,
)
from yiwang.errors import Forbidden, NotAuthenticated, YiwangError
from yiwang.kiosk_sessions import KioskSession
from yiwang.rendering import qr_svg
from yiwang.timeutil import format_local, utcnow

SESSION_COOKIE = "kiosk_session"
DEVICE_COOKIE = "kiosk_device"
ELDERLY_COOKIE = "kiosk_elderly"
VISIT_COOKIE = "kiosk_visit"  # opaque, non-personal: one visit, so a repeated redemption shows the same copy
DEFAULT_IDLE = (60, 90)
PRINT_PURPOSES = ("办理业务", "资格审核", "本人留存")
MAX_COMBINATIONS = 64


def screen_view(view: dict[str, Any]) -> dict[str, Any]:
    """A certificate as the kiosk screen shows it (``yiwang.masking``: anyone may be standing
    behind the resident); the printed copy is complete."""
    return masking.kiosk_certificate_view(view)


class KioskMixin:
    """Resolves device, hall and session for every kiosk request."""

    device: devices.Device | None = None
    hall: dict[str, Any]
    session: KioskSession | None = None

    async def resolve_kiosk(self: Any) -> None:
        header = self.request.headers.get("Authorization")
        if header:
            device_id, credential = devices.parse_credential_header(header)
            self.device = await devices.authenticate(self.services, device_id, credential,
                                                     self.request.headers.get(devices.MACHINE_HEADER))
        hall_code = self.device.hall if self.device else None
        if hall_code is None:
            named = self.get_query_argument("device", None) or self.get_cookie(DEVICE_COOKIE)
            if named and len(named) <= 64:
                hall_code = await devices.device_hall(self.services, named)
                if hall_code and self.get_query_argument("device", None):
                    self.set_cookie(DEVICE_COOKIE, named, path="/kiosk", httponly=True, samesite="Strict")
        if hall_code is None:
            hall_code = self.get_query_argument("hall", None)
        snap = await self.services.catalog.snapshot()
        if not hall_code or hall_code not in snap.halls:
            hall_code = sorted(snap.halls)[0] if snap.halls else ""
        self.hall = snap.halls.get(hall_code, {"code": "", "name": "政务服务中心", "windows": []})
        token = self.get_cookie(SESSION_COOKIE)
        if token and self.device is not None:
            self.session = await kiosk_sessions.current(self.services, token, self.device.id)

    def require_device(self: Any) -> devices.Device:
        if self.device is None:
            raise NotAuthenticated("kiosk.device_required", "此功能需在政务服务自助终端上使用")
        return self.device  # type: ignore[no-any-return]

    def require_session(self: Any) -> KioskSession:
        self.require_device()
        if self.session is None or not self.session.identified:
            raise NotAuthenticated("kiosk.identification_required", "请先刷身份证或扫码识别身份")
        return self.session  # type: ignore[no-any-return]


class KioskPage(KioskMixin, HTMLHandler):
    error_template = "kiosk/error.html"
    cacheable = False
    staff_call: dict[str, Any] | None = None

    async def prepare(self) -> None:
        super().prepare()
        await self.resolve_kiosk()
        if self.device is not None:  # 呼叫工作人员: a call in progress shows on every page
            self.staff_call = await staff_calls.kiosk_call(self.services, self.device)

    def template_context(self) -> dict[str, Any]:
        context = super().template_context()
        hall = getattr(self, "hall", {"code": "", "name": "政务服务中心", "windows": []})
        context.update(
            hall=hall,
            device=self.device,
            session=self.session,
            elderly=self.get_cookie(ELDERLY_COOKIE) == "1",
            idle=self._idle(),
            now=format_local(utcnow(), "%Y-%m-%d %H:%M"),
            on_device=self.device is not None,
            time_limit=catalog.time_limit_text,
            staff_call=self.staff_call,
        )
        return context

    def _idle(self) -> tuple[int, int]:
        try:
            warn = int(self.get_query_argument("idle_warn", str(DEFAULT_IDLE[0])))
            reset = int(self.get_query_argument("idle_reset", str(DEFAULT_IDLE[1])))
        except ValueError:
            return DEFAULT_IDLE
        if not 1 <= warn < reset <= 600:
            return DEFAULT_IDLE
        return warn, reset

    def render_page(self, template: str, **context: Any) -> None:
        if self.cacheable and self.session is None and self.staff_call is None:
            self.set_header("X-Kiosk-Cache", "public")
        super().render_page(template, **context)


async def hall_notices(handler: KioskPage) -> list[dict[str, Any]]:
    services = handler.services
    return await content.live_notices(services.resources.get(content.PublishedContent), handler.hall,
                                      device_group=handler.device.group if handler.device else None)


class HomePage(KioskPage):
    cacheable = True

    async def get(self) -> None:
        services = self.services
        scenarios = sorted(await services.catalog.scenarios_list(), key=lambda s: s["code"])
        hot = await catalog.hot_items(services.store, services.catalog, channel=None, limit=8, hall=self.hall)
        notices = await hall_notices(self)
        snap = await services.catalog.snapshot()
        self.render_page("kiosk/home.html", scenarios=scenarios, hot=hot, notices=notices,
                         item_count=len(snap.items), themes=catalog.THEMES)


SEARCH_LIMIT = 20


def search_row(item: dict[str, Any]) -> dict[str, Any]:
    return {"code": item["code"], "name": item["name"], "url": f"/kiosk/items/{item['code']}"}


class SearchPage(KioskPage):
    """Search every item: Chinese, pinyin, initials, typos (the mobile API's ``Catalog.search``)."""

    cacheable = True

    async def get(self) -> None:
        query = self.get_query_argument("q", "").strip()[:50]
        found = await self.services.catalog.search(query, limit=SEARCH_LIMIT) if query else []
        self.render_page("kiosk/search.html", query=query, results=[search_row(i) for i in found])


class SearchAPI(KioskMixin, APIHandler):
    async def prepare(self) -> None:
        super().prepare()
        await self.resolve_kiosk()

    async def get(self) -> None:
        query = self.get_query_argument("q", "").strip()[:50]
        found = await self.services.catalog.search(query, limit=SEARCH_LIMIT) if query else []
        self.write_json({"query": query, "results": [search_row(i) for i in found]})


class BrowsePage(KioskPage):
    cacheable = True

    async def get(self) -> None:
        snap = await self.services.catalog.snapshot()
        self.render_page("kiosk/browse.html", departments=catalog.departments_with_items(snap),
                         themes=catalog.THEMES)


class DepartmentItemsPage(KioskPage):
    cacheable = True

    async def get(self, department: str) -> None:
        dept, items = catalog.items_of_department(await self.services.catalog.snapshot(), department)
        self.render_page("kiosk/item_list.html", heading=dept["name"], items=items)


class ThemeItemsPage(KioskPage):
    cacheable = True

    async def get(self, theme: str) -> None:
        label, items = catalog.items_of_theme(await self.services.catalog.snapshot(), theme)
        self.render_page("kiosk/item_list.html", heading=f"{label}办事", items=items)


class ScenarioPage(KioskPage):
    cacheable = True

    async def get(self, code: str) -> None:
        scenario = await self.services.catalog.scenario(code)
        self.render_page("kiosk/scenario.html", scenario=scenario)


class ChecklistMixin(KioskPage):
    async def plan(self, code: str) -> tuple[dict[str, Any], catalog.Plan, dict[str, str]]:
        scenario = await self.services.catalog.scenario(code)
        answers = {q["id"]: self.get_query_argument(q["id"], "") for q in scenario["questions"]}
        answers = {k: v for k, v in answers.items() if v}
        snap = await self.services.catalog.snapshot()
        plan = catalog.plan_scenario(scenario, answers, snap.items, hall=self.hall)
        return scenario, plan, catalog.where_to_go(plan)


class ChecklistPage(ChecklistMixin):
    cacheable = True

    async def get(self, code: str) -> None:
        scenario, plan, where = await self.plan(code)
        query = urllib.parse.urlencode(plan.answers)
        phone_url = f"{self.services.config.public_url}/kiosk/scenarios/{code}/checklist?{query}"
        if self.device is not None and not self.request.headers.get("X-Kiosk-Prefetch"):  # not the agent's crawl
            kiosk_events.record(self.services, self.device.hall, "scenario_checklist",
                                mode=self.session.mode if self.session else None)
        self.render_page("kiosk/checklist.html", scenario=scenario, plan=plan, where=where, query=query,
                         phone_qr=qr_svg(phone_url, 5))


class ChecklistPdf(ChecklistMixin):
    cacheable = True

    async def get(self, code: str) -> None:
        _scenario, plan, where = await self.plan(code)
        lines = checklist_print.checklist_lines(plan, self.hall.get("name", ""), where)
        footer = f"一网 · {self.hall.get('name', '')} · 打印时间 {format_local(utcnow())}"
        pdf = await self.services.offload.run(checklist_print.render_checklist_pdf, lines, footer)
        if self.device is not None and not self.request.headers.get("X-Kiosk-Prefetch"):
            kiosk_events.record(self.services, self.device.hall, "checklist_print")
        self.set_header("Content-Type", "application/pdf")
        self.set_header("X-Kiosk-Cache", "public")
        self.finish(pdf)


class ItemPage(KioskPage):
    cacheable = True

    async def get(self, code: str) -> None:
        item = catalog.localised(await self.services.catalog.item(code), self.hall.get("city"))
        windows = [w for w in self.hall.get("windows", []) if code in w.get("items", [])]
        self.render_page("kiosk/item.html", item=item, windows=windows)


class IdentifyPage(KioskPage):
    """ID card on the reader, or 扫码取证: the page shows this kiosk's consent QR and long-polls
    ``/kiosk/api/consent/<id>/wait`` until the phone releases certificates."""

    async def get(self) -> None:
        consent_qr = None
        if self.device is not None:
            consent_qr = await kiosk_sessions.open_consent_identification(self.services, self.device)
        self.render_page("kiosk/identify.html", next=self._next(), consent=consent_qr,
                         consent_svg=qr_svg(consent_qr["qr_text"], 8) if consent_qr else None)

    def _next(self) -> str:
        target = self.get_query_argument("next", "/kiosk/certificates")
        return target if target.startswith("/kiosk/") and "//" not in target else "/kiosk/certificates"


class CertificatesPage(KioskPage):
    async def get(self) -> None:
        session = self.require_session()
        certs = await kiosk_desk.visible_certificates(self.services, session, self.require_device())
        self.render_page("kiosk/certificates.html", certs=certs)


class CertificatePage(KioskPage):
    async def get(self, certificate_id: str) -> None:
        session = self.require_session()
        view = await kiosk_desk.open_certificate(self.services, session, self.require_device(), certificate_id)
        self.render_page("kiosk/certificate.html", cert=screen_view(view), purposes=PRINT_PURPOSES, redeemed=None,
                         pickup=session.mode == "resident")


class CertificatePickupPage(KioskPage):
    """存到手机: a single-use QR (``YWP1:``, 120 s, no personal data) that the holder scans with the
    mini-program; the page long-polls ``/kiosk/api/pickups/<id>/wait`` and shows 已存到手机."""

    async def post(self, certificate_id: str) -> None:
        session = self.require_session()
        offer = await copy_pickup.offer(self.services, session, self.require_device(), certificate_id,
                                        self.get_body_argument("purpose", ""))
        self.set_header("Cache-Control", "no-store")
        self.render_page("kiosk/certificate_pickup.html", offer=offer, qr=qr_svg(offer["qr_text"], 8),
                         certificate_id=certificate_id)


class CertificatePrintPdf(KioskPage):
    """The annotated copy (加注件) printed through the agent: recorded in the holder's access history."""

    async def get(self, certificate_id: str) -> None:
        session = self.require_session()
        pdf = await kiosk_desk.print_certificate(self.services, session, self.require_device(), certificate_id,
                                                 self.get_query_argument("purpose", ""))
        self.set_header("Content-Type", "application/pdf")
        self.finish(pdf)


class RebindPage(KioskPage):
    """改绑码: after the ID card was read on this kiosk, a single-use code for moving the
    real-name binding to a new WeChat account (``yiwang.rebinding``)."""

    async def get(self) -> None:
        self.require_session()
        self.render_page("kiosk/rebind.html", code=None, qr=None)

    async def post(self) -> None:
        session = self.require_session()
        code = await rebinding.issue_kiosk_code(self.services, session, self.require_device())
        self.set_header("Cache-Control", "no-store")
        self.render_page("kiosk/rebind.html", code=code, qr=qr_svg(code["qr_text"], 10))


class RedeemPage(KioskPage):
    async def get(self) -> None:
        self.render_page("kiosk/redeem.html", error=None)

    async def post(self) -> None:
        device = self.require_device()

        code = self.get_body_argument("code", "")
        visit = self.get_cookie(VISIT_COOKIE)
        if not visit or len(visit) > 64:
            visit = secrets.token_urlsafe(24)
            self.set_cookie(VISIT_COOKIE, visit, path="/kiosk", httponly=True, samesite="Strict")
        try:
            result = await display_codes.redeem_display_code(self.services, code, devices.redeemer_for(device),
                                                             visit=visit)
        except YiwangError as error:
            if isinstance(error, NotAuthenticated | Forbidden):
                raise
            self.set_error_status(error)
            self.render_page("kiosk/redeem.html", error=error.as_dict())
            return
        self.render_page("kiosk/certificate.html", cert=screen_view(result["certificate"]), purposes=(),
                         redeemed=result)


class AgentPage(KioskPage):
    """帮办代办: sign in (QR + phone code), choose items and period, resident's card, file."""

    async def get(self) -> None:
        await self.show()

    async def show(self, error: dict[str, Any] | None = None, filed: dict[str, Any] | None = None) -> None:
        step = await kiosk_agents.screen(self.services, self.session, self.device,
                                         self.get_argument("item", None))
        sign_in = step.get("sign_in")
        self.render_page("kiosk/agent.html", **step, error=error, filed=filed,
                         qr_svg=qr_svg(sign_in["qr_text"], 8) if sign_in else None)

    async def shown_error(self, error: YiwangError) -> None:
        if isinstance(error, NotAuthenticated):
            raise error
        self.set_error_status(error)
        await self.show(error=error.as_dict())


class AgentSignInPage(AgentPage):
    async def post(self) -> None:
        device = self.require_device()
        request_id = self.get_body_argument("request", "")
        try:
            token = await kiosk_agents.complete_sign_in(self.services, device, request_id,
                                                        self.get_body_argument("digits", ""))
        except YiwangError as error:
            if isinstance(error, NotAuthenticated):
                raise
            # the same request stays (its QR was already scanned): only the digits again
            self.set_error_status(error)
            self.render_page("kiosk/agent.html", step="sign_in", sign_in={"request_id": request_id[:64]},
                             qr_svg=None, error=error.as_dict(), filed=None)
            return
        self.set_cookie(SESSION_COOKIE, token, path="/kiosk", httponly=True, samesite="Strict")
        self.redirect("/kiosk/agent", status=303)


class AgentScopePage(AgentPage):
    async def post(self) -> None:
        device = self.require_device()
        if self.session is None:
            raise NotAuthenticated("kiosk.session_expired", "本次服务已结束，请重新登录")
        try:
            await kiosk_agents.set_scope(self.services, self.session, device, self.get_body_arguments("items"),
                                         self.get_body_argument("days", ""))
        except YiwangError as error:
            await self.shown_error(error)
            return
        self.redirect("/kiosk/agent", status=303)


class AgentApplicationPage(AgentPage):
    async def post(self) -> None:
        device = self.require_device()
        session = self.require_session()
        form = {k: self.get_body_argument(k) for k in self.request.body_arguments
                if k not in ("item", "idempotency_key")}
        try:
            filed = await kiosk_agents.file_application(self.services, session, device,
                                                        self.get_body_argument("item", ""), form,
                                                        idempotency_key=self.get_body_argument("idempotency_key", ""))
        except YiwangError as error:
            await self.shown_error(error)
            return
        self.set_status(201)
        await self.show(filed=filed)


class OfflinePage(KioskPage):
    cacheable = True

    async def get(self) -> None:
        self.render_page("kiosk/offline.html")


# ---- JSON API --------------------------------------------------------------


class KioskAPI(KioskMixin, APIHandler):
    async def prepare(self) -> None:
        super().prepare()
        await self.resolve_kiosk()


class LongPollHandler(KioskAPI):
    """Answers when a wait ends; if the page goes away first, the wait is cancelled."""

    _waiting: asyncio.Future[dict[str, Any]] | None = None

    async def answer_when_ready(self, wait: Awaitable[dict[str, Any]]) -> None:
        self.set_header("Cache-Control", "no-store")
        self._waiting = asyncio.ensure_future(wait)
        try:
            result = await self._waiting
        except asyncio.CancelledError:  # the page went away: nobody to answer
            return
        self.write_json(result)

    def on_connection_close(self) -> None:
        super().on_connection_close()  # no longer in flight: shutdown need not wait for it
        if self._waiting is not None:
            self._waiting.cancel()


class IdCardHandler(KioskAPI):
    """Called by the device agent when a card is read: starts (or, in agent mode,
    authorises within) a session. The token goes back to the agent, which hands
    it to the page; the page adopts it into an HttpOnly cookie."""

    async def post(self) -> None:
        device = self.require_device()
        body = self.json_body()
        current = await kiosk_sessions.agent_session_on(self.services, device.id)
        if current is not None and not current.identified:
            session = await kiosk_sessions.authorise_resident(
                self.services, current, device, body.get("id_number"), body.get("name")
            )
            self.write_json({"session": None, **session.public()})  # the page already holds the token
            return
        token, session = await kiosk_sessions.start_by_id_card(
            self.services, device, body.get("id_number"), body.get("name")
        )
        self.write_json({"session": token, **session.public()}, status=201)


class ConsentWaitHandler(LongPollHandler):
    """Long-poll (≤ 25 s): ``{"status": "waiting"}`` or ``{"status": "released", "session": token, …}``."""

    async def get(self, consent_session_id: str) -> None:
        device = self.require_device()
        await self.answer_when_ready(
            kiosk_sessions.await_consent_identification(self.services, device, consent_session_id)
        )


class PickupWaitHandler(LongPollHandler):
    """Long-poll (≤ 25 s) for 存到手机: ``{"status": "waiting"}`` or ``{"status": "picked_up", …}``."""

    async def get(self, pickup_id: str) -> None:
        device = self.require_device()
        await self.answer_when_ready(copy_pickup.wait_for_pickup(self.services, device, pickup_id))


class AdoptSessionHandler(KioskAPI):
    async def post(self) -> None:
        device = self.require_device()
        token = self.json_body().get("session")
        session = await kiosk_sessions.current(self.services, token if isinstance(token, str) else None, device.id)
        if session is None:
            raise NotAuthenticated("kiosk.session_expired", "本次服务已结束，请重新识别身份")
        self.set_cookie(SESSION_COOKIE, str(token), path="/kiosk", httponly=True, samesite="Strict")
        self.write_json(session.public())


class EndSessionHandler(KioskAPI):
    async def post(self) -> None:
        await kiosk_sessions.end(self.services, self.get_cookie(SESSION_COOKIE))
        if self.device is not None:
            await staff_calls.dismiss(self.services, self.device)
        self.clear_cookie(SESSION_COOKIE, path="/kiosk")
        self.clear_cookie(VISIT_COOKIE, path="/kiosk")
        self.clear_cookie(ELDERLY_COOKIE, path="/")
        self.write_json({"ended": True})


def call_view(call: dict[str, Any]) -> dict[str, Any]:
    """What the kiosk page is told: no staff names."""
    return {"id": call["id"], "status": call["status"], "page": call["page"]}


class StaffCallHandler(KioskAPI):
    """呼叫工作人员: ``POST {page, title}`` → ``201 {id, status: "open"}``."""

    async def post(self) -> None:
        device = self.require_device()
        body = self.json_body()
        call = await staff_calls.call(self.services, device, body.get("page"), body.get("title"))
        self.write_json(call_view(call), status=201)


class StaffCallStatusHandler(KioskAPI):
    """Polled by the page: ``{id, status: "open" | "acknowledged" | "closed"}``."""

    async def get(self, call_id: str) -> None:
        call = await staff_calls.kiosk_call(self.services, self.require_device(), call_id)
        self.set_header("Cache-Control", "no-store")
        self.write_json(call_view(call) if call else {})


class SessionHandler(KioskAPI):
    async def get(self) -> None:
        self.write_json({"session": self.session.public() if self.session else None})


class OfflineManifestHandler(KioskAPI):
    """What the device agent should keep for offline use: guidance pages only."""

    async def get(self) -> None:
        snap = await self.services.catalog.snapshot()
        urls = ["/kiosk/", "/kiosk/offline", "/static/kiosk/kiosk.css", "/static/kiosk/kiosk.js",
                "/static/kiosk/elderly.js"]
        for code, scenario in sorted(snap.scenarios.items()):
            urls.append(f"/kiosk/scenarios/{code}")
            combos = catalog.answer_combinations(scenario["questions"])[:MAX_COMBINATIONS]
            urls.extend(f"/kiosk/scenarios/{code}/checklist?{urllib.parse.urlencode(c)}" for c in combos)
        hot = await catalog.hot_items(self.services.store, self.services.catalog, limit=8, hall=self.hall)
        urls.extend(f"/kiosk/items/{item['code']}" for item in hot)
        urls.append("/kiosk/browse")
        urls.extend(f"/kiosk/browse/themes/{key}" for key in catalog.THEMES)
        urls.extend(f"/kiosk/browse/departments/{d['code']}" for d in catalog.departments_with_items(snap))
        self.write_json({"version": snap.version, "urls": urls,
                         "generated_at": dt.datetime.now(dt.UTC)})
