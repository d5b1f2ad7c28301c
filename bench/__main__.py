"""Run benchmarks: `python -m bench` (all, default settings) or
`python -m bench NAME [options…]` (one, with its own options, e.g. `devices --devices 500`).

Each module exposes `main() -> None` and reads its options from `sys.argv`; its docstring's first line
says what it measures (`python -m bench --help` lists them, `python -m bench NAME --help` its options)."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def all_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules([str(HERE)]) if not m.name.startswith("_"))


def summary(name: str) -> str:
    """The first line of a benchmark's docstring, read without importing it (imports start nothing, but cost)."""
    doc = ast.get_docstring(ast.parse((HERE / f"{name}.py").read_text(encoding="utf-8"))) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def usage() -> str:
    lines = [
        "usage: python -m bench [NAME [options…]]",
        "",
        "Runs every benchmark with its defaults, or one with its options (python -m bench NAME --help).",
        "",
        "benchmarks:",
    ]
    lines += [f"  {name:<14} {summary(name)}" for name in all_modules()]
    return "\n".join(lines)


def run_one(name: str, options: list[str]) -> None:
    print(f"== bench.{name}", flush=True)
    sys.argv = [f"bench.{name}", *options]
    importlib.import_module(f"bench.{name}").main()


def main(argv: list[str]) -> int:
    if argv and argv[0] in {"-h", "--help", "help"}:
        print(usage())
        return 0
    if argv:
        if argv[0] not in all_modules():
            print(f"unknown benchmark {argv[0]!r}\n\n{usage()}", file=sys.stderr)
            return 2
        run_one(argv[0], argv[1:])
        return 0
    for module in all_modules():
        run_one(module, [])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
