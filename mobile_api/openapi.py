"""The OpenAPI 3.1 document of the mobile API, as a Python dict, and the
handlers serving it (JSON) and a readable docs page.

``tests/test_mobile_openapi.py`` checks that every route is documented and
runs schemathesis against the live server with this document.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from mobile_api.base import PREFIX, PublicHandler

Schema = dict[str, Any]

NULLABLE_STR: Schema = {"type": ["string", "null"]}
DATETIME: Schema = {"type": "string", "description": "ISO 8601 时间（UTC）"}
ID_PARAM_PATTERN = "^[0-9A-Za-z_.:-]{1,64}$"


def obj(props: dict[str, Schema], required: list[str] | None = None) -> Schema:
    schema: Schema = {"type": "object", "properties": props}
    if required is not None:
        schema["required"] = required
    return schema


def arr(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


ERROR = obj(
    {
        "error": obj(
            {
                "code": {"type": "string", "description": "稳定的英文错误码"},
                "message": {"type": "string", "description": "中文说明"},
                "fields": {"type": "object", "additionalProperties": {"type": "string"}},
                "retry_after": {"type": "integer"},
            },
            ["code", "message"],
        )
    },
    ["error"],
)

ACCOUNT = obj(
    {
        "id": {"type": "string"},
        "level": {
            "type": "integer",
            "description": "实名认证等级：1 微信登录，2 自行声明，3 实名核验，4 人脸，5 证书/柜台",
        },
        "level_name": {"type": "string"},
        "real_name_bound": {"type": "boolean"},
        "name": NULLABLE_STR,
        "id_number": NULLABLE_STR,
        "phone": NULLABLE_STR,
        "phone_country_code": {**NULLABLE_STR, "description": "手机号的国家码（中国大陆为 86）"},
        "agent": NULLABLE_STR,
    },
    ["id", "level", "real_name_bound"],
)

ITEM_SUMMARY = obj(
    {
        "code": {"type": "string"},
        "name": {"type": "string"},
        "short_name": NULLABLE_STR,
        "department": {"type": "string"},
        "legal_days": {"type": ["integer", "null"]},
        "promised_days": {"type": ["integer", "null"]},
        "fee": {"type": ["object", "null"]},
        "channels": {"type": ["array", "null"], "items": {"type": "string"}},
        "online": {"type": "boolean"},
    },
    ["code", "name", "department", "online"],
)

ITEM_DETAIL = {
    "allOf": [
        ref("ItemSummary"),
        obj(
            {
                "department_name": {"type": "string"},
                "conditions": arr({"type": "string"}),
                "materials": arr(
                    obj(
                        {
                            "id": {"type": "string"},
                            "name": {"type": "string"},
                            "form": {"type": "string"},
                            "copies": {"type": "integer"},
                            "required": {"type": "boolean"},
                            "note": {"type": "string"},
                            "certificate_type": NULLABLE_STR,
                        },
                        ["id", "name", "required"],
                    )
                ),
                "form_schema": {"type": ["object", "null"], "description": "申请表 JSON Schema（2020-12）"},
                "where_else": obj({"channels": arr({"type": "object"}), "halls": arr({"type": "object"})}),
                "local_implementations": arr(
                    obj(
                        {
                            "city": {"type": "string"},
                            "city_name": {"type": "string"},
                            "promised_days": {"type": "integer"},
                            "fee": {"type": ["object", "null"]},
                            "note": {"type": "string"},
                        },
                        ["city", "city_name", "promised_days"],
                    )
                ),
            },
            ["conditions", "materials", "where_else", "local_implementations"],
        ),
    ]
}

SCENARIO = obj(
    {
        "code": {"type": "string"},
        "name": {"type": "string"},
        "life_event": NULLABLE_STR,
        "icon": NULLABLE_STR,
        "summary": NULLABLE_STR,
        "questions": arr(
            obj(
                {"id": {"type": "string"}, "text": {"type": "string"}, "options": arr({"type": "object"}),
                 "ask_if": {"type": "object", "description": "asked only when every earlier question named here "
                            "was answered with one of the listed values; empty: always asked",
                            "additionalProperties": arr({"type": "string"})}},
                ["id", "text", "options"],
            )
        ),
    },
    ["code", "name"],
)

PLAN = obj(
    {
        "scenario": {"type": "string"},
        "name": {"type": "string"},
        "answers": {"type": "object"},
        "items": arr(
            obj(
                {
                    "code": {"type": "string"},
                    "name": {"type": "string"},
                    "online": {"type": "boolean"},
                    "materials": arr(
                        obj(
                            {
                                "id": {"type": "string"},
                                "name": {"type": "string"},
                                "no_need_to_bring": {"type": "boolean", "description": "免提交：证照库中已有"},
                            },
                            ["id", "name", "no_need_to_bring"],
                        )
                    ),
                },
                ["code", "name", "materials"],
            )
        ),
        "notes": arr({"type": "string"}),
    },
    ["scenario", "items"],
)

CERTIFICATE = obj(
    {
        "id": {"type": "string"},
        "identifier": {"type": "string"},
        "name": {"type": "string"},
        "type": {"type": "object"},
        "issuer": {"type": "object"},
        "valid_until": NULLABLE_STR,
        "status": {"type": "string"},
    },
    ["id", "identifier", "name", "status"],
)

UPLOAD = obj(
    {
        "id": {"type": "string"},
        "content_type": {"type": "string", "enum": ["image/jpeg", "application/pdf"]},
        "size": {"type": "integer"},
        "width": {"type": ["integer", "null"]},
        "height": {"type": ["integer", "null"]},
        "thumbnail": {"type": "boolean"},
        "created_at": DATETIME,
    },
    ["id", "content_type", "size"],
)

MATERIAL_REF = obj(
    {
        "material": {"type": "string", "description": "事项材料 id"},
        "upload": {"type": "string", "description": "上传文件 id（与 certificate 二选一）"},
        "certificate": {"type": "string", "description": "证照库中的证照 id（免提交）"},
    },
    ["material"],
)

STATUS_ENUM = ["draft", "submitted", "returned", "accepted", "in_review", "approved", "refused", "delivered"]

APPLICATION = obj(
    {
        "id": {"type": "string"},
        "tracking_number": {"type": "string"},
        "item": obj({"code": {"type": "string"}, "name": {"type": "string"}}),
        "department": {"type": "string"},
        "status": {"type": "string", "enum": STATUS_ENUM},
        "status_label": {"type": "string"},
        "applicant": obj({"name": {"type": "string"}, "id_number": {"type": "string"}}),
        "agent": NULLABLE_STR,
        "submitted_at": NULLABLE_STR,
        "updated_at": DATETIME,
        "deadline": {
            "type": ["object", "null"],
            "properties": {
                "date": {"type": "string"},
                "promised_working_days": {"type": "integer"},
                "working_days_left": {"type": ["integer", "null"]},
                "overdue": {"type": "boolean"},
            },
        },
        "correction": {
            "type": ["object", "null"],
            "properties": {"materials": arr({"type": "string"}), "note": {"type": "string"}},
        },
        "result": {"type": ["object", "null"]},
        "form": {"type": "object"},
        "materials": arr({"type": "object"}),
        "history": arr(
            obj(
                {
                    "status": {"type": "string"},
                    "status_label": {"type": "string"},
                    "at": DATETIME,
                    "by": obj({"kind": {"type": "string"}, "label": {"type": "string"}}),
                    "note": {"type": "string"},
                }
            )
        ),
    },
    ["id", "tracking_number", "item", "status", "status_label"],
)

EVALUATION = obj(
    {
        "application": {"type": "string"},
        "level": {"type": "integer", "minimum": 1, "maximum": 5},
        "level_label": {"type": "string"},
        "indicators": {"type": "object", "additionalProperties": {"type": "integer"}},
        "reasons": arr({"type": "string"}),
        "comment": {"type": "string"},
        "rectification": {"type": ["object", "null"]},
    },
    ["application", "level", "indicators"],
)

NULLABLE_STRING: Schema = {"type": ["string", "null"]}
COMPLAINT = obj(
    {
        "id": {"type": "string"},
        "tracking_number": {"type": "string"},
        "kind": {"type": "string"},
        "subject": {"type": "string"},
        "status": {"type": "string", "enum": ["open", "answered"]},
        "answer_due": {"type": "string", "description": "答复期限（北京时间日期）"},
        "overdue": {"type": "boolean", "description": "未答复且已过答复期限"},
        "content": {"type": "string"},
        "answer": {**NULLABLE_STRING, "description": "部门的答复"},
        "answered_at": {**NULLABLE_STRING, "description": "答复时间（UTC）"},
        "answered_on_time": {"type": ["boolean", "null"], "description": "是否在答复期限内答复；未答复为 null"},
        "place": obj(
            {
                "department": {**NULLABLE_STRING, "description": "所涉部门编码"},
                "department_name": NULLABLE_STRING,
                "hall": {**NULLABLE_STRING, "description": "所涉政务服务大厅编码"},
                "hall_name": NULLABLE_STRING,
                "city": {**NULLABLE_STRING, "description": "所涉城市（如 440100）；省级部门或未指明为 null"},
            },
            ["department", "hall", "city"],
        ),
    },
    ["id", "tracking_number", "kind", "status", "answer_due", "overdue", "answered_on_time", "place"],
)

AUTHORISATION = obj(
    {
        "id": {"type": "string"},
        "agent": {"type": "object"},
        "resident": obj({"name": {"type": "string"}, "id_number": {"type": "string"}}),
        "items": arr({"type": "string"}),
        "until": {"type": "string"},
        "channel": {"type": "string", "enum": ["mobile", "kiosk"]},
        "status": {"type": "string", "enum": ["active", "revoked", "expired"]},
        "activity": arr({"type": "object"}),
    },
    ["id", "items", "until", "status"],
)

COPY = obj(
    {
        "id": {"type": "string"},
        "certificate_id": {"type": "string"},
        "certificate_name": {"type": "string"},
        "identifier": {"type": "string", "description": "证照标识"},
        "made_at": {**DATETIME, "description": "制作时间（UTC）"},
        "made_by": obj(
            {"kind": {"type": "string"}, "label": {"type": "string", "description": "制作者（自助终端名称）"}}
        ),
        "purpose": {"type": "string", "description": "制作事由"},
        "valid_until": {**DATETIME, "description": "有效期截止（UTC）"},
        "watermark": {"type": "string", "description": "水印文字：仅供办理××使用 日期"},
        "expired": {"type": "boolean"},
    },
    ["id", "certificate_id", "made_at", "made_by", "purpose", "valid_until", "watermark", "expired"],
)

SCHEMAS: dict[str, Schema] = {
    "Error": ERROR,
    "Account": ACCOUNT,
    "ItemSummary": ITEM_SUMMARY,
    "ItemDetail": ITEM_DETAIL,
    "Scenario": SCENARIO,
    "Plan": PLAN,
    "Certificate": CERTIFICATE,
    "Upload": UPLOAD,
    "MaterialRef": MATERIAL_REF,
    "Application": APPLICATION,
    "Evaluation": EVALUATION,
    "Complaint": COMPLAINT,
    "Authorisation": AUTHORISATION,
    "Copy": COPY,
}

ERROR_TEXT = {
    "400": "输入有误（字段级错误在 error.fields）",
    "401": "未登录、登录失效或过期",
    "403": "无权操作或实名等级不足",
    "404": "不存在，或不属于你",
    "409": "与当前状态冲突",
    "410": "已失效",
    "413": "文件过大",
    "429": "过于频繁",
    "503": "微信或外部服务暂不可用（见 retry_after）",
}


def _json(schema: Schema) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def op(
    summary: str,
    ok: Schema | None,
    *,
    status: str = "200",
    body: Schema | None = None,
    auth: bool = True,
    errors: tuple[str, ...] = ("400", "404"),
    params: list[dict[str, Any]] | None = None,
    level: int | None = None,
    tags: tuple[str, ...] = (),
    description: str = "",
    multipart: bool = False,
    idempotent: bool = False,
    raw_ok: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One operation; every operation documents the error shape for any other status."""
    operation: dict[str, Any] = {"summary": summary, "tags": list(tags)}
    text = description
    if level:
        text = (text + "\n\n" if text else "") + f"需要实名认证等级 {level} 级及以上。"
        operation["x-assurance-level"] = level
    if text:
        operation["description"] = text
    if not auth:
        operation["security"] = []
    parameters = list(params or [])
    if idempotent:
        parameters.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "提交时必填（8–128 个字符）：重试同一提交只会产生一个申请",
                "schema": {"type": "string"},
            }
        )
    if parameters:
        operation["parameters"] = parameters
    if multipart:
        operation["requestBody"] = {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": obj(
                        {"file": {"type": "string", "contentMediaType": "application/octet-stream"}}, ["file"]
                    )
                }
            },
        }
    elif body is not None:
        operation["requestBody"] = {"required": True, "content": _json(body)}
    responses: dict[str, Any] = {}
    if raw_ok is not None:
        responses[status] = raw_ok
    else:
        responses[status] = {"description": "成功", "content": _json(ok or {"type": "object"})}
    codes = list(errors) + (["401", "403"] if auth else [])
    for code in sorted(set(codes)):
        responses[code] = {"description": ERROR_TEXT[code], "content": _json(ref("Error"))}
    responses["default"] = {"description": "其他错误（同一错误格式）", "content": _json(ref("Error"))}
    operation["responses"] = responses
    return operation


def path_param(name: str, description: str = "") -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description or name,
        "schema": {"type": "string", "pattern": ID_PARAM_PATTERN},
    }


def _list(key: str, schema: Schema) -> Schema:
    return obj({key: arr(schema)}, [key])


def _operation_id(method: str, path: str) -> str:
    """``post /applications/{application_id}/submit`` → ``postApplicationsByApplicationIdSubmit``:
    stable, unique per route and method, and a readable name in generated clients."""
    words = [method.lower()]
    for part in path.strip("/").replace("-", "_").split("/"):
        if part.startswith("{"):
            words.append("by")
        words.extend(w for w in part.strip("{}").split("_") if w)
    return words[0] + "".join(w[:1].upper() + w[1:] for w in words[1:])


def with_operation_ids(paths: dict[str, Any]) -> dict[str, Any]:
    for path, operations in paths.items():
        for method, operation in operations.items():
            operation.setdefault("operationId", _operation_id(method, path))
    return paths


def build() -> dict[str, Any]:
    app_id = [path_param("application_id", "申请 id")]
    cert_id = [path_param("certificate_id", "证照 id")]
    answers = obj({"answers": {"type": "object", "additionalProperties": {"type": "string"}}}, ["answers"])
    application_body = obj(
        {
            "item": {"type": "string"},
            "form": {"type": "object"},
            "materials": arr(ref("MaterialRef")),
            "submit": {"type": "boolean", "default": True, "description": "false 保存为草稿"},
        },
        ["item"],
    )
    evaluation_body = obj(
        {
            "level": {"type": "integer", "minimum": 1, "maximum": 5},
            "indicators": {"type": "object", "additionalProperties": {"type": "integer"}},
            "reasons": arr({"type": "string"}),
            "comment": {"type": "string"},
        },
        ["level", "indicators"],
    )
    page = obj(
        {
            "applications": arr(ref("Application")),
            "certificates": arr(ref("Certificate")),
            "reminders": arr(obj({"kind": {"type": "string"}, "message": {"type": "string"}}, ["kind", "message"])),
        },
        ["applications", "certificates", "reminders"],
    )
    paths: dict[str, dict[str, Any]] = {
        "/session": {
            "post": op(
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
            ),
            "delete": op("退出登录（吊销本设备令牌）", obj({"ok": {"type": "boolean"}}), tags=("登录与实名",)),
        },
        "/me": {"get": op("当前账号", ref("Account"), tags=("登录与实名",))},
        "/me/identity": {
            "post": op(
                "实名绑定：姓名 + 身份证号码经核验后绑定（一人一号一个微信账号）",
                ref("Account"),
                body=obj(
                    {
                        "name": {"type": "string"},
                        "id_number": {"type": "string"},
                        "rebind": {"type": "boolean", "description": "该号码已绑定其他微信账号时，确认改绑"},
                    },
                    ["name", "id_number"],
                ),
                errors=("400", "404", "409", "429"),
                tags=("登录与实名",),
            )
        },
        "/me/phone": {
            "post": op(
                "绑定手机号（getPhoneNumber 的 code）",
                ref("Account"),
                body=obj({"code": {"type": "string"}}, ["code"]),
                errors=("400", "404", "429", "503"),
                tags=("登录与实名",),
            )
        },
        "/me/subscriptions": {
            "post": op(
                "记录用户在 wx.requestSubscribeMessage 中同意的模板（每次同意可发一条）",
                obj({"subscriptions": {"type": "object", "additionalProperties": {"type": "integer"}}}),
                body=obj({"template_ids": arr({"type": "string"})}, ["template_ids"]),
                tags=("通知",),
            )
        },
        "/me/agent-activation": {
            "post": op(
                "代办员用督导机构发放的一次性激活码激活代办员身份",
                obj({"code": {"type": "string"}, "village": {"type": "string"}}, ["code"]),
                body=obj(
                    {"agent": {"type": "string"}, "activation_code": {"type": "string"}}, ["agent", "activation_code"]
                ),
                tags=("代办",),
            )
        },
        "/me/page": {
            "get": op(
                "市民个人网页：我的申请、证照、提醒",
                {"allOf": [page, obj({"account": ref("Account"), "companies": arr({"type": "object"})})]},
                level=3,
                tags=("个人与企业网页",),
            )
        },
        "/me/companies/{company_id}/page": {
            "get": op(
                "企业专属网页（仅法定代表人）",
                {"allOf": [page, obj({"company": {"type": "object"}}, ["company"])]},
                params=[path_param("company_id", "企业 id")],
                level=3,
                tags=("个人与企业网页",),
            )
        },
        "/items": {
            "get": op(
                "事项列表：无 q 时按近 30 天热度排序；有 q 时中文、拼音首字母、错别字容错搜索",
                _list("items", ref("ItemSummary")),
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
            )
        },
        "/items/{code}": {
            "get": op(
                "事项详情：受理条件、材料、法定/承诺时限、收费、其他办理渠道",
                ref("ItemDetail"),
                auth=False,
                params=[path_param("code", "事项编码")],
                tags=("事项",),
            )
        },
        "/scenarios": {
            "get": op("场景（一件事）列表", _list("scenarios", ref("Scenario")), auth=False, errors=(), tags=("事项",))
        },
        "/scenarios/{code}": {
            "get": op(
                "场景详情与问题", ref("Scenario"), auth=False, params=[path_param("code", "场景编码")], tags=("事项",)
            )
        },
        "/scenarios/{code}/plan": {
            "post": op(
                "回答问题 → 一次性告知清单；已登录且实名的市民，证照库中已有的材料标为免提交",
                ref("Plan"),
                body=answers,
                auth=False,
                params=[path_param("code", "场景编码")],
                errors=("400", "401", "404"),
                tags=("事项",),
            )
        },
        "/certificates": {
            "get": op("我的电子证照", _list("certificates", ref("Certificate")), level=3, errors=(), tags=("证照",))
        },
        "/certificates/{certificate_id}": {
            "get": op("证照详情（本人查看，留痕）", ref("Certificate"), params=cert_id, level=3, tags=("证照",))
        },
        "/certificates/{certificate_id}/display-codes": {
            "post": op(
                "生成亮证码（说明用途，短时有效）",
                obj({"handle": {"type": "string"}, "code": {"type": "string"}, "expires_at": DATETIME}),
                status="201",
                body=obj({"purpose": {"type": "string", "minLength": 2, "maxLength": 40}}, ["purpose"]),
                params=cert_id,
                level=3,
                errors=("400", "404", "410"),
                tags=("证照",),
            )
        },
        "/display-codes/{handle}/renew": {
            "post": op(
                "刷新亮证码",
                obj({"handle": {"type": "string"}, "code": {"type": "string"}, "expires_at": DATETIME}),
                status="201",
                params=[path_param("handle", "亮证码句柄")],
                level=3,
                errors=("404", "410"),
                tags=("证照",),
            )
        },
        "/certificates/{certificate_id}/access-history": {
            "get": op(
                "证照使用记录（谁、何时、为何用了我的证照）",
                _list("entries", {"type": "object"}),
                params=cert_id,
                level=3,
                tags=("证照",),
            )
        },
        "/certificates/{certificate_id}/file": {
            "get": op(
                "下载本人证照的 OFD 电子证照文件（GB/T 36905：矢量证面、元数据、SM2 电子签章）；下载留痕",
                None,
                params=cert_id,
                level=3,
                errors=("404",),
                tags=("证照",),
                raw_ok={
                    "description": "OFD 文件",
                    "content": {
                        "application/ofd": {"schema": {"type": "string", "contentMediaType": "application/ofd"}}
                    },
                },
            )
        },
        "/consent/describe": {
            "post": op(
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
            )
        },
        "/consent/release": {
            "post": op(
                "授权终端使用所选证照",
                obj({"released": {"type": "integer"}, "requester": {"type": "string"}, "purpose": {"type": "string"}}),
                body=obj(
                    {"code": {"type": "string"}, "certificate_ids": arr({"type": "string"})},
                    ["code", "certificate_ids"],
                ),
                level=3,
                errors=("400", "404", "409", "410"),
                tags=("证照",),
            )
        },
        "/copies/pickup": {
            "post": op(
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
            )
        },
        "/copies": {
            "get": op(
                "我存到手机的加注件（新的在前；expired 为已过有效期）",
                _list("copies", ref("Copy")),
                level=3,
                errors=(),
                tags=("证照",),
            )
        },
        "/copies/{copy_id}/image": {
            "get": op(
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
            )
        },
        "/uploads": {
            "post": op(
                "上传材料（图片或 PDF，按内容识别类型；图片去除 EXIF 并重新编码，生成缩略图）",
                ref("Upload"),
                status="201",
                multipart=True,
                level=3,
                errors=("400", "413"),
                tags=("申请",),
            )
        },
        "/uploads/{upload_id}": {
            "get": op(
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
            )
        },
        "/applications": {
            "get": op("我的申请", _list("applications", ref("Application")), level=3, errors=(), tags=("申请",)),
            "post": op(
                "新建申请：submit=true（默认）直接提交（须带 Idempotency-Key），false 保存草稿",
                ref("Application"),
                status="201",
                body=application_body,
                level=3,
                idempotent=True,
                errors=("400", "404", "409"),
                tags=("申请",),
                description="重试同一提交（相同 Idempotency-Key 与内容）返回 200 和同一个申请。",
            ),
        },
        "/applications/{application_id}": {
            "get": op(
                "申请详情：状态、时限与剩余工作日、补正要求、办理记录",
                ref("Application"),
                params=app_id,
                level=3,
                tags=("申请",),
            ),
            "put": op(
                "修改草稿",
                ref("Application"),
                body=obj({"form": {"type": "object"}, "materials": arr(ref("MaterialRef"))}),
                params=app_id,
                level=3,
                errors=("400", "404", "409"),
                tags=("申请",),
            ),
        },
        "/applications/{application_id}/submit": {
            "post": op(
                "提交草稿",
                ref("Application"),
                params=app_id,
                level=3,
                idempotent=True,
                errors=("400", "404", "409"),
                tags=("申请",),
            )
        },
        "/applications/{application_id}/supplement": {
            "post": op(
                "补正：一次性提供补正通知中的全部材料",
                ref("Application"),
                body=obj({"materials": arr(ref("MaterialRef"))}, ["materials"]),
                params=app_id,
                level=3,
                errors=("400", "404", "409"),
                tags=("申请",),
            )
        },
        "/applications/{application_id}/evaluation": {
            "get": op("查看我的评价及整改结果", ref("Evaluation"), params=app_id, level=3, tags=("好差评",)),
            "post": op(
                "好差评：办结后评价一次；差评（1–2 级）生成 15 个工作日内的整改记录",
                ref("Evaluation"),
                status="201",
                body=evaluation_body,
                params=app_id,
                level=3,
                errors=("400", "404", "409"),
                tags=("好差评",),
            ),
        },
        "/evaluation-options": {
            "get": op("评价等级、指标与原因", {"type": "object"}, auth=False, errors=(), tags=("好差评",))
        },
        "/complaints": {
            "get": op("我的投诉举报", _list("complaints", ref("Complaint")), level=3, errors=(), tags=("投诉举报",)),
            "post": op(
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
            ),
        },
        "/complaints/{complaint_id}": {
            "get": op(
                "投诉举报详情", ref("Complaint"), params=[path_param("complaint_id")], level=3, tags=("投诉举报",)
            )
        },
        "/authorisations": {
            "get": op(
                "我给代办员的授权及其代办记录",
                _list("authorisations", ref("Authorisation")),
                level=3,
                errors=(),
                tags=("代办",),
            ),
            "post": op(
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
            ),
        },
        "/authorisations/{authorisation_id}/revoke": {
            "post": op(
                "撤销授权", ref("Authorisation"), params=[path_param("authorisation_id")], level=3, tags=("代办",)
            )
        },
        "/agent/kiosk-sign-in": {
            "post": op(
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
            )
        },
        "/agent/queue": {
            "get": op(
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
            )
        },
        "/agent/uploads": {
            "post": op(
                "代办员为授权居民上传材料",
                ref("Upload"),
                status="201",
                multipart=True,
                params=[{"name": "authorisation", "in": "query", "required": True, "schema": {"type": "string"}}],
                errors=("400", "413"),
                tags=("代办",),
            )
        },
        "/agent/applications": {
            "post": op(
                "代办员在授权范围内为居民提交申请",
                ref("Application"),
                status="201",
                body={"allOf": [application_body, obj({"authorisation": {"type": "string"}}, ["authorisation"])]},
                idempotent=True,
                errors=("400", "404", "409"),
                tags=("代办",),
            )
        },
        "/agent/applications/{application_id}": {
            "get": op("代办员查看自己代办的申请（授权有效期内）", ref("Application"), params=app_id, tags=("代办",))
        },
        "/staff/session": {
            "post": op(
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
            )
        },
        "/staff/applications": {
            "get": op(
                "本部门的申请",
                _list("applications", ref("Application")),
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
            )
        },
        "/staff/applications/{application_id}": {
            "get": op("申请详情（部门）", ref("Application"), params=app_id, tags=("部门",))
        },
        "/staff/applications/{application_id}/{action}": {
            "post": op(
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
                    *app_id,
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
            )
        },
        "/staff/rectifications": {
            "get": op("本部门的差评整改", _list("rectifications", {"type": "object"}), errors=(), tags=("部门",))
        },
        "/staff/rectifications/{rectification_id}/close": {
            "post": op(
                "填写整改结果",
                {"type": "object"},
                body=obj({"outcome": {"type": "string"}}, ["outcome"]),
                params=[path_param("rectification_id")],
                tags=("部门",),
            )
        },
        "/staff/complaints": {
            "get": op(
                "本部门的投诉举报（不含正文）",
                _list("complaints", ref("Complaint")),
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
            )
        },
        "/staff/complaints/{complaint_id}": {
            "get": op(
                "本部门的一条投诉举报（含正文，查看留痕）",
                ref("Complaint"),
                params=[path_param("complaint_id")],
                tags=("部门",),
            )
        },
        "/staff/complaints/{complaint_id}/answer": {
            "post": op(
                "答复投诉举报（仅一次）；市民可见答复及是否按期",
                ref("Complaint"),
                body=obj({"answer": {"type": "string", "description": "答复内容（2–2000 字）"}}, ["answer"]),
                params=[path_param("complaint_id")],
                errors=("400", "404", "409"),
                tags=("部门",),
            )
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "一网 · 小程序 API",
            "version": "1.0.0",
            "description": '广东政务服务小程序接口。所有错误为 {"error": {"code", "message", "fields"?}}，'
            "code 为稳定的英文错误码，message 为中文说明。令牌放在 Authorization: Bearer 头中。",
        },
        "servers": [{"url": PREFIX}],
        "security": [{"bearer": []}],
        "paths": with_operation_ids(paths),
        "components": {
            "schemas": copy.deepcopy(SCHEMAS),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "POST /session 换取"}},
        },
    }


@functools.cache
def document() -> dict[str, Any]:
    return build()


class OpenAPIHandler(PublicHandler):
    def get(self) -> None:
        self.set_header("Cache-Control", "public, max-age=300")
        self.write_json(document())


class DocsHandler(PublicHandler):
    def get(self) -> None:
        self.render_page("mobile_api/docs.html", spec=document())
