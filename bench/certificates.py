"""Certificate bars, measured in one run:

* redemption throughput vs the raw store operations it needs (one find-and-update
  plus one insert, as a loop of plain PyMongo calls on the same DB)  — bar ≥ 0.5
* SM2 sign ≥ 500/s and verify ≥ 1,000/s on one core
* card render ≤ 50 ms and QR decode of a 1280×720 frame ≤ 20 ms (medians)

    .venv/bin/python -m bench certificates
"""

from __future__ import annotations

import asyncio
import secrets
import statistics
import time
import uuid
from pathlib import Path

from PIL import Image

from yiwang import certificates, crypto, display_codes, qrdecode, rendering, verification
from yiwang.boot import open_services
from yiwang.certificates import Redeemer
from yiwang.config import load_config
from yiwang.embedded import EmbeddedMongo
from yiwang.store import Store

N = 200
FRAME = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "qr" / "screen_angle.jpg"
KIOSK = Redeemer("kiosk", "bench-kiosk", "基准测试终端")


def line(name: str, value: float, unit: str, bar: str, ok: bool) -> None:
    print(f"{name:<44} {value:>10.2f} {unit:<10} bar {bar:<10} {'PASS' if ok else 'FAIL'}", flush=True)


async def store_bench(uri: str) -> None:
    config = load_config(
        {
            "DATA_DIR": "/tmp/yiwang-bench",
            "PII_KEY": secrets.token_hex(16),
            "BLIND_INDEX_KEY": secrets.token_hex(32),
            "COOKIE_SECRET": secrets.token_hex(16),
            "WECHAT_SECRET": secrets.token_hex(16),
            "DEMO_DATA": "0",
        }
    )
    store = Store.connect(uri, "bench_" + secrets.token_hex(4))
    services = await open_services(config, store=store)
    try:
        from tests.fixtures.certs import holder_index, issue

        doc = await issue(services)
        index = holder_index(services)
        codes = [
            (await display_codes.create_display_code(services, index, doc["_id"], "基准测试"))["code"] for _ in range(N)
        ]
        # baseline: the raw operations one redemption needs, plain PyMongo
        raw_codes = services.store["display_codes"]
        copies = services.store["certificate_copies"]
        ids = [uuid.uuid4().hex for _ in range(N)]
        await raw_codes.insert_many([{"_id": i, "status": "active"} for i in ids])
        start = time.perf_counter()
        for i in ids:
            await raw_codes.find_one_and_update({"_id": i, "status": "active"}, {"$set": {"status": "used"}})
            await copies.insert_one({"_id": uuid.uuid4().hex, "certificate_id": "raw", "made_at": time.time()})
        raw_rate = N / (time.perf_counter() - start)
        half = N // 2
        start = time.perf_counter()
        for code in codes[:half]:
            await display_codes.redeem_display_code(services, code, KIOSK)
        sequential = half / (time.perf_counter() - start)
        queue = list(codes[half:])

        async def worker() -> None:
            while queue:
                await display_codes.redeem_display_code(services, queue.pop(), KIOSK)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(8)))
        concurrent = (N - half) / (time.perf_counter() - start)
        print(
            f"raw find-and-update + insert loop: {raw_rate:.0f}/s; "
            f"redemptions one at a time: {sequential:.0f}/s; 8 kiosks at once: {concurrent:.0f}/s"
        )
        line("redemption (one at a time) / raw", sequential / raw_rate, "ratio", "(info)", True)
        line("redemption (8 concurrent) / raw", concurrent / raw_rate, "ratio", "≥ 0.5", concurrent / raw_rate >= 0.5)

        # rendering
        view = certificates.full_view(services.cipher, doc)
        layout = certificates.load_types()[doc["type"]].layout
        text = verification.payload_for(doc)
        t0 = time.perf_counter()
        rendering.card_png(view, layout, text, "仅供办理基准测试使用 2026-11-26")  # fonts, QR mask cached
        print(
            f"first render of a certificate version (segno mask selection): {(time.perf_counter() - t0) * 1000:.0f} ms"
        )
        times = []
        for _ in range(30):
            t0 = time.perf_counter()
            rendering.card_png(view, layout, text, "仅供办理基准测试使用 2026-11-26")
            times.append(time.perf_counter() - t0)
        median = statistics.median(times) * 1000
        line("card render (PNG) median", median, "ms", "≤ 50", median <= 50)
    finally:
        await services.close(close_store=False)
        await store.client.drop_database(store.db.name)
        await store.close()


def crypto_bench() -> None:
    signer = crypto.SM2Signer.generate()
    public = signer.public_key_raw()
    message = crypto.sm3(b"bench")
    count = 500
    start = time.perf_counter()
    for _ in range(count):
        signature = signer.sign(message)
    sign_rate = count / (time.perf_counter() - start)
    start = time.perf_counter()
    for _ in range(count):
        assert crypto.sm2_verify(public, message, signature)
    verify_rate = count / (time.perf_counter() - start)
    line("SM2 sign", sign_rate, "/s", "≥ 500", sign_rate >= 500)
    line("SM2 verify", verify_rate, "/s", "≥ 1000", verify_rate >= 1000)


def decode_bench() -> None:
    frame = Image.open(FRAME)
    frame.load()
    assert frame.size == (1280, 720)
    times = []
    for _ in range(30):
        t0 = time.perf_counter()
        assert qrdecode.decode_texts(frame)
        times.append(time.perf_counter() - t0)
    median = statistics.median(times) * 1000
    line("QR decode 1280×720 photo median", median, "ms", "≤ 20", median <= 20)


def main() -> None:
    embedded = EmbeddedMongo(None)
    uri = embedded.start()
    try:
        asyncio.run(store_bench(uri))
    finally:
        embedded.stop()
    crypto_bench()
    decode_bench()


if __name__ == "__main__":
    main()
