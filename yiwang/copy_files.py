"""An annotated copy (加注件) as a file, for whoever made it: a PNG or PDF drawn by
``yiwang.rendering``, or a sealed OFD file (``yiwang.ofd``), always off the event loop."""

from __future__ import annotations

from typing import TYPE_CHECKING

from yiwang import certificates, rendering, verification
from yiwang.certificates import Redeemer
from yiwang.errors import InvalidInput
from yiwang.ofd import files as ofd_files

if TYPE_CHECKING:
    from yiwang.runtime import Services


CONTENT_TYPES = {"png": "image/png", "pdf": "application/pdf", "ofd": "application/ofd"}


async def copy_image(services: Services, copy_id: str, redeemer: Redeemer, fmt: str) -> bytes:
    """The annotated copy (加注件) as PNG, PDF or sealed OFD, for whoever made it, off the event loop."""
    if fmt not in CONTENT_TYPES:
        raise InvalidInput("certificate.format_invalid", "格式只能是 png、pdf 或 ofd")
    copy = await certificates.get_copy(services.store, copy_id, redeemer)
    cert = await certificates.get_certificate(services.store, copy["certificate_id"])
    if fmt == "ofd":
        return await ofd_files.copy_ofd(services, copy, cert)
    view = certificates.full_view(services.cipher, cert)
    ctype = certificates.load_types().get(cert["type"])
    layout = dict(ctype.layout) if ctype else {}
    qr_text = verification.qr_url_for(cert, services.config.public_url, copy["_id"])  # opens the verify page
    if fmt == "png":
        return await services.offload.run(rendering.card_png, view, layout, qr_text, copy["watermark"])
    annotation = rendering.annotation_of(copy)
    return await services.offload.run(rendering.print_pdf, view, layout, qr_text, copy["watermark"], annotation)
