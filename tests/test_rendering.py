"""Cards and print PDFs: CJK text, true size, the verification QR scans back."""

from __future__ import annotations

import io

from PIL import Image

from tests.fixtures.certs import issue
from yiwang import certificates, qrdecode, rendering, verification


async def test_card_carries_a_scannable_verification_qr(services) -> None:
    doc = await issue(services)
    view = certificates.full_view(services.cipher, doc)
    text = verification.payload_for(doc)
    png = await services.offload.run(
        rendering.card_png,
        view,
        certificates.load_types()["resident_id_card"].layout,
        text,
        "仅供办理社保使用 2026-11-26",
    )
    card = Image.open(io.BytesIO(png))
    assert card.size == rendering.CARD_PX == (1011, 638)
    assert round(card.info["dpi"][0]) == 300
    assert qrdecode.decode_texts(card) == [text]
    card.save(rendering_artifact("card-resident-id.png"))


async def test_every_type_renders(services) -> None:
    await certificates.load_demo_certificates(services)
    seen = set()
    async for doc in services.store["certificates"].find({}):
        if doc["type"] in seen:
            continue
        seen.add(doc["type"])
        view = certificates.full_view(services.cipher, doc)
        layout = certificates.load_types()[doc["type"]].layout
        image = await services.offload.run(
            rendering.render_card, view, layout, verification.payload_for(doc), "仅供核验"
        )
        assert image.size == rendering.CARD_PX
    assert len(seen) >= 10


async def test_print_pdf_is_a4_with_the_card_at_true_size(services) -> None:
    doc = await issue(services)
    view = certificates.full_view(services.cipher, doc)
    annotation = {
        "制作时间": "2026-11-26 10:00",
        "制作者": "窗口",
        "制作事由": "社保",
        "有效期截止": "2026-12-26 10:00",
    }
    pdf = rendering.print_pdf(view, {}, verification.payload_for(doc), "仅供办理社保使用", annotation)
    assert pdf.startswith(b"%PDF")
    assert b"/MediaBox [ 0 0 595.2 841.92 ]" in pdf or b"595" in pdf  # A4 in points at 300 dpi
    # 85.6 mm at 300 dpi = 1011 px: the card is pasted 1:1 on a 2480 px wide page
    assert rendering.A4_PX == (2480, 3508) and rendering.CARD_PX[0] == 1011


def rendering_artifact(name: str) -> str:
    from tests.support.browser import ARTIFACTS

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return str(ARTIFACTS / name)
