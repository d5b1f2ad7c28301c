"""The IPP/1.1 binary encoding (RFC 8010) and the few operations a kiosk needs (RFC 8011).

Message: version (2 bytes) · operation-id or status-code (2) · request-id (4) · attribute
groups (a delimiter tag, then attributes: value tag (1) · name length (2) · name · value
length (2) · value; further values of the same attribute have an empty name) · end tag
``03`` · document data. Pure, no I/O: the printer driver posts it to CUPS over HTTP.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

# delimiter tags
OPERATION, JOB, END, PRINTER, UNSUPPORTED_GROUP = 0x01, 0x02, 0x03, 0x04, 0x05
# value tags
UNSUPPORTED, UNKNOWN, NO_VALUE = 0x10, 0x12, 0x13
INTEGER, BOOLEAN, ENUM = 0x21, 0x22, 0x23
OCTET_STRING, DATETIME, RESOLUTION, RANGE, BEG_COLLECTION = 0x30, 0x31, 0x32, 0x33, 0x34
TEXT_LANG, NAME_LANG, END_COLLECTION = 0x35, 0x36, 0x37
TEXT, NAME, KEYWORD, URI, URI_SCHEME, CHARSET, LANGUAGE, MIME = 0x41, 0x42, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49
MEMBER_NAME = 0x4A
STRING_TAGS = {TEXT, NAME, KEYWORD, URI, URI_SCHEME, CHARSET, LANGUAGE, MIME, MEMBER_NAME}

# operations
PRINT_JOB, CANCEL_JOB, GET_JOB_ATTRIBUTES, GET_JOBS, GET_PRINTER_ATTRIBUTES = 0x0002, 0x0008, 0x0009, 0x000A, 0x000B
# status codes
OK = 0x0000
BAD_REQUEST, FORBIDDEN, NOT_FOUND, NOT_POSSIBLE = 0x0400, 0x0401, 0x0406, 0x0404
DOCUMENT_FORMAT_NOT_SUPPORTED = 0x040A
INTERNAL_ERROR, OPERATION_NOT_SUPPORTED, NOT_ACCEPTING = 0x0500, 0x0501, 0x0506
# job-state
PENDING, HELD, PROCESSING, STOPPED, CANCELED, ABORTED, COMPLETED = 3, 4, 5, 6, 7, 8, 9
TERMINAL = {CANCELED, ABORTED, COMPLETED}
# printer-state
IDLE, BUSY, PRINTER_STOPPED = 3, 4, 5

Value = int | bool | str | bytes


class IppError(Exception):
    pass


@dataclass
class Attribute:
    name: str
    tag: int
    values: list[Value]


@dataclass
class Message:
    code: int  # operation-id in a request, status-code in a response
    request_id: int
    groups: list[tuple[int, list[Attribute]]] = field(default_factory=list)
    data: bytes = b""
    version: tuple[int, int] = (1, 1)

    def group(self, tag: int) -> dict[str, list[Value]]:
        """The first group with this tag, as name → values."""
        for group_tag, attributes in self.groups:
            if group_tag == tag:
                return {a.name: a.values for a in attributes}
        return {}

    def groups_of(self, tag: int) -> list[dict[str, list[Value]]]:
        return [{a.name: a.values for a in attributes} for group_tag, attributes in self.groups if group_tag == tag]

    def first(self, tag: int, name: str, default: Any = None) -> Any:
        values = self.group(tag).get(name)
        return values[0] if values else default


def _encode_value(tag: int, value: Value) -> bytes:
    if tag in (INTEGER, ENUM):
        return struct.pack(">i", int(value))
    if tag == BOOLEAN:
        return b"\x01" if value else b"\x00"
    if tag in (NO_VALUE, UNKNOWN, UNSUPPORTED):
        return b""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes):
        return value
    raise IppError(f"cannot encode {value!r} with tag {tag:#x}")


def _decode_value(tag: int, raw: bytes) -> Value:
    if tag in (INTEGER, ENUM):
        if len(raw) != 4:
            raise IppError("integer of wrong length")
        value: int = struct.unpack(">i", raw)[0]
        return value
    if tag == BOOLEAN:
        return raw != b"\x00"
    if tag in STRING_TAGS:
        return raw.decode("utf-8", errors="replace")
    return raw


def encode(message: Message) -> bytes:
    out = bytearray(struct.pack(">BBHI", *message.version, message.code, message.request_id))
    for group_tag, attributes in message.groups:
        out.append(group_tag)
        for attribute in attributes:
            for index, value in enumerate(attribute.values or [b""]):
                name = attribute.name.encode("ascii") if index == 0 else b""
                raw = _encode_value(attribute.tag, value)
                out += struct.pack(">BH", attribute.tag, len(name)) + name + struct.pack(">H", len(raw)) + raw
    out.append(END)
    return bytes(out) + message.data


def decode(data: bytes) -> Message:
    if len(data) < 9:
        raise IppError("message too short")
    major, minor, code, request_id = struct.unpack(">BBHI", data[:8])
    message = Message(code, request_id, version=(major, minor))
    pos = 8
    current: list[Attribute] | None = None
    while pos < len(data):
        tag = data[pos]
        pos += 1
        if tag == END:
            message.data = data[pos:]
            return message
        if tag < 0x10:  # a delimiter: a new group
            current = []
            message.groups.append((tag, current))
            continue
        if current is None or pos + 2 > len(data):
            raise IppError("attribute outside a group")
        (name_len,) = struct.unpack(">H", data[pos:pos + 2])
        name = data[pos + 2:pos + 2 + name_len].decode("ascii", errors="replace")
        pos += 2 + name_len
        if pos + 2 > len(data):
            raise IppError("truncated attribute")
        (value_len,) = struct.unpack(">H", data[pos:pos + 2])
        raw = data[pos + 2:pos + 2 + value_len]
        if len(raw) != value_len:
            raise IppError("truncated value")
        pos += 2 + value_len
        value = _decode_value(tag, raw)
        if name:
            current.append(Attribute(name, tag, [value]))
        elif current:
            current[-1].values.append(value)
        else:
            raise IppError("additional value without an attribute")
    raise IppError("no end-of-attributes tag")


def request(operation: int, request_id: int, printer_uri: str, *extra: Attribute, user: str = "yiwang-agent",
            job: list[Attribute] | None = None, data: bytes = b"") -> Message:
    operation_attributes = [
        Attribute("attributes-charset", CHARSET, ["utf-8"]),
        Attribute("attributes-natural-language", LANGUAGE, ["zh-cn"]),
        Attribute("printer-uri", URI, [printer_uri]),
        Attribute("requesting-user-name", NAME, [user]),
        *extra,
    ]
    groups: list[tuple[int, list[Attribute]]] = [(OPERATION, operation_attributes)]
    if job:
        groups.append((JOB, job))
    return Message(operation, request_id, groups, data)


def response(status: int, request_id: int, *groups: tuple[int, list[Attribute]]) -> Message:
    head = [Attribute("attributes-charset", CHARSET, ["utf-8"]),
            Attribute("attributes-natural-language", LANGUAGE, ["zh-cn"])]
    return Message(status, request_id, [(OPERATION, head), *groups])
