"""Offline verification of an OFD e-certificate file.

    python -m yiwang.ofd verify FILE --keys keys.json

``keys.json`` is the JSON of ``GET /api/verify/v1/keys`` saved beforehand. Prints
the report as JSON; exit status 0 if the file is valid, 1 if it is not, 2 if it
cannot be read at all.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from yiwang.errors import YiwangError


def dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, default=lambda v: getattr(v, "isoformat", v.__str__)())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m yiwang.ofd", description="Verify OFD e-certificate files (GB/T 36905) offline."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser(
        "verify",
        help="check the seal, the signature over every part, the issuer key and the metadata",
        description="Check an OFD file against the published department keys, without any network access.",
    )
    verify.add_argument("file", type=Path, help="the .ofd file")
    verify.add_argument(
        "--keys", type=Path, required=True, help="the JSON of GET /api/verify/v1/keys, saved to a file"
    )
    args = parser.parse_args(argv)
    from yiwang.ofd import verifier

    try:
        keys = json.loads(args.keys.read_text(encoding="utf-8"))
        report = verifier.verify_file(args.file.read_bytes(), keys)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except YiwangError as exc:
        print(dumps({"valid": False, "error": exc.as_dict()}))
        return 2
    print(dumps(report))
    return 0 if report["valid"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
