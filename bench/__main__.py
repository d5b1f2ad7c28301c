"""Run benchmarks: `python -m bench` (all, default settings) or
`python -m bench NAME [options…]` (one, with its own options, e.g. `devices --devices 500`).

Each module exposes `main() -> None` and reads its options from `sys.argv`."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def all_modules() -> list[str]:
    here = Path(__file__).resolve().parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))


def run_one(name: str, options: list[str]) -> None:
    print(f"== bench.{name}", flush=True)
    sys.argv = [f"bench.{name}", *options]
    importlib.import_module(f"bench.{name}").main()


if __name__ == "__main__":
    if len(sys.argv) > 1:
        run_one(sys.argv[1], sys.argv[2:])
    else:
        for module in all_modules():
            run_one(module, [])
