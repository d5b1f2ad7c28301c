"""Run ``server.py`` under cProfile counting CPU time (not wall time, which a busy machine inflates):
``python -m bench._profile OUT.prof`` (the server's own environment applies); the profile is written on exit."""

from __future__ import annotations

import cProfile
import sys
import time
from pathlib import Path


def main() -> None:
    out = sys.argv[1]
    sys.argv = ["server.py"]
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import server

    profiler = cProfile.Profile(time.process_time)
    try:
        profiler.runcall(server.main)
    finally:
        profiler.dump_stats(out)


if __name__ == "__main__":
    main()
