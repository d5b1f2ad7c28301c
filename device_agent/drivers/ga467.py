"""GA 467 (居民身份证阅读器 SAM) serial protocol: frames and the card's text block. Pure, no I/O.

Host → reader: ``AA AA AA 96 69`` · LEN (2 bytes, big-endian: the bytes after it) ·
CMD · PARA · data · CHK. Reader → host: ``AA AA AA 96 69`` · LEN · SW1 SW2 SW3 ·
data · CHK. CHK is the XOR of every byte from LEN to the last data byte.

The base message (``30 01``) answers ``SW3 = 90`` with: text length (2 bytes, BE) ·
photo length (2 bytes, BE) · text (256 bytes, UCS-2 little-endian) · photo (1024
bytes, WLT: compressed and licensed; only the vendor's library turns it into a
bitmap, so it stays opaque bytes here, see ``AGENT_WLT_DECODER``).

The text block's layout depends on the card type (byte 248 of the text): a space
for the resident ID card (居民身份证), ``I`` for the foreign permanent residence card
(外国人永久居留身份证), ``J`` for the Hong Kong/Macau/Taiwan residence permit
(港澳台居民居住证), ``Y`` for the 2023 foreign permanent residence card.
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass, field

PREAMBLE = b"\xaa\xaa\xaa\x96\x69"
MAX_LENGTH = 0x0F00  # a base message with fingerprint is ~2.3 KB; longer is garbage

# commands (CMD, PARA)
FIND_CARD = (0x20, 0x01)
SELECT_CARD = (0x20, 0x02)
READ_BASE = (0x30, 0x01)
READ_SAM_ID = (0x12, 0xFF)

# SW3 status codes
OK = 0x90
FIND_OK = 0x9F
NO_CARD = 0x80
SELECT_FAILED = 0x81
READ_FAILED = 0x41
BAD_CHECKSUM = 0x10
BAD_LENGTH = 0x11
BAD_COMMAND = 0x21
UNKNOWN_CARD = 0x40
STATUS_TEXT = {
    OK: "操作成功", FIND_OK: "找卡成功", NO_CARD: "找卡失败", SELECT_FAILED: "选卡失败", READ_FAILED: "读卡失败",
    BAD_CHECKSUM: "校验和错", BAD_LENGTH: "长度错", BAD_COMMAND: "命令错", UNKNOWN_CARD: "无法识别的卡类型",
    0x31: "卡认证机具失败", 0x32: "机具认证卡失败", 0x33: "信息验证错误", 0x60: "SAM 自检失败", 0x66: "SAM 未经授权",
}

TEXT_BYTES = 256
PHOTO_BYTES = 1024
CARD_TYPE_OFFSET = 248

RESIDENT = "resident"  # 居民身份证
FOREIGN_PERMANENT = "foreign_permanent"  # 外国人永久居留身份证
HMT_RESIDENCE = "hmt_residence"  # 港澳台居民居住证
CARD_TYPES = {" ": RESIDENT, "\x00": RESIDENT, "I": FOREIGN_PERMANENT, "Y": FOREIGN_PERMANENT, "J": HMT_RESIDENCE}
CARD_TYPE_MARK = {RESIDENT: " ", FOREIGN_PERMANENT: "I", HMT_RESIDENCE: "J"}

# (field, bytes) in order, per card type
LAYOUTS: dict[str, tuple[tuple[str, int], ...]] = {
    RESIDENT: (("name", 30), ("sex", 2), ("nation", 4), ("birth", 16), ("address", 70), ("id_number", 36),
               ("authority", 30), ("valid_from", 16), ("valid_until", 16), ("_reserved", 36)),
    FOREIGN_PERMANENT: (("name_en", 120), ("sex", 2), ("id_number", 30), ("nationality", 6), ("name", 30),
                        ("valid_from", 16), ("valid_until", 16), ("birth", 16), ("version", 4), ("authority", 8),
                        ("card_type", 2), ("_reserved", 6)),
    HMT_RESIDENCE: (("name", 30), ("sex", 2), ("_reserved1", 4), ("birth", 16), ("address", 70), ("id_number", 36),
                    ("authority", 30), ("valid_from", 16), ("valid_until", 16), ("pass_number", 18),
                    ("issue_count", 4), ("_reserved2", 6), ("card_type", 2), ("_reserved3", 6)),
}
SEX = {"0": "未知", "1": "男", "2": "女", "9": "未说明"}
NATIONS = ("汉", "蒙古", "回", "藏", "维吾尔", "苗", "彝", "壮", "布依", "朝鲜", "满", "侗", "瑶", "白", "土家", "哈尼",
           "哈萨克", "傣", "黎", "傈僳", "佤", "畲", "高山", "拉祜", "水", "东乡", "纳西", "景颇", "柯尔克孜", "土",
           "达斡尔", "仫佬", "羌", "布朗", "撒拉", "毛南", "仡佬", "锡伯", "阿昌", "普米", "塔吉克", "怒", "乌孜别克",
           "俄罗斯", "鄂温克", "德昂", "保安", "裕固", "京", "塔塔尔", "独龙", "鄂伦春", "赫哲", "门巴", "珞巴", "基诺")


class ProtocolError(Exception):
    """A frame that cannot be trusted (bad preamble, length or check byte)."""


class ReaderError(Exception):
    """The reader answered with a failure status."""

    def __init__(self, status: int) -> None:
        super().__init__(f"SW3={status:02X} {STATUS_TEXT.get(status, '未知状态')}")
        self.status = status


def check_byte(body: bytes) -> int:
    return functools.reduce(operator.xor, body, 0)


def command_frame(command: tuple[int, int], data: bytes = b"") -> bytes:
    payload = bytes(command) + data
    body = (len(payload) + 1).to_bytes(2, "big") + payload
    return PREAMBLE + body + bytes([check_byte(body)])


def response_frame(status: int, data: bytes = b"", sw1: int = 0, sw2: int = 0) -> bytes:
    payload = bytes([sw1, sw2, status]) + data
    body = (len(payload) + 1).to_bytes(2, "big") + payload
    return PREAMBLE + body + bytes([check_byte(body)])


def parse_command(body: bytes) -> tuple[int, int, bytes]:
    """LEN … CHK of a command (after the preamble) → (CMD, PARA, data), checked."""
    if len(body) < 5:
        raise ProtocolError("command too short")
    length = int.from_bytes(body[:2], "big")
    if length != len(body) - 2:
        raise ProtocolError("length does not match")
    if check_byte(body[:-1]) != body[-1]:
        raise ProtocolError("check byte does not match")
    return body[2], body[3], body[4:-1]


def parse_response(body: bytes) -> tuple[int, bytes]:
    """LEN … CHK of a response → (SW3, data)."""
    if len(body) < 6:
        raise ProtocolError("response too short")
    length = int.from_bytes(body[:2], "big")
    if length != len(body) - 2:
        raise ProtocolError("length does not match")
    if check_byte(body[:-1]) != body[-1]:
        raise ProtocolError("check byte does not match")
    return body[4], body[5:-1]


@dataclass(frozen=True)
class CardData:
    """Everything the base message holds. ``repr`` never shows personal data."""

    card_type: str
    name: str
    id_number: str
    sex: str = ""
    nation: str = ""
    birth: str = ""
    address: str = ""
    authority: str = ""
    valid_from: str = ""
    valid_until: str = ""
    extra: dict[str, str] = field(default_factory=dict)  # name_en, nationality, pass_number, issue_count …
    photo_wlt: bytes = b""

    def __repr__(self) -> str:
        return f"CardData({self.card_type}, …)"


def card_type_of(text: bytes) -> str:
    if len(text) < CARD_TYPE_OFFSET + 2:
        raise ProtocolError("text block too short")
    mark = text[CARD_TYPE_OFFSET:CARD_TYPE_OFFSET + 2].decode("utf-16-le", errors="replace")
    try:
        return CARD_TYPES[mark]
    except KeyError:
        raise ReaderError(UNKNOWN_CARD) from None


def parse_text(text: bytes, photo: bytes = b"") -> CardData:
    """The 256-byte UCS-2 text block → CardData, by card type."""
    card_type = card_type_of(text)
    fields: dict[str, str] = {}
    offset = 0
    for name, size in LAYOUTS[card_type]:
        fields[name] = text[offset:offset + size].decode("utf-16-le", errors="replace").rstrip(" \x00")
        offset += size
    sex = SEX.get(fields.pop("sex", ""), "")
    nation_code = fields.pop("nation", "")
    nation = NATIONS[int(nation_code) - 1] if nation_code.isdigit() and 0 < int(nation_code) <= len(NATIONS) else ""
    main = {k: fields.pop(k, "") for k in ("name", "id_number", "birth", "address", "authority", "valid_from",
                                          "valid_until")}
    extra = {k: v for k, v in fields.items() if not k.startswith("_") and k != "card_type" and v}
    if card_type == FOREIGN_PERMANENT and not main["name"]:
        main["name"] = extra.get("name_en", "")
    return CardData(card_type=card_type, sex=sex, nation=nation, extra=extra, photo_wlt=photo, **main)


def parse_base_message(data: bytes) -> CardData:
    """The data of a successful ``30 01`` answer → CardData."""
    if len(data) < 4:
        raise ProtocolError("base message too short")
    text_len = int.from_bytes(data[0:2], "big")
    photo_len = int.from_bytes(data[2:4], "big")
    if text_len < TEXT_BYTES or len(data) < 4 + text_len + photo_len:
        raise ProtocolError("base message lengths do not match")
    text = data[4:4 + text_len]
    photo = data[4 + text_len:4 + text_len + photo_len]
    return parse_text(text, photo)


def encode_text(card: dict[str, str], card_type: str = RESIDENT) -> bytes:
    """A card (JSON-like dict: name, sex "1"/"2", nation "01", birth, address, id_number, …) → the
    256-byte text block a reader returns. Used by the development reader and tests."""
    values = dict(card)
    out = b""
    for name, size in LAYOUTS[card_type]:
        value = CARD_TYPE_MARK[card_type] if name == "card_type" else values.get(name, "")
        encoded = value.encode("utf-16-le")[:size]
        out += encoded + " ".encode("utf-16-le") * ((size - len(encoded)) // 2)
    assert len(out) == TEXT_BYTES
    return out


def base_message(text: bytes, photo: bytes) -> bytes:
    return len(text).to_bytes(2, "big") + len(photo).to_bytes(2, "big") + text + photo
