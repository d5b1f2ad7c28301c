"""OFD files of stored certificates and annotated copies (加注件), with their GB/T 36903
metadata; the async entry points run the blocking build through ``services.offload``.

Personal data (decided, docs/certificates.md): the holder's own file carries the
holder's name and full 持证主体代码 in its metadata (the file is theirs, like the
card); an annotated copy's metadata carries only their masked forms, as the
verification QR does; the card face is the same in both.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from yiwang import audit, certificates, departments, identity, verification
from yiwang.errors import InvalidInput, NotFound
from yiwang.ofd import seal, verifier, writer
from yiwang.rendering import annotation_of
from yiwang.timeutil import format_local, utcnow

if TYPE_CHECKING:
    from yiwang.runtime import Services
    from yiwang.store import Document

CONTENT_TYPE = "application/ofd"
CODE_TYPE_LABELS = {"111": "居民身份证", "001": "统一社会信用代码"}


def metadata_for(
    view: Mapping[str, Any],
    *,
    holder_name: str,
    holder_code: str,
    qr_text: str,
    copy: Mapping[str, Any] | None = None,
) -> list[tuple[str, str]]:
    """GB/T 36903 elements, in order, as (CustomData Name, value)."""
    holder = view["holder"]
    meta = [
        ("文件类型", "电子证照加注件" if copy else "电子证照"),
        ("证照标识", view["identifier"]),
        ("证照名称", view["name"]),
        ("证照类型名称", view["type"]["name"]),
        ("证照类型代码", view["type"]["type_code"]),
        ("证照编号", str(view["number"])),
        ("颁发机构", view["issuer"]["name"]),
        ("颁发机构代码", view["issuer"]["credit_code"]),
        ("颁证日期", view["issued_on"]),
        ("有效期起始日期", view["valid_from"]),
        ("有效期截止日期", view["valid_until"] or "长期"),
        ("持证主体", holder_name),
        ("持证主体代码", holder_code),
        ("持证主体代码类型", f"{holder['code_type']} {CODE_TYPE_LABELS.get(holder['code_type'], '')}".strip()),
        ("证照状态", view["status_label"]),
        ("证照状态时间", utcnow().isoformat(timespec="seconds")),
        ("证照版本", f"{int(view['version']):03d}"),
        ("管辖属地", str(view.get("region") or "")),
        ("证照定义机构", view["definer"]["name"]),
        ("证照定义机构代码", view["definer"]["credit_code"]),
        ("核验码", qr_text),
    ]
    if copy is not None:
        meta += [
            ("加注件标识", copy["_id"]),
            ("制作者", str(copy["made_by"]["label"])),
            ("制作事由", str(copy["purpose"])),
            ("制作时间", format_local(copy["made_at"], "%Y-%m-%dT%H:%M:%S%z")),
            ("加注件有效期截止", format_local(copy["valid_until"], "%Y-%m-%dT%H:%M:%S%z")),
            ("加注件水印", str(copy["watermark"])),
        ]
    return meta


async def _request(
    services: Services, doc: Mapping[str, Any], *, copy: Mapping[str, Any] | None
) -> writer.PackageRequest:

    view = certificates.full_view(services.cipher, doc)
    ctype = certificates.load_types().get(doc["type"])
    layout = dict(ctype.layout) if ctype else {}
    qr_text = verification.payload_for(doc)  # the metadata's 核验码; the drawn QR is the verify page's URL
    qr_url = verification.qr_url_for(doc, services.config.public_url, copy["_id"] if copy else None)
    if copy is None:
        holder_code = identity.reveal_number(services.cipher, doc["holder"]).value
        sealed = doc["holder"].get("name_sealed")
        holder_name = services.cipher.open(certificates.NAME_PURPOSE, sealed) if sealed else ""
    else:
        holder_code = doc["holder"]["masked"]
        holder_name = doc["holder"].get("name_masked", "")
    kid, signer = await departments.signer_for(services, doc["issuer"]["code"])
    content = writer.content_for(
        view,
        layout,
        qr_url,
        watermark=copy["watermark"] if copy else None,
        annotation=annotation_of(copy) if copy else None,
    )
    return writer.PackageRequest(
        doc_id=uuid.uuid4().hex,
        title=f"{view['name']}{'（加注件）' if copy else ''}",
        author=doc["issuer"]["name"],
        content=content,
        metadata=metadata_for(view, holder_name=holder_name, holder_code=holder_code, qr_text=qr_text, copy=copy),
        issuer=seal.Issuer(doc["issuer"]["code"], doc["issuer"]["name"], doc["issuer"]["credit_code"]),
        kid=kid,
        signer=signer,
        created_at=dt.datetime.now(dt.UTC),
    )


async def certificate_ofd(services: Services, doc: Document) -> bytes:
    """The OFD of one stored certificate version (the holder's own file)."""
    return await services.offload.run(writer.build_package, await _request(services, doc, copy=None))


async def copy_ofd(services: Services, copy: Document, doc: Document) -> bytes:
    """The OFD of one annotated copy, with its watermark and annotation."""
    return await services.offload.run(writer.build_package, await _request(services, doc, copy=copy))


async def holder_file(services: Services, holder_index: str, certificate_id: str, actor: audit.Actor) -> bytes:
    """The holder downloads their own certificate as OFD (audited)."""
    doc = await certificates.holder_certificate(services.store, holder_index, certificate_id)
    data = await certificate_ofd(services, doc)
    await audit.record(
        services.store,
        actor,
        "certificate.download",
        doc["_id"],
        channel="mobile",
        purpose="本人下载",
        detail={"format": "ofd"},
    )
    return data


def filename_for(doc: Mapping[str, Any]) -> str:
    return f"{doc['identifier']}.ofd"


def masked_report(report: dict[str, Any]) -> dict[str, Any]:
    """The report as shown to whoever uploaded the file: the holder's name, code and the
    certificate number masked (the page may be seen by others than the holder)."""
    metadata = dict(report.get("metadata") or {})
    if metadata.get("持证主体"):
        metadata["持证主体"] = identity.mask_name(metadata["持证主体"])
    for name in ("持证主体代码", "证照编号"):  # a certificate number is often the ID number itself
        value = metadata.get(name)
        if value and "*" not in value:
            metadata[name] = identity.mask_number(value)
    metadata.pop("核验码", None)  # long and already checked
    return {**report, "metadata": metadata}


async def check_file(services: Services, data: bytes) -> dict[str, Any]:
    """``POST /api/verify/v1/file``: the offline checks plus the live status; the file is not kept."""

    keys = await verification.published_keys_document(services)
    report = await services.offload.run(verifier.verify_file, data, keys)
    live: dict[str, Any] = {"status": "not_checked", "status_label": "文件签名无效，未查询", "valid": False}
    identifier = report["metadata"].get("证照标识")
    if report.get("signed") and report["signature"]["valid"] and identifier:
        live = {"status": "unknown", "status_label": "未在证照库中找到", "valid": False}
        try:
            doc = await certificates.get_by_identifier(services.store, identifier)
        except (InvalidInput, NotFound):
            doc = None
        if doc is not None:
            summary = certificates.summary(doc)
            live = {
                "status": summary["status"],
                "status_label": summary["status_label"],
                "valid": summary["status"] == "valid",
                "superseded_by": doc.get("superseded_by") if doc.get("status") == "superseded" else None,
            }
            await certificates.record_access(
                services.store, doc, verification.PUBLIC, "verify", channel="public", purpose="核验 OFD 文件"
            )
    report = masked_report(report)
    report["live"] = live
    report["checked_at"] = utcnow()
    report["file_valid"] = bool(report["valid"])  # the offline checks alone
    report["valid"] = report["file_valid"] and live["valid"]
    return report
