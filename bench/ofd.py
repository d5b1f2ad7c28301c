"""OFD e-certificate files, measured in one run:

* generating one sealed OFD (layout, font subset, SM3 digests, one SM2 signature, zip)
  — bar ≤ 50 ms median, printed against the card PNG render of the same certificate
  measured in the same run (the baseline: what a copy cost before OFD existed);
* verifying one OFD offline (unpack, digests, two SM2 verifications, QR core) — reported.

    .venv/bin/python -m bench ofd
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from yiwang import certificates, departments, rendering, verification
from yiwang.crypto import SM2Signer
from yiwang.ofd import seal, verifier, writer

ROUNDS = 30


def line(name: str, value: float, unit: str, bar: str, ok: bool) -> None:
    print(f"{name:<44} {value:>10.2f} {unit:<10} bar {bar:<10} {'PASS' if ok else 'FAIL'}", flush=True)


def median_ms(fn: Callable[[], Any]) -> float:
    fn()  # warm: fonts loaded, QR matrix and department seal cached
    times = []
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def sample() -> tuple[dict[str, Any], dict[str, Any], str, SM2Signer, str]:
    """A signed resident ID card as the store would hold it, without a database."""
    from tests.fixtures.certs import id_card_body

    body = id_card_body()
    ctype = certificates.certificate_type(body["type"])
    dept = departments.department("gz-psb")
    signer = SM2Signer.generate()
    kid = departments.key_id(signer.public_key_raw())
    ident = certificates.Identifier(ctype.type_code, dept.credit_code, "0000000042", 1)
    doc: dict[str, Any] = {
        "identifier": str(ident),
        "holder": {"masked": "440106********3318", "code_type": "111"},
        "fields_digest": certificates.fields_digest(body["fields"]).hex(),
        "issued_on": body["issued_on"],
        "valid_from": body["issued_on"],
        "valid_until": "2040-06-18",
        "signature": {"kid": kid, "value": ""},
    }
    doc["signature"]["value"] = signer.sign(certificates.signing_message(certificates.signed_core(doc))).hex()
    view = {
        "identifier": doc["identifier"],
        "version": 1,
        "name": ctype.name,
        "type": {"code": ctype.code, "type_code": ctype.type_code, "name": ctype.name},
        "issuer": {"code": dept.code, "name": dept.name, "credit_code": dept.credit_code},
        "definer": {"name": ctype.definer_name, "credit_code": ctype.definer_code},
        "issued_on": doc["issued_on"],
        "valid_from": doc["valid_from"],
        "valid_until": doc["valid_until"],
        "region": dept.region,
        "holder": doc["holder"],
        "number": body["number"],
        "status": "valid",
        "status_label": "有效",
        "fields": body["fields"],
        "field_titles": ctype.field_titles(),
        "field_order": ctype.field_order(),
    }
    return doc, view, verification.payload_for(doc), signer, kid


def main() -> None:
    _, view, qr_text, signer, kid = sample()
    ctype = certificates.certificate_type("resident_id_card")
    layout = dict(ctype.layout)
    watermark = "仅供办理基准测试使用 2026-12-02"
    t0 = time.perf_counter()
    from yiwang.ofd import fonts

    fonts.source_font()
    print(f"loading the CJK font for subsetting (once per process): {(time.perf_counter() - t0) * 1000:.0f} ms")
    dept = departments.department("gz-psb")
    issuer = seal.Issuer(dept.code, dept.name, dept.credit_code)

    def build() -> bytes:
        from yiwang.ofd.files import metadata_for

        content = writer.content_for(view, layout, qr_text, watermark=watermark)
        meta = metadata_for(view, holder_name="李明轩", holder_code="440106199406183318", qr_text=qr_text)
        request = writer.PackageRequest(
            "bench", ctype.name, dept.name, content, meta, issuer, kid, signer, dt.datetime.now(dt.UTC)
        )
        return writer.build_package(request)

    baseline = median_ms(lambda: rendering.card_png(view, layout, qr_text, watermark))
    generate = median_ms(build)
    data = build()
    keys = {"keys": [{"kid": kid, "public_key": signer.public_key_raw().hex(), "department": {
        "code": dept.code, "name": dept.name, "credit_code": dept.credit_code}, "status": "active"}]}
    keys = json.loads(json.dumps(keys))
    assert verifier.verify_file(data, keys)["valid"]
    check = median_ms(lambda: verifier.verify_file(data, keys))
    print(f"card PNG render (baseline, same certificate, same run): {baseline:.1f} ms; OFD size {len(data)} bytes")
    line("OFD generation median", generate, "ms", "≤ 50", generate <= 50)
    line("OFD generation / card PNG render", generate / baseline, "ratio", "(info)", True)
    line("OFD verification (offline) median", check, "ms", "(info)", True)


if __name__ == "__main__":
    main()
