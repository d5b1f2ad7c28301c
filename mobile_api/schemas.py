"""The pieces each mobile handler declares its operations with (``op``), and the
shared component schemas of the OpenAPI 3.1 document that ``mobile_api.openapi``
assembles from those declarations."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import fastjsonschema

from yiwang.errors import InvalidInput

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
        "security_notice": {
            "type": ["object", "null"],
            "description": "账号安全提醒：如实名身份已被改绑到其他微信账号（kind = identity_moved）",
            "properties": {"kind": NULLABLE_STR, "message": NULLABLE_STR, "at": {}},
        },
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
        "check": {
            "type": "string",
            "enum": ["pending", "pass", "review", "refused", "unchecked"],
            "description": "图片内容安全检测（微信 mediaCheckAsync）：检测中、通过、通过（待人工复核）、未通过、未检测",
        },
        "check_label": {"type": "string", "description": "检测状态的中文说明"},
        "check_reason": {"type": "string", "description": "未通过时的原因（中文），请更换图片后重新上传"},
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
        "content_check": {
            "type": "string",
            "enum": ["pass", "review", "unchecked"],
            "description": "（仅部门）申请表中文字的微信内容安全检测结果：review 需人工复核",
        },
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
    invalid: str | None = None,
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
    if invalid:
        operation["x-invalid-code"] = invalid
    return operation


def operations(**by_method: dict[str, Any]) -> Mapping[str, dict[str, Any]]:
    """A handler's ``api``: its methods (``get=op(...)``) and what each does."""
    return MappingProxyType(by_method)


def path_param(name: str, description: str = "") -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description or name,
        "schema": {"type": "string", "pattern": ID_PARAM_PATTERN},
    }


def list_of(key: str, schema: Schema) -> Schema:
    return obj({key: arr(schema)}, [key])


# Shared request bodies and parameters.
APP_ID = [path_param("application_id", "申请 id")]
CERT_ID = [path_param("certificate_id", "证照 id")]
ANSWERS = obj({"answers": {"type": "object", "additionalProperties": {"type": "string"}}}, ["answers"])
APPLICATION_BODY = obj(
        {
            "item": {"type": "string"},
            "form": {"type": "object"},
            "materials": arr(ref("MaterialRef")),
            "submit": {"type": "boolean", "default": True, "description": "false 保存为草稿"},
        },
        ["item"],
    )
EVALUATION_BODY = obj(
        {
            "level": {"type": "integer", "minimum": 1, "maximum": 5},
            "indicators": {"type": "object", "additionalProperties": {"type": "integer"}},
            "reasons": arr({"type": "string"}),
            "comment": {"type": "string"},
        },
        ["level", "indicators"],
    )
PAGE = obj(
        {
            "applications": arr(ref("Application")),
            "certificates": arr(ref("Certificate")),
            "reminders": arr(obj({"kind": {"type": "string"}, "message": {"type": "string"}}, ["kind", "message"])),
        },
        ["applications", "certificates", "reminders"],
    )


# ---- checking request bodies against the declared schema ---------------------------

_TYPE_NAMES = {"string": "字符串", "integer": "整数", "number": "数字", "boolean": "布尔值（true 或 false）",
               "object": "对象", "array": "数组", "null": "空"}


def _body_schema(operation: Mapping[str, Any]) -> Schema | None:
    content = operation.get("requestBody", {}).get("content", {})
    found: Schema | None = content.get("application/json", {}).get("schema")
    return found


@functools.cache
def _validator(schema_json: str) -> Callable[[Any], Any]:
    # The components travel with the schema, so its $refs resolve inside it.
    schema = {**json.loads(schema_json), "components": {"schemas": _shape(SCHEMAS)}}
    return fastjsonschema.compile(schema, use_default=False)  # type: ignore[no-any-return]


def _problem(error: fastjsonschema.JsonSchemaValueException) -> str:
    rule, expected = error.rule, error.rule_definition
    if rule == "type":
        names = expected if isinstance(expected, list) else [expected]
        return "应为" + "或".join(_TYPE_NAMES.get(n, str(n)) for n in names)
    if rule in ("enum", "const"):
        return "取值不在允许范围内"
    if rule in ("minLength", "maxLength"):
        return "长度不符合要求（" + ("至少" if rule == "minLength" else "至多") + f" {expected} 个字符）"
    if rule in ("minimum", "maximum"):
        return "超出允许范围（" + ("不小于" if rule == "minimum" else "不大于") + f" {expected}）"
    if rule in ("minItems", "maxItems"):
        return "条目数量不符合要求"
    return "格式不正确"


def _resolved(schema: Schema) -> Schema:
    ref_to = schema.get("$ref", "")
    return SCHEMAS[ref_to.rsplit("/", 1)[-1]] if ref_to.startswith("#/components/schemas/") else schema


def _properties(schema: Schema) -> tuple[dict[str, Schema], list[str]]:
    """An object schema's own properties and required names, through ``allOf`` and refs."""
    schema = _resolved(schema)
    properties = dict(schema.get("properties", {}))
    required = list(schema.get("required", []))
    for part in schema.get("allOf", []):
        more, needed = _properties(part)
        properties.update(more)
        required += needed
    return properties, required


# Rules on values (ranges, lengths, choices) are the domain's to judge, with its own codes and
# every field at once; the declared schema guards the shape: types and presence.
_VALUE_RULES = frozenset(
    {"enum", "const", "minLength", "maxLength", "minimum", "maximum", "pattern", "minItems", "maxItems", "format"}
)


def _shape(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _shape(v) for k, v in schema.items() if k not in _VALUE_RULES}
    if isinstance(schema, list):
        return [_shape(v) for v in schema]
    return schema


def _check(schema: Schema, value: Any) -> str | None:
    try:
        _validator(json.dumps(_shape(schema), sort_keys=True))(value)
    except fastjsonschema.JsonSchemaValueException as error:
        return _problem(error)
    return None


def validate_body(operation: Mapping[str, Any], body: dict[str, Any]) -> None:
    """A body whose shape breaks the operation's declared schema is a 400 naming every field
    at fault (told once), before any domain code sees it; its code is the operation's own
    (``op(invalid=...)``) where clients already know one."""
    schema = _body_schema(operation)
    if schema is None:
        return
    properties, required = _properties(schema)
    fields = {name: "必填" for name in required if name not in body}
    for name, value in body.items():
        if name in properties and (problem := _check(properties[name], value)):
            fields[name] = problem
    if not fields and (problem := _check(schema, body)):
        fields["body"] = problem
    if fields:
        raise InvalidInput(
            operation.get("x-invalid-code", "request.body_invalid"),
            "请求内容不符合接口说明：" + "；".join(f"{k} {v}" for k, v in fields.items()),
            fields=fields,
        )
