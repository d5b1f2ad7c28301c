"""QR decoding of camera frames: pyzbar alone (the baseline), zxing-cpp alone, and the
agent's combination (zxing-cpp first, zbar as the fallback), on the camera-like set in
tests/fixtures/camera/ (1280×720 JPEG). Prints decode counts and the median ms per frame.

    python -m bench qr [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from PIL import Image

import qrscan

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "camera"
RUNS = {"pyzbar alone": ("zbar",), "zxing-cpp alone": ("zxing",), "combined (agent)": ("zxing", "zbar")}
TARGET_MS = 15.0


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.qr")
    parser.add_argument("--rounds", type=int, default=3, help="timed passes over the set (median of all)")
    args = parser.parse_args()
    expected: dict[str, str] = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
    frames = {name: Image.open(FIXTURES / name).convert("L") for name in expected}
    assert all(f.size == (1280, 720) for f in frames.values())
    print(f"{len(frames)} camera-like frames (1280×720), {args.rounds} rounds; target median ≤ {TARGET_MS:.0f} ms")
    baseline_ms = 0.0
    for label, engines in RUNS.items():
        decoded = sum(qrscan.decode_texts(frames[n], engines) == [t] for n, t in expected.items())
        times: list[float] = []
        for _ in range(args.rounds):
            for frame in frames.values():
                start = time.perf_counter()
                qrscan.decode_texts(frame, engines)
                times.append((time.perf_counter() - start) * 1000)
        median = statistics.median(times)
        baseline_ms = baseline_ms or median
        print(f"  {label:18} decoded {decoded:2}/{len(frames)}   median {median:6.1f} ms/frame   "
              f"p90 {statistics.quantiles(times, n=10)[-1]:6.1f} ms   ×{median / baseline_ms:.2f} of baseline")


if __name__ == "__main__":
    main()
