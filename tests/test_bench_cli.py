"""`python -m bench --help` lists every benchmark (it used to crash trying to import `bench.--help`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import all_modules

ROOT = Path(__file__).resolve().parent.parent


def bench(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "bench", *args]
    return subprocess.run(command, check=False, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_bench_help_lists_every_benchmark() -> None:
    out = bench("--help")
    assert out.returncode == 0, out.stderr
    for name in all_modules():
        assert f"  {name} " in out.stdout
    assert "embedded" in all_modules()


def test_an_unknown_benchmark_is_refused_with_the_list() -> None:
    out = bench("nope")
    assert out.returncode == 2
    assert "unknown benchmark" in out.stderr and "mobile" in out.stderr


@pytest.mark.slow
def test_the_flat_costs_benchmark_runs_in_its_quick_mode() -> None:
    """A smoke test of ``bench flat`` (issue 15) at a tiny scale: it runs and prints its ratios, nothing more."""
    out = bench("flat", "--quick", "--parts", "growth,cached,cost", timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    for expected in ("ratio at 200 / at 20 applications", "a resident's applications", "console figures",
                     "bare Tornado JSON handler", "published keys", "request log line"):  # fmt: skip
        assert expected in out.stdout, out.stdout
