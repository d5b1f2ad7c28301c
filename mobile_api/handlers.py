"""Mobile API handlers: parse → authorise → one domain call → render.

Each handler declares its own route (``path``, an OpenAPI path template under
``/api/mobile/v1``) and what each method does (``api``): the route table, the
body validation and the OpenAPI document are all made from these declarations."""

from __future__ import annotations

from mobile_api import views
from mobile_api.base import LEVEL_APPLY, LEVEL_CERTIFICATES, MobileHandler, PublicHandler
from mobile_api.schemas import (
    ANSWERS,
    APP_ID,
    APPLICATION_BODY,
    CERT_ID,
    DATETIME,
    EVALUATION_BODY,
    PAGE,
    STATUS_ENUM,
    arr,
    list_of,
    obj,
    op,
    operations,
    path_param,
    ref,
)
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
    notifications,
    rebinding,
    uploads,
    verification,
)
from yiwang import certificates as certs
from yiwang.ofd import files as ofd_files

# ---- session and identity ---------------------------------------------------------


class SessionHandler(MobileHandler):
    path = "/session"
    api = operations(
        post=op(
            "用 wx.login 的 code 登录，换取本平台的访问令牌",
            obj(
                {
                    "token": {"type": "string"},
                    "token_type": {"type": "string", "const": "Bearer"},
                    "expires_at": DATETIME,
                    "account": ref("Account"),
                },
                ["token", "token_type", "expires_at", "account"],
            ),
            status="201",
            body=obj({"code": {"type": "string"}, "device_id": {"type": "string", "maxLength": 64}}, ["code"]),
            auth=False,
            errors=("400", "429", "503"),
            tags=("登录与实名",),
            description="微信 40029 → 400 wechat.invalid_code；45011 → 429 wechat.rate_limited；"
            "微信繁忙或不可达 → 503 wechat.busy（retry_after 秒后重试）。每台设备一个令牌，重新登录替换旧令牌。",
            invalid="session.code_required",
        ),
        delete=op("退出登录（吊销本设备令牌）", obj({"ok": {"type": "boolean"}}), tags=("登录与实名",)),
    )

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
    path = "/me"
    api = operations(
        get=op("当前账号", ref("Account"), tags=("登录与实名",)),
    )

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
    path = "/me/identity"
    api = operations(
        post=op(
            "实名绑定：姓名 + 身份证号码经核验后绑定（一人一号一个微信账号）；改绑需更强的证明",
            ref("Account"),
            body=obj(
                {
                    "name": {"type": "string"},
                    "id_number": {"type": "string"},
                    "rebind": {"type": "boolean", "description": "该号码已绑定其他微信账号时，确认改绑"},
                    "rebind_code": {
                        "type": ["string", "null"],
                        "description": "改绑码：在政务服务自助终端刷身份证后显示的 8 位数字"
                        "（或扫描其二维码 YWR1:…），5 分钟内有效，只能使用一次",
                    },
                },
                ["name", "id_number"],
            ),
            errors=("400", "403", "404", "409", "429"),
            tags=("登录与实名",),
            description="号码已绑定其他账号时：不带 rebind → 409 identity.bound_elsewhere；"
            "rebind 但没有比原绑定更强的证明 → 403 identity.rebind_proof_required（或 "
            "identity.rebind_proof_insufficient）；改绑码错误、已用或过期 → 403 identity.rebind_code_invalid。"
            "证明：自助终端刷身份证获取的改绑码（等级 5），或核验服务给出的人脸核验（等级 4）；须高于原账号等级。"
            "改绑成功后原账号不被登出，但解除实名（等级 1），/me 中出现 security_notice，并收到订阅消息。"
            "任何情况下都不改变任何数据，除非改绑成功。",
            invalid="identity.bind_invalid",
        ),
    )

    async def post(self) -> None:
        body = self.json_body()
        view = await rebinding.bind_real_name(
            self.services, self.principal, body.get("name"), body.get("id_number"), rebind=body.get("rebind", False),
            address=self.client_address, rebind_code=body.get("rebind_code"),
        )
        self.write_json(view)


class PhoneHandler(MobileHandler):
    path = "/me/phone"
    api = operations(
        post=op(
            "绑定手机号（getPhoneNumber 的 code）",
            ref("Account"),
            body=obj({"code": {"type": "string"}}, ["code"]),
            errors=("400", "404", "429", "503"),
            tags=("登录与实名",),
        ),
    )

    async def post(self) -> None:
        self.write_json(await accounts.bind_phone(self.services, self.principal, self.json_body().get("code")))


class SubscriptionsHandler(MobileHandler):
    path = "/me/subscriptions"
    api = operations(
        post=op(
            "记录用户在 wx.requestSubscribeMessage 中同意的模板（每次同意可发一条）",
            obj({"subscriptions": {"type": "object", "additionalProperties": {"type": "integer"}}}),
            body=obj({"template_ids": arr({"type": "string"})}, ["template_ids"]),
            tags=("通知",),
        ),
    )

    async def post(self) -> None:
        subs = await notifications.add_subscriptions(
            self.services, self.principal, self.json_body().get("template_ids")
        )
        self.write_json({"subscriptions": subs})


class AgentActivationHandler(MobileHandler):
    path = "/me/agent-activation"
    api = operations(
        post=op(
            "代办员用督导机构发放的一次性激活码激活代办员身份",
            obj({"code": {"type": "string"}, "village": {"type": "string"}}, ["code"]),
            body=obj(
                {"agent": {"type": "string"}, "activation_code": {"type": "string"}}, ["agent", "activation_code"]
            ),
            tags=("代办",),
        ),
    )

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
    path = "/items"
    api = operations(
        get=op(
            "事项列表：无 q 时按近 30 天热度排序；有 q 时中文、拼音首字母、错别字容错搜索",
            list_of("items", ref("ItemSummary")),
            auth=False,
            errors=("400",),
            params=[
                {"name": "q", "in": "query", "required": False, "schema": {"type": "string", "maxLength": 50}},
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 100},
                },
            ],
            tags=("事项",),
        ),
    )

    async def get(self) -> None:
        query = self.get_query_argument("q", "").strip()
        limit = self.query_int("limit", 20, 1, 100)
        if query:
            found = await self.services.catalog.search(query, channel="mobile", limit=limit)
            self.write_json({"items": [views.item_summary(i) for i in found]})
        else:
            self.write_rendered(await views.hot_list(self.services, limit))


class ItemHandler(PublicHandler):
    path = "/items/{code}"
    api = operations(
        get=op(
            "事项详情：受理条件、材料、法定/承诺时限、收费、其他办理渠道",
            ref("ItemDetail"),
            auth=False,
            params=[path_param("code", "事项编码")],
            tags=("事项",),
        ),
    )

    async def get(self, code: str) -> None:
        self.write_rendered(await views.item_rendered(self.services, code))


class ScenariosHandler(PublicHandler):
    path = "/scenarios"
    api = operations(
        get=op("场景（一件事）列表", list_of("scenarios", ref("Scenario")), auth=False, errors=(), tags=("事项",)),
    )

    async def get(self) -> None:
        self.write_rendered(await views.scenarios_rendered(self.services))


class ScenarioHandler(PublicHandler):
    path = "/scenarios/{code}"
    api = operations(
        get=op(
            "场景详情与问题", ref("Scenario"), auth=False, params=[path_param("code", "场景编码")], tags=("事项",)
        ),
    )

    async def get(self, code: str) -> None:
        self.write_rendered(await views.scenario_rendered(self.services, code))


class PlanHandler(PublicHandler):
    """Anyone may ask; a signed-in, real-name resident also sees what is 免提交."""

    path = "/scenarios/{code}/plan"
    api = operations(
        post=op(
            "回答问题 → 一次性告知清单；已登录且实名的市民，证照库中已有的材料标为免提交",
            ref("Plan"),
            body=ANSWERS,
            auth=False,
            params=[path_param("code", "场景编码")],
            errors=("400", "401", "404"),
            tags=("事项",),
            invalid="scenario.answers_invalid",
        ),
    )


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
    path = "/certificates"
    api = operations(
        get=op("我的电子证照", list_of("certificates", ref("Certificate")), level=3, errors=(), tags=("证照",)),
    )

    async def get(self) -> None:
        index = self.resident_index(LEVEL_CERTIFICATES)
        self.write_json({"certificates": await certs.list_for_holder(self.services.store, index)})


class CertificateHandler(MobileHandler):
    path = "/certificates/{certificate_id}"
    api = operations(
        get=op("证照详情（本人查看，留痕）", ref("Certificate"), params=CERT_ID, level=3, tags=("证照",)),
    )

    async def get(self, certificate_id: str) -> None:
        index = self.resident_index(LEVEL_CERTIFICATES)
        opened = await verification.open_for_holder(self.services, index, certificate_id)
        self.write_json(views.certificate_detail(opened))


class CertificateFileHandler(MobileHandler):
    """The holder's own certificate as an OFD e-certificate file (sealed, GB/T 36905)."""

    path = "/certificates/{certificate_id}/file"
    api = operations(
        get=op(
            "下载本人证照的 OFD 电子证照文件（GB/T 36905：矢量证面、元数据、SM2 电子签章）；下载留痕",
            None,
            params=CERT_ID,
            level=3,
            errors=("404",),
            tags=("证照",),
            raw_ok={
                "description": "OFD 文件",
                "content": {
                    "application/ofd": {"schema": {"type": "string", "contentMediaType": "application/ofd"}}
                },
            },
        ),
    )


    async def get(self, certificate_id: str) -> None:
        index = self.resident_index(LEVEL_CERTIFICATES)
        data = await ofd_files.holder_file(self.services, index, certificate_id, self.principal.actor)
        self.set_header("Content-Type", ofd_files.CONTENT_TYPE)
        self.set_header("Content-Disposition", f'attachment; filename="{certificate_id}.ofd"')
        self.set_header("Cache-Control", "no-store")
        self.finish(data)


class DisplayCodeHandler(MobileHandler):
    path = "/certificates/{certificate_id}/display-codes"
    api = operations(
        post=op(
            "生成亮证码（说明用途，短时有效）",
            obj({"handle": {"type": "string"}, "code": {"type": "string"}, "expires_at": DATETIME}),
            status="201",
            body=obj({"purpose": {"type": "string", "minLength": 2, "maxLength": 40}}, ["purpose"]),
            params=CERT_ID,
            level=3,
            errors=("400", "404", "410"),
            tags=("证照",),
            invalid="certificate.purpose_required",
        ),
    )

    async def post(self, certificate_id: str) -> None:
        index = self.resident_index(LEVEL_CERTIFICATES)
        purpose = self.json_body().get("purpose")
        self.write_json(await display_codes.create_display_code(self.services, index, certificate_id, purpose), 201)


class DisplayCodeRenewHandler(MobileHandler):
    path = "/display-codes/{handle}/renew"
    api = operations(
        post=op(
            "刷新亮证码",
            obj({"handle": {"type": "string"}, "code": {"type": "string"}, "expires_at": DATETIME}),
            status="201",
            params=[path_param("handle", "亮证码句柄")],
            level=3,
            errors=("404", "410"),
            tags=("证照",),
        ),
    )

    async def post(self, handle: str) -> None:
        index = self.resident_index(LEVEL_CERTIFICATES)
        self.write_json(await display_codes.renew_display_code(self.services, index, handle), 201)


class AccessHistoryHandler(MobileHandler):
    path = "/certificates/{certificate_id}/access-history"
    api = operations(
        get=op(
            "证照使用记录（谁、何时、为何用了我的证照）",
            list_of("entries", {"type": "object"}),
            params=CERT_ID,
            level=3,
            tags=("证照",),
        ),
    )

    async def get(self, certificate_id: str) -> None:
        index = self.resident_index(LEVEL_CERTIFICATES)
        self.write_json({"entries": await certs.access_history(self.services.store, index, certificate_id)})


class ConsentDescribeHandler(MobileHandler):
    path = "/consent/describe"
    api = operations(
        post=op(
            "扫描自助终端的取证码：谁在要、用途、可选证照",
            obj(
                {
                    "requester": {"type": "object"},
                    "purpose": {"type": "string"},
                    "certificates": arr(ref("Certificate")),
                }
            ),
            body=obj({"code": {"type": "string"}}, ["code"]),
            level=3,
            errors=("400", "404", "409", "410"),
            tags=("证照",),
            invalid="consent.code_invalid",
        ),
    )

    async def post(self) -> None:
        index = self.resident_index(LEVEL_CERTIFICATES)
        code = self.json_body().get("code")
        self.write_json(await consent.describe_consent_session(self.services, index, code))


class ConsentReleaseHandler(MobileHandler):
    path = "/consent/release"
    api = operations(
        post=op(
            "授权终端使用所选证照",
            obj({"released": {"type": "integer"}, "requester": {"type": "string"}, "purpose": {"type": "string"}}),
            body=obj(
                {"code": {"type": "string"}, "certificate_ids": arr({"type": "string"})},
                ["code", "certificate_ids"],
            ),
            level=3,
            errors=("400", "404", "409", "410"),
            tags=("证照",),
            invalid="consent.code_invalid",
        ),
    )

    async def post(self) -> None:
        index = self.resident_index(LEVEL_CERTIFICATES)
        body = self.json_body()
        result = await consent.release_to_session(self.services, index, body.get("code"), body.get("certificate_ids"))
        self.write_json(result)


class CopyPickupHandler(MobileHandler):
    """存到手机: the holder scanned a kiosk's ``YWP1:`` code; the annotated copy goes to their wallet."""

    path = "/copies/pickup"
    api = operations(
        post=op(
            "存到手机：扫描自助终端上的二维码（YWP1:…），把终端制作的加注件保存到本人账号",
            obj({"copy": ref("Copy"), "certificate": ref("Certificate")}, ["copy", "certificate"]),
            status="201",
            body=obj({"code": {"type": "string", "description": "终端二维码内容 YWP1:…"}}, ["code"]),
            level=3,
            errors=("400", "404", "409", "410"),
            tags=("证照",),
            description="二维码 120 秒内有效、只能使用一次。只有证照持有人本人（账号实名绑定的号码即证照持证人）"
            "才能保存：其他账号扫码 → 403 copy_pickup.not_holder，二维码不作废。格式不对 → 400 "
            "copy_pickup.code_invalid；不存在 → 404 copy_pickup.unknown；已使用 → 409 copy_pickup.used；"
            "已过期 → 410 copy_pickup.expired；终端上的服务已结束 → 410 copy_pickup.session_ended；"
            "证照已不是有效状态 → 410 certificate.revoked。",
            invalid="copy_pickup.code_invalid",
        ),
    )


    async def post(self) -> None:
        index = self.resident_index(LEVEL_CERTIFICATES)
        code = self.json_body().get("code")
        self.write_json(await copy_pickup.claim(self.services, index, self.principal.actor, code), 201)


class CopiesHandler(MobileHandler):
    path = "/copies"
    api = operations(
        get=op(
            "我存到手机的加注件（新的在前；expired 为已过有效期）",
            list_of("copies", ref("Copy")),
            level=3,
            errors=(),
            tags=("证照",),
        ),
    )

    async def get(self) -> None:
        index = self.resident_index(LEVEL_CERTIFICATES)
        self.write_json({"copies": await copy_pickup.copies_of(self.services, index)})


class CopyImageHandler(MobileHandler):
    path = "/copies/{copy_id}/image"
    api = operations(
        get=op(
            "下载存到手机的加注件：png 为证面（带水印与核验码），pdf 为 A4 打印件（含加注信息），"
            "ofd 为带电子签章的 OFD 电子证照文件；查看留痕",
            None,
            params=[
                path_param("copy_id", "加注件 id"),
                {
                    "name": "format",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "enum": ["png", "pdf", "ofd"], "default": "png"},
                },
            ],
            level=3,
            errors=("400", "404", "410"),
            tags=("证照",),
            raw_ok={
                "description": "加注件文件",
                "content": {
                    "image/png": {"schema": {"type": "string", "contentMediaType": "image/png"}},
                    "application/pdf": {"schema": {"type": "string", "contentMediaType": "application/pdf"}},
                    "application/ofd": {"schema": {"type": "string", "contentMediaType": "application/ofd"}},
                },
            },
        ),
    )

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
    path = "/uploads"
    api = operations(
        post=op(
            "上传材料（图片或 PDF，按内容识别类型；图片去除 EXIF 并重新编码，生成缩略图）",
            ref("Upload"),
            status="201",
            multipart=True,
            level=3,
            errors=("400", "413"),
            tags=("申请",),
        ),
    )

    max_body_bytes = uploads.MAX_BYTES + 64 * 1024  # the file and its multipart envelope
    async def post(self) -> None:
        applicant = await self.applicant()
        view = await uploads.store_upload(
            self.services, applicant.index, applicant.actor, self.upload_bytes(), account_id=self.principal.account_id
        )
        self.write_json(view, 201)


class UploadHandler(MobileHandler):
    path = "/uploads/{upload_id}"
    api = operations(
        get=op(
            "读取自己上传的材料（thumbnail=1 取缩略图）",
            None,
            params=[
                path_param("upload_id", "文件 id"),
                {
                    "name": "thumbnail",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "enum": ["0", "1"]},
                },
            ],
            level=3,
            tags=("申请",),
            raw_ok={
                "description": "文件内容",
                "content": {
                    "image/jpeg": {"schema": {"type": "string", "contentMediaType": "image/jpeg"}},
                    "application/pdf": {"schema": {"type": "string", "contentMediaType": "application/pdf"}},
                },
            },
        ),
    )

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
    path = "/applications"
    api = operations(
        get=op("我的申请", list_of("applications", ref("Application")), level=3, errors=(), tags=("申请",)),
        post=op(
            "新建申请：submit=true（默认）直接提交（须带 Idempotency-Key），false 保存草稿",
            ref("Application"),
            status="201",
            body=APPLICATION_BODY,
            level=3,
            idempotent=True,
            errors=("400", "404", "409"),
            tags=("申请",),
            description="重试同一提交（相同 Idempotency-Key 与内容）返回 200 和同一个申请。",
        ),
    )

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
        self.write_json(await applications.detail_view(self.services, doc), 200 if replayed else 201)


class ApplicationHandler(MobileHandler):
    path = "/applications/{application_id}"
    api = operations(
        get=op(
            "申请详情：状态、时限与剩余工作日、补正要求、办理记录",
            ref("Application"),
            params=APP_ID,
            level=3,
            tags=("申请",),
        ),
        put=op(
            "修改草稿",
            ref("Application"),
            body=obj({"form": {"type": "object"}, "materials": arr(ref("MaterialRef"))}),
            params=APP_ID,
            level=3,
            errors=("400", "404", "409"),
            tags=("申请",),
        ),
    )

    async def get(self, application_id: str) -> None:
        index = self.resident_index(LEVEL_APPLY)
        doc = await applications.open_for_applicant(self.services, index, self.principal.actor, application_id)
        self.write_json(await applications.detail_view(self.services, doc))

    async def put(self, application_id: str) -> None:
        body = self.json_body()
        applicant = await self.applicant()
        doc = await applications.update_draft(
            self.services, applicant, application_id, body.get("form"), body.get("materials")
        )
        self.write_json(await applications.detail_view(self.services, doc))


class SubmitHandler(MobileHandler):
    path = "/applications/{application_id}/submit"
    api = operations(
        post=op(
            "提交草稿",
            ref("Application"),
            params=APP_ID,
            level=3,
            idempotent=True,
            errors=("400", "404", "409"),
            tags=("申请",),
        ),
    )

    async def post(self, application_id: str) -> None:
        applicant = await self.applicant()
        doc = await applications.submit_draft(self.services, applicant, application_id, self.idempotency_key)
        self.write_json(await applications.detail_view(self.services, doc))


class SupplementHandler(MobileHandler):
    path = "/applications/{application_id}/supplement"
    api = operations(
        post=op(
            "补正：一次性提供补正通知中的全部材料",
            ref("Application"),
            body=obj({"materials": arr(ref("MaterialRef"))}, ["materials"]),
            params=APP_ID,
            level=3,
            errors=("400", "404", "409"),
            tags=("申请",),
        ),
    )

    async def post(self, application_id: str) -> None:
        body = self.json_body()
        applicant = await self.applicant()
        doc = await applications.supplement(self.services, applicant, application_id, body.get("materials"))
        self.write_json(await applications.detail_view(self.services, doc))


class EvaluationHandler(MobileHandler):
    path = "/applications/{application_id}/evaluation"
    api = operations(
        get=op("查看我的评价及整改结果", ref("Evaluation"), params=APP_ID, level=3, tags=("好差评",)),
        post=op(
            "好差评：办结后评价一次；差评（1–2 级）生成 15 个工作日内的整改记录",
            ref("Evaluation"),
            status="201",
            body=EVALUATION_BODY,
            params=APP_ID,
            level=3,
            errors=("400", "404", "409"),
            tags=("好差评",),
            invalid="evaluation.invalid",
        ),
    )

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
    path = "/evaluation-options"
    api = operations(
        get=op("评价等级、指标与原因", {"type": "object"}, auth=False, errors=(), tags=("好差评",)),
    )

    def get(self) -> None:
        self.write_json(views.evaluation_options())


class ComplaintsHandler(MobileHandler):
    path = "/complaints"
    api = operations(
        get=op("我的投诉举报", list_of("complaints", ref("Complaint")), level=3, errors=(), tags=("投诉举报",)),
        post=op(
            "投诉举报：返回受理编号与答复期限",
            ref("Complaint"),
            status="201",
            body=obj(
                {
                    "kind": {"type": "string", "enum": ["complaint", "report", "suggestion"]},
                    "subject": {"type": "string"},
                    "content": {"type": "string"},
                    "application": {"type": "string", "description": "所投诉的本人申请 id（部门由申请确定）"},
                    "department": {"type": "string", "description": "所投诉的部门编码（事项目录中的部门）"},
                    "hall": {"type": "string", "description": "所投诉的政务服务大厅编码"},
                },
                ["kind", "subject", "content"],
            ),
            level=3,
            errors=("400",),
            tags=("投诉举报",),
            description="投诉所涉地点由所选申请或部门、大厅确定（须为事项目录中存在的），用于按地统计与分派答复。",
            invalid="complaint.invalid",
        ),
    )

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
    path = "/complaints/{complaint_id}"
    api = operations(
        get=op(
            "投诉举报详情", ref("Complaint"), params=[path_param("complaint_id")], level=3, tags=("投诉举报",)
        ),
    )

    async def get(self, complaint_id: str) -> None:
        index = self.resident_index(LEVEL_APPLY)
        self.write_json(await complaints.complaint_of(self.services, index, complaint_id))


class PersonalPageHandler(MobileHandler):
    path = "/me/page"
    api = operations(
        get=op(
            "市民个人网页：我的申请、证照、提醒",
            {"allOf": [PAGE, obj({"account": ref("Account"), "companies": arr({"type": "object"})})]},
            level=3,
            tags=("个人与企业网页",),
        ),
    )

    async def get(self) -> None:
        index = self.resident_index(LEVEL_CERTIFICATES)
        self.write_json(await views.personal_page(self.services, self.principal, index))


class CompanyPageHandler(MobileHandler):
    path = "/me/companies/{company_id}/page"
    api = operations(
        get=op(
            "企业专属网页（仅法定代表人）",
            {"allOf": [PAGE, obj({"company": {"type": "object"}}, ["company"])]},
            params=[path_param("company_id", "企业 id")],
            level=3,
            tags=("个人与企业网页",),
        ),
    )

    async def get(self, company_id: str) -> None:
        index = self.resident_index(LEVEL_CERTIFICATES)
        self.write_json(await views.company_page(self.services, index, company_id))


# ---- authorisations (resident side) --------------------------------------------------------


class AuthorisationsHandler(MobileHandler):
    path = "/authorisations"
    api = operations(
        get=op(
            "我给代办员的授权及其代办记录",
            list_of("authorisations", ref("Authorisation")),
            level=3,
            errors=(),
            tags=("代办",),
        ),
        post=op(
            "授权代办员代办指定事项至某日",
            ref("Authorisation"),
            status="201",
            body=obj(
                {
                    "agent": {"type": "string"},
                    "items": arr({"type": "string"}),
                    "until": {"type": "string", "format": "date"},
                },
                ["agent", "items", "until"],
            ),
            level=3,
            errors=("400", "404"),
            tags=("代办",),
            invalid="authorisation.invalid",
        ),
    )

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
    path = "/authorisations/{authorisation_id}/revoke"
    api = operations(
        post=op(
            "撤销授权", ref("Authorisation"), params=[path_param("authorisation_id")], level=3, tags=("代办",)
        ),
    )

    async def post(self, authorisation_id: str) -> None:
        index = self.resident_index(LEVEL_APPLY)
        view = await agents.revoke_authorisation(self.services, index, authorisation_id, self.principal.actor)
        self.write_json(view)


# ---- agents ------------------------------------------------------------------------------------


class AgentQueueHandler(MobileHandler):
    path = "/agent/queue"
    api = operations(
        get=op(
            "代办员工作台：我代办的申请、状态、待居民处理事项，有效授权",
            obj(
                {
                    "agent": {"type": "object"},
                    "applications": arr(ref("Application")),
                    "authorisations": arr(ref("Authorisation")),
                },
                ["applications", "authorisations"],
            ),
            tags=("代办",),
        ),
    )

    async def get(self) -> None:
        agent = await self.agent_doc()
        self.write_json(await views.agent_queue(self.services, agent))


class AgentKioskSignInHandler(MobileHandler):
    path = "/agent/kiosk-sign-in"
    api = operations(
        post=op(
            "代办员在自助终端登录：扫描终端上的登录码，手机显示 6 位确认码，在终端上输入",
            obj(
                {
                    "kiosk": {"type": "string", "description": "终端名称"},
                    "confirmation_code": {"type": "string", "description": "在终端上输入的 6 位确认码"},
                    "expires_at": DATETIME,
                },
                ["kiosk", "confirmation_code", "expires_at"],
            ),
            body=obj({"code": {"type": "string", "description": "终端二维码内容 YWK1:…"}}, ["code"]),
            errors=("400", "403", "404", "409", "410"),
            tags=("代办",),
            invalid="agent_sign_in.code_invalid",
        ),
    )

    async def post(self) -> None:
        code = self.json_body().get("code")
        agent = await self.agent_doc()
        self.write_json(await kiosk_agents.confirm_on_phone(self.services, agent, code, self.principal.actor))


class AgentUploadsHandler(MobileHandler):
    path = "/agent/uploads"
    api = operations(
        post=op(
            "代办员为授权居民上传材料",
            ref("Upload"),
            status="201",
            multipart=True,
            params=[{"name": "authorisation", "in": "query", "required": True, "schema": {"type": "string"}}],
            errors=("400", "413"),
            tags=("代办",),
        ),
    )

    max_body_bytes = uploads.MAX_BYTES + 64 * 1024
    async def post(self) -> None:
        agent = await self.agent_doc()
        auth = await agents.require_authorisation(
            self.services, agent["_id"], self.get_query_argument("authorisation", ""), None
        )
        view = await uploads.store_upload(
            self.services, auth["resident_index"], agents.agent_actor(agent), self.upload_bytes(),
            account_id=self.principal.account_id,
        )  # fmt: skip
        await agents.record_activity(self.services, auth["_id"], "upload", view["id"])
        self.write_json(view, 201)


class AgentApplicationsHandler(MobileHandler):
    path = "/agent/applications"
    api = operations(
        post=op(
            "代办员在授权范围内为居民提交申请",
            ref("Application"),
            status="201",
            body={"allOf": [APPLICATION_BODY, obj({"authorisation": {"type": "string"}}, ["authorisation"])]},
            idempotent=True,
            errors=("400", "404", "409"),
            tags=("代办",),
        ),
    )

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
        self.write_json(await applications.detail_view(self.services, doc), 200 if replayed else 201)


class AgentApplicationHandler(MobileHandler):
    path = "/agent/applications/{application_id}"
    api = operations(
        get=op("代办员查看自己代办的申请（授权有效期内）", ref("Application"), params=APP_ID, tags=("代办",)),
    )

    async def get(self, application_id: str) -> None:
        agent = await self.agent_doc()
        self.write_json(await views.agent_application(self.services, agent, application_id))


# ---- staff ----------------------------------------------------------------------------------------


class StaffSessionHandler(PublicHandler):
    path = "/staff/session"
    api = operations(
        post=op(
            "部门工作人员登录（department_staff 角色的管理后台账号，与后台登录同样限流；生产环境关闭）",
            obj(
                {"token": {"type": "string"}, "token_type": {"type": "string"}, "department": {"type": "string"}},
                ["token", "department"],
            ),
            status="201",
            body=obj(
                {
                    "username": {"type": "string"},
                    "password": {"type": "string"},
                    "code": {"type": "string", "description": "已启用动态验证码的账号：6 位动态验证码"},
                },
                ["username", "password"],
            ),
            auth=False,
            errors=("400", "401", "403", "429"),
            tags=("部门",),
            invalid="staff.credentials_required",
        ),
    )

    async def post(self) -> None:
        body = self.json_body()
        login = await accounts.staff_login(
            self.services, body.get("username"), body.get("password"), self.client_address, body.get("code")
        )
        self.write_json(login, 201)


class StaffApplicationsHandler(MobileHandler):
    path = "/staff/applications"
    api = operations(
        get=op(
            "本部门的申请",
            list_of("applications", ref("Application")),
            params=[
                {
                    "name": "status",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "enum": STATUS_ENUM[1:]},
                }
            ],
            errors=("400",),
            tags=("部门",),
        ),
    )

    async def get(self) -> None:
        staff = self.staff()
        found = await applications.staff_list(self.services, staff, self.get_query_argument("status", None))
        self.write_json({"applications": [applications.view(self.services, a) for a in found]})


class StaffApplicationHandler(MobileHandler):
    path = "/staff/applications/{application_id}"
    api = operations(
        get=op("申请详情（部门）", ref("Application"), params=APP_ID, tags=("部门",)),
    )

    async def get(self, application_id: str) -> None:
        doc = await applications.staff_get(self.services, self.staff(), application_id)
        self.write_json(await applications.detail_view(self.services, doc, for_staff=True))


class StaffTransitionHandler(MobileHandler):
    path = "/staff/applications/{application_id}/{action}"
    api = operations(
        post=op(
            "办件流转：accept 受理 / return 补正（一次，列明全部材料）/ review 审查 / approve 准予 / refuse 不予 / "
            "deliver 送达（certificate 电子证照入库、pickup 领取、post 邮寄）",
            ref("Application"),
            body=obj(
                {
                    "note": {"type": "string"},
                    "materials": arr({"type": "string"}),
                    "method": {"type": "string", "enum": ["certificate", "pickup", "post"]},
                    "place": {"type": "string"},
                    "tracking": {"type": "string"},
                    "certificate": {"type": "object"},
                }
            ),
            params=[
                *APP_ID,
                {
                    "name": "action",
                    "in": "path",
                    "required": True,
                    "schema": {
                        "type": "string",
                        "enum": ["accept", "return", "review", "approve", "refuse", "deliver"],
                    },
                },
            ],
            errors=("400", "404", "409"),
            tags=("部门",),
        ),
    )

    async def post(self, application_id: str, action: str) -> None:
        body = self.json_body()
        doc = await applications.transition(self.services, self.staff(), application_id, action, body)
        self.write_json(await applications.detail_view(self.services, doc, for_staff=True))


class StaffRectificationsHandler(MobileHandler):
    path = "/staff/rectifications"
    api = operations(
        get=op("本部门的差评整改", list_of("rectifications", {"type": "object"}), errors=(), tags=("部门",)),
    )

    async def get(self) -> None:
        staff = self.staff()
        self.write_json({"rectifications": await evaluations.rectifications_for_department(self.services, staff)})


class StaffRectificationCloseHandler(MobileHandler):
    path = "/staff/rectifications/{rectification_id}/close"
    api = operations(
        post=op(
            "填写整改结果",
            {"type": "object"},
            body=obj({"outcome": {"type": "string"}}, ["outcome"]),
            params=[path_param("rectification_id")],
            tags=("部门",),
            invalid="rectification.outcome_required",
        ),
    )

    async def post(self, rectification_id: str) -> None:
        body = self.json_body()
        view = await evaluations.close_rectification(self.services, self.staff(), rectification_id, body.get("outcome"))
        self.write_json(view)


class StaffComplaintsHandler(MobileHandler):
    path = "/staff/complaints"
    api = operations(
        get=op(
            "本部门的投诉举报（不含正文）",
            list_of("complaints", ref("Complaint")),
            params=[
                {
                    "name": "status",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "enum": ["open", "answered"]},
                }
            ],
            errors=("400",),
            tags=("部门",),
        ),
    )

    async def get(self) -> None:
        status = self.get_query_argument("status", None)
        self.write_json({"complaints": await complaints.complaints_for_department(self.services, self.staff(), status)})


class StaffComplaintHandler(MobileHandler):
    path = "/staff/complaints/{complaint_id}"
    api = operations(
        get=op(
            "本部门的一条投诉举报（含正文，查看留痕）",
            ref("Complaint"),
            params=[path_param("complaint_id")],
            tags=("部门",),
        ),
    )

    async def get(self, complaint_id: str) -> None:
        self.write_json(await complaints.complaint_for_staff(self.services, self.staff(), complaint_id))


class StaffComplaintAnswerHandler(MobileHandler):
    path = "/staff/complaints/{complaint_id}/answer"
    api = operations(
        post=op(
            "答复投诉举报（仅一次）；市民可见答复及是否按期",
            ref("Complaint"),
            body=obj({"answer": {"type": "string", "description": "答复内容（2–2000 字）"}}, ["answer"]),
            params=[path_param("complaint_id")],
            errors=("400", "404", "409"),
            tags=("部门",),
        ),
    )

    async def post(self, complaint_id: str) -> None:
        answer = self.json_body().get("answer")
        self.write_json(await complaints.answer_complaint(self.services, self.staff(), complaint_id, answer))
