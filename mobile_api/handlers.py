"""Mobile API handlers: parse → authorise → one domain call → render."""

from __future__ import annotations

from mobile_api import views
from mobile_api.base import LEVEL_APPLY, LEVEL_CERTIFICATES, MobileHandler, PublicHandler
from web.base import serve_as_download
from yiwang import (
    accounts,
    agents,
    applications,
    complaints,
    consent,
    copy_pickup,
    display_codes,
    evaluations,
    kiosk_agents,
    uploads,
)
from yiwang import certificates as certs
from yiwang.ofd import files as ofd_files

# ---- session and identity ---------------------------------------------------------


class SessionHandler(MobileHandler):
    async def prepare(self) -> None:
        self.auth_required = self.request.method != "POST"
        await super().prepare()

    async def post(self) -> None:
        body = self.json_body()
        self.write_json(await accounts.login(self.services, body.get("code"), body.get("device_id")), 201)

    async def delete(self) -> None:
        await accounts.logout(self.services, self.principal)
        self.write_json({"ok": True})


class MeHandler(MobileHandler):
    async def get(self) -> None:
        if self.principal.kind == "staff":
            self.write_json(
                {
                    "id": self.principal.account_id,
                    "level": 0,
                    "level_name": "部门工作人员",
                    "real_name_bound": False,
                    "name": None,
                    "id_number": None,
                    "phone": None,
                    "agent": None,
                }
            )
            return
        self.write_json(accounts.account_view(await accounts.account(self.services, self.principal.account_id)))


class IdentityHandler(MobileHandler):
    async def post(self) -> None:
        body = self.json_body()
        view = await accounts.bind_real_name(
            self.services, self.principal, body.get("name"), body.get("id_number"), rebind=body.get("rebind", False),
            address=self.client_address,
        )
        self.write_json(view)


class PhoneHandler(MobileHandler):
    async def post(self) -> None:
        self.write_json(await accounts.bind_phone(self.services, self.principal, self.json_body().get("code")))


class SubscriptionsHandler(MobileHandler):
    async def post(self) -> None:
        subs = await accounts.add_subscriptions(self.services, self.principal, self.json_body().get("template_ids"))
        self.write_json({"subscriptions": subs})


class AgentActivationHandler(MobileHandler):
    async def post(self) -> None:
        self.resident_index(1)  # a real-name resident account: staff tokens cannot become agents
        body = self.json_body()
        view = await agents.activate(
            self.services,
            self.principal.account_id,
            self.principal.actor,
            body.get("agent"),
            body.get("activation_code"),
        )
        self.write_json(view)


# ---- catalogue ---------------------------------------------------------------------


class ItemsHandler(PublicHandler):
    async def get(self) -> None:
        query = self.get_query_argument("q", "").strip()
        limit = self.query_int("limit", 20, 1, 100)
        if query:
            found = await self.services.catalog.search(query, channel="mobile", limit=limit)
            self.write_json({"items": [views.item_summary(i) for i in found]})
        else:
            self.write_rendered(await views.hot_list(self.services, limit))


class ItemHandler(PublicHandler):
    async def get(self, code: str) -> None:
        self.write_rendered(await views.item_rendered(self.services, code))


class ScenariosHandler(PublicHandler):
    async def get(self) -> None:
        self.write_rendered(await views.scenarios_rendered(self.services))


class ScenarioHandler(PublicHandler):
    async def get(self, code: str) -> None:
        self.write_rendered(await views.scenario_rendered(self.services, code))


class PlanHandler(PublicHandler):
    """Anyone may ask; a signed-in, real-name resident also sees what is 免提交."""

    async def post(self, code: str) -> None:
        held: list[str] = []
        if self.request.headers.get("Authorization"):
            principal = await accounts.authenticate(self.services, self.request.headers.get("Authorization"))
            if principal.kind == "resident" and principal.person_index and principal.level >= LEVEL_CERTIFICATES:
                held = await views.held_types(self.services, principal.person_index)
        plan = await views.plan(self.services, code, self.json_body().get("answers"), held)
        self.write_json(plan)


# ---- certificates (wallet) ------------------------------------------------------------


class CertificatesHandler(MobileHandler):
    async def get(self) -> None:
        index = self.resident_index(LEVEL_CERTIFICATES)
        self.write_json({"certificates": await certs.list_for_holder(self.services.store, index)})


class CertificateHandler(MobileHandler):
    async def get(self, certificate_id: str) -> None:
        index = self.resident_index(LEVEL_CERTIFICATES)
        self.write_json(views.certificate_detail(await certs.open_for_holder(self.services, index, certificate_id)))


class CertificateFileHandler(MobileHandler):
    """The holder's own certificate as an OFD e-certificate file (sealed, GB/T 36905)."""

    async def get(self, certificate_id: str) -> None:
        index = self.resident_index(LEVEL_CERTIFICATES)
        data = await ofd_files.holder_file(self.services, index, certificate_id, self.principal.actor)
        self.set_header("Content-Type", ofd_files.CONTENT_TYPE)
        self.set_header("Content-Disposition", f'attachment; filename="{certificate_id}.ofd"')
        self.set_header("Cache-Control", "no-store")
        self.finish(data)


class DisplayCodeHandler(MobileHandler):
    async def post(self, certificate_id: str) -> None:
        index = self.resident_index(LEVEL_CERTIFICATES)
        purpose = self.json_body().get("purpose")
        self.write_json(await display_codes.create_display_code(self.services, index, certificate_id, purpose), 201)


class DisplayCodeRenewHandler(MobileHandler):
    async def post(self, handle: str) -> None:
        index = self.resident_index(LEVEL_CERTIFICATES)
        self.write_json(await display_codes.renew_display_code(self.services, index, handle), 201)


class AccessHistoryHandler(MobileHandler):
    async def get(self, certificate_id: str) -> None:
        index = self.resident_index(LEVEL_CERTIFICATES)
        self.write_json({"entries": await certs.access_history(self.services.store, index, certificate_id)})


class ConsentDescribeHandler(MobileHandler):
    async def post(self) -> None:
        index = self.resident_index(LEVEL_CERTIFICATES)
        code = self.json_body().get("code")
        self.write_json(await consent.describe_consent_session(self.services, index, code))


class ConsentReleaseHandler(MobileHandler):
    async def post(self) -> None:
        index = self.resident_index(LEVEL_CERTIFICATES)
        body = self.json_body()
        result = await consent.release_to_session(self.services, index, body.get("code"), body.get("certificate_ids"))
        self.write_json(result)


class CopyPickupHandler(MobileHandler):
    """存到手机: the holder scanned a kiosk's ``YWP1:`` code; the annotated copy goes to their wallet."""

    async def post(self) -> None:
        index = self.resident_index(LEVEL_CERTIFICATES)
        code = self.json_body().get("code")
        self.write_json(await copy_pickup.claim(self.services, index, self.principal.actor, code), 201)


class CopiesHandler(MobileHandler):
    async def get(self) -> None:
        index = self.resident_index(LEVEL_CERTIFICATES)
        self.write_json({"copies": await copy_pickup.copies_of(self.services, index)})


class CopyImageHandler(MobileHandler):
    async def get(self, copy_id: str) -> None:
        index = self.resident_index(LEVEL_CERTIFICATES)
        fmt = self.get_query_argument("format", "png")
        content_type, data = await copy_pickup.copy_file(self.services, index, self.principal.actor, copy_id, fmt)
        self.set_header("Content-Type", content_type)
        self.set_header("Content-Disposition", "inline")
        self.set_header("Cache-Control", "no-store")
        self.finish(data)


# ---- uploads and applications -----------------------------------------------------------


class UploadsHandler(MobileHandler):
    max_body_bytes = uploads.MAX_BYTES + 64 * 1024  # the file and its multipart envelope
    async def post(self) -> None:
        applicant = await self.applicant()
        self.write_json(
            await uploads.store_upload(self.services, applicant.index, applicant.actor, self.upload_bytes()), 201
        )


class UploadHandler(MobileHandler):
    async def get(self, upload_id: str) -> None:
        applicant = await self.applicant()
        thumbnail = self.get_query_argument("thumbnail", "0") in ("1", "true")
        content_type, data = await uploads.read_upload(
            self.services, applicant.index, applicant.actor, upload_id, thumbnail=thumbnail
        )
        # Someone's file: a download that never runs as a page, whatever a polyglot holds.
        serve_as_download(self, content_type, f"{upload_id}.{'pdf' if content_type == uploads.PDF_TYPE else 'jpg'}")
        self.finish(data)


class ApplicationsHandler(MobileHandler):
    async def get(self) -> None:
        index = self.resident_index(LEVEL_APPLY)
        found = await applications.list_for_applicant(self.services, index)
        self.write_json({"applications": [applications.view(self.services, a) for a in found]})

    async def post(self) -> None:
        body = self.json_body()
        applicant = await self.applicant()
        doc, replayed = await applications.create(
            self.services,
            applicant,
            body.get("item"),
            body.get("form"),
            body.get("materials"),
            submit=body.get("submit", True) is not False,
            idempotency_key=self.idempotency_key,
        )
        self.write_json(applications.view(self.services, doc, detail=True), 200 if replayed else 201)


class ApplicationHandler(MobileHandler):
    async def get(self, application_id: str) -> None:
        index = self.resident_index(LEVEL_APPLY)
        doc = await applications.open_for_applicant(self.services, index, self.principal.actor, application_id)
        self.write_json(applications.view(self.services, doc, detail=True))

    async def put(self, application_id: str) -> None:
        body = self.json_body()
        applicant = await self.applicant()
        doc = await applications.update_draft(
            self.services, applicant, application_id, body.get("form"), body.get("materials")
        )
        self.write_json(applications.view(self.services, doc, detail=True))


class SubmitHandler(MobileHandler):
    async def post(self, application_id: str) -> None:
        applicant = await self.applicant()
        doc = await applications.submit_draft(self.services, applicant, application_id, self.idempotency_key)
        self.write_json(applications.view(self.services, doc, detail=True))


class SupplementHandler(MobileHandler):
    async def post(self, application_id: str) -> None:
        body = self.json_body()
        applicant = await self.applicant()
        doc = await applications.supplement(self.services, applicant, application_id, body.get("materials"))
        self.write_json(applications.view(self.services, doc, detail=True))


class EvaluationHandler(MobileHandler):
    async def get(self, application_id: str) -> None:
        index = self.resident_index(LEVEL_APPLY)
        self.write_json(await evaluations.evaluation_for(self.services, index, application_id))

    async def post(self, application_id: str) -> None:
        body = self.json_body()
        index = self.resident_index(LEVEL_APPLY)
        view = await evaluations.evaluate(
            self.services,
            index,
            self.principal.actor,
            application_id,
            level=body.get("level"),
            indicators=body.get("indicators"),
            reasons=body.get("reasons"),
            comment=body.get("comment"),
        )
        self.write_json(view, 201)


class EvaluationOptionsHandler(PublicHandler):
    def get(self) -> None:
        self.write_json(views.evaluation_options())


class ComplaintsHandler(MobileHandler):
    async def get(self) -> None:
        index = self.resident_index(LEVEL_APPLY)
        self.write_json({"complaints": await complaints.complaints_of(self.services, index)})

    async def post(self) -> None:
        body = self.json_body()
        index = self.resident_index(LEVEL_APPLY)
        view = await complaints.file_complaint(
            self.services,
            index,
            self.principal.actor,
            kind=body.get("kind"),
            subject=body.get("subject"),
            content=body.get("content"),
            application_id=body.get("application"),
            department=body.get("department"),
            hall=body.get("hall"),
        )
        self.write_json(view, 201)


class ComplaintHandler(MobileHandler):
    async def get(self, complaint_id: str) -> None:
        index = self.resident_index(LEVEL_APPLY)
        self.write_json(await complaints.complaint_of(self.services, index, complaint_id))


class PersonalPageHandler(MobileHandler):
    async def get(self) -> None:
        index = self.resident_index(LEVEL_CERTIFICATES)
        self.write_json(await views.personal_page(self.services, self.principal, index))


class CompanyPageHandler(MobileHandler):
    async def get(self, company_id: str) -> None:
        index = self.resident_index(LEVEL_CERTIFICATES)
        self.write_json(await views.company_page(self.services, index, company_id))


# ---- authorisations (resident side) --------------------------------------------------------


class AuthorisationsHandler(MobileHandler):
    async def get(self) -> None:
        index = self.resident_index(LEVEL_APPLY)
        self.write_json({"authorisations": await agents.authorisations_for_resident(self.services, index)})

    async def post(self) -> None:
        body = self.json_body()
        index = self.resident_index(LEVEL_APPLY)
        view = await agents.grant_authorisation(
            self.services,
            index,
            body.get("agent"),
            body.get("items"),
            body.get("until"),
            channel="mobile",
            actor=self.principal.actor,
            resident_account_id=self.principal.account_id,
        )
        self.write_json(view, 201)


class AuthorisationRevokeHandler(MobileHandler):
    async def post(self, authorisation_id: str) -> None:
        index = self.resident_index(LEVEL_APPLY)
        view = await agents.revoke_authorisation(self.services, index, authorisation_id, self.principal.actor)
        self.write_json(view)


# ---- agents ------------------------------------------------------------------------------------


class AgentQueueHandler(MobileHandler):
    async def get(self) -> None:
        agent = await self.agent_doc()
        self.write_json(await views.agent_queue(self.services, agent))


class AgentKioskSignInHandler(MobileHandler):
    async def post(self) -> None:
        code = self.json_body().get("code")
        agent = await self.agent_doc()
        self.write_json(await kiosk_agents.confirm_on_phone(self.services, agent, code, self.principal.actor))


class AgentUploadsHandler(MobileHandler):
    max_body_bytes = uploads.MAX_BYTES + 64 * 1024
    async def post(self) -> None:
        agent = await self.agent_doc()
        auth = await agents.require_authorisation(
            self.services, agent["_id"], self.get_query_argument("authorisation", ""), None
        )
        view = await uploads.store_upload(
            self.services, auth["resident_index"], agents.agent_actor(agent), self.upload_bytes()
        )
        await agents.record_activity(self.services, auth["_id"], "upload", view["id"])
        self.write_json(view, 201)


class AgentApplicationsHandler(MobileHandler):
    async def post(self) -> None:
        body = self.json_body()
        agent = await self.agent_doc()
        applicant = await views.agent_applicant(self.services, agent, body.get("authorisation"), body.get("item"))
        doc, replayed = await applications.create(
            self.services,
            applicant,
            body.get("item"),
            body.get("form"),
            body.get("materials"),
            submit=True,
            idempotency_key=self.idempotency_key,
        )
        if not replayed:
            await agents.record_activity(
                self.services, applicant.authorisation or "", "application.submitted", doc["_id"]
            )
        self.write_json(applications.view(self.services, doc, detail=True), 200 if replayed else 201)


class AgentApplicationHandler(MobileHandler):
    async def get(self, application_id: str) -> None:
        agent = await self.agent_doc()
        self.write_json(await views.agent_application(self.services, agent, application_id))


# ---- staff ----------------------------------------------------------------------------------------


class StaffSessionHandler(PublicHandler):
    async def post(self) -> None:
        body = self.json_body()
        login = await accounts.staff_login(
            self.services, body.get("username"), body.get("password"), self.client_address, body.get("code")
        )
        self.write_json(login, 201)


class StaffApplicationsHandler(MobileHandler):
    async def get(self) -> None:
        staff = self.staff()
        found = await applications.staff_list(self.services, staff, self.get_query_argument("status", None))
        self.write_json({"applications": [applications.view(self.services, a) for a in found]})


class StaffApplicationHandler(MobileHandler):
    async def get(self, application_id: str) -> None:
        doc = await applications.staff_get(self.services, self.staff(), application_id)
        self.write_json(applications.view(self.services, doc, detail=True))


class StaffTransitionHandler(MobileHandler):
    async def post(self, application_id: str, action: str) -> None:
        body = self.json_body()
        doc = await applications.transition(self.services, self.staff(), application_id, action, body)
        self.write_json(applications.view(self.services, doc, detail=True))


class StaffRectificationsHandler(MobileHandler):
    async def get(self) -> None:
        staff = self.staff()
        self.write_json({"rectifications": await evaluations.rectifications_for_department(self.services, staff)})


class StaffRectificationCloseHandler(MobileHandler):
    async def post(self, rectification_id: str) -> None:
        body = self.json_body()
        view = await evaluations.close_rectification(self.services, self.staff(), rectification_id, body.get("outcome"))
        self.write_json(view)


class StaffComplaintsHandler(MobileHandler):
    async def get(self) -> None:
        status = self.get_query_argument("status", None)
        self.write_json({"complaints": await complaints.complaints_for_department(self.services, self.staff(), status)})


class StaffComplaintHandler(MobileHandler):
    async def get(self, complaint_id: str) -> None:
        self.write_json(await complaints.complaint_for_staff(self.services, self.staff(), complaint_id))


class StaffComplaintAnswerHandler(MobileHandler):
    async def post(self, complaint_id: str) -> None:
        answer = self.json_body().get("answer")
        self.write_json(await complaints.answer_complaint(self.services, self.staff(), complaint_id, answer))
