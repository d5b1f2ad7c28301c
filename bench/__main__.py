"""Run benchmark modules: `python -m bench` (all) or `python -m bench certificates …`.

Each module exposes `main() -> None`."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def all_modules() -> list[str]:
    here = Path(__file__).resolve().parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))


def run(names: list[str]) -> None:
    for name in names or all_modules():
        print(f"== bench.{name}", flush=True)
        importlib.import_module(f"bench.{name}").main()


if __name__ == "__main__":
    run(sys.argv[1:])
