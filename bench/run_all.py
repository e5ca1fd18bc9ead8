"""`make bench`: every benchmark in turn, each in its own process (own XLA flags, clean timings).

Each prints its table and writes bench/results/<name>.json. Never run in CI.
"""

from __future__ import annotations

import subprocess
import sys
import time

BENCHES = ("bench.bench_decode", "bench.bench_tunix", "bench.bench_train", "bench.bench_agent")


def main(argv: list[str]) -> int:
    chosen = [b for b in BENCHES if not argv or b.split(".")[-1] in argv]
    failed = []
    for mod in chosen:
        print(f"\n=== {mod}", flush=True)
        t = time.perf_counter()
        rc = subprocess.call([sys.executable, "-m", mod])
        print(f"=== {mod}: exit {rc}, {time.perf_counter() - t:.0f} s", flush=True)
        if rc:
            failed.append(mod)
    if failed:
        print("failed: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
