"""QR decoding of what people really produce (fixtures made by another encoder)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from tests.fixtures.make_qr_fixtures import photographed_screen, qr_matrix_image
from yiwang import qrdecode
from yiwang.errors import InvalidInput

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "qr"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_photos_decode(name: str) -> None:
    assert qrdecode.decode_bytes((FIXTURES / name).read_bytes()) == [EXPECTED[name]]


def test_chinese_utf8_payload_comes_back_intact() -> None:
    text = "一网通办：仅供办理社保业务使用"
    assert qrdecode.decode_texts(qr_matrix_image(text.encode("utf-8"), 6)) == [text]


def test_utf8_misread_as_another_charset_is_repaired() -> None:
    text = "仅供办理社保业务使用"
    assert qrdecode.repair_misread(text.encode("utf-8").decode("latin-1")) == text
    assert qrdecode.repair_text(text.encode("gb18030")) == text
    assert qrdecode.repair_misread("plain ascii") == "plain ascii"


def test_nothing_found_is_an_empty_list_and_junk_a_clear_error() -> None:
    assert qrdecode.decode_texts(Image.new("L", (640, 480), 200)) == []
    with pytest.raises(InvalidInput):
        qrdecode.decode_bytes(b"not an image")


async def test_upload_decoding_runs_off_the_loop(services) -> None:
    frame = photographed_screen("YWD1:ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    assert await qrdecode.decode_frame(services, frame) == ["YWD1:ABCDEFGHIJKLMNOPQRSTUVWXYZ"]
