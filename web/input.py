"""Parsing what a client sends, in one place, so that bad input is a 4xx and never a 500.

* JSON bodies: nesting deeper than :data:`MAX_JSON_DEPTH` is refused *before* the parser
  recurses (a 100,000-deep array would otherwise be a ``RecursionError``, and 150 levels
  a BSON encoding error far from here); lone surrogates (``"\\ud800"``, valid JSON but not
  valid Unicode text) are refused while parsing, so nothing downstream has to encode them.
* Request ids from clients are kept only when they are a short token of safe characters.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

from yiwang.errors import InvalidInput
from yiwang.logs import redact

MAX_JSON_DEPTH = 20
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(rb"[\[\]{}]")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _json_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects (brackets inside strings do not count)."""
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return 0
    depth = deepest = 0
    for match in _BRACKETS.finditer(_STRINGS.sub(b'""', body)):
        if match.group() in b"[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                break
        else:
            depth -= 1
    return deepest


def _has_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return bool(_SURROGATE.search(value))
    if isinstance(value, dict):
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_surrogate(v) for v in value)
    return False


def parse_json(body: bytes) -> Any:
    """A JSON document from a request body, or an :class:`InvalidInput` that says what is wrong."""
    if _json_depth(body) > MAX_JSON_DEPTH:
        raise InvalidInput("request.json_too_deep", f"JSON 嵌套不能超过 {MAX_JSON_DEPTH} 层")
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidInput("request.malformed_json", "请求内容不是有效的 JSON") from None
    # Only a \uD8xx–\uDFxx escape can produce a surrogate (strict UTF-8 decoding refuses raw ones).
    if _SURROGATE_ESCAPE.search(body) and _has_surrogate(value):
        raise InvalidInput("request.malformed_json", "请求内容含有无效的 Unicode 字符")
    return value


def request_id(sent: str | None) -> str:
    """The client's request id when it is a short safe token, else a fresh one. Safe includes "not shaped
    like personal data": the request log writes it without a redaction pass (``yiwang.logs``)."""
    if sent and _REQUEST_ID.fullmatch(sent) and redact(sent) == sent:
        return sent
    return secrets.token_hex(16)  # as random as uuid4's 122 bits, without building a UUID
