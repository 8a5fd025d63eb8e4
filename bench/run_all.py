"""Run every benchmark with its defaults, one after the other (`make bench`).

Each benchmark prints its own table and one goal line per goal; this prints the goal
lines again at the end, with each benchmark's wall time. Benchmarks report, they never
fail on a missed goal: the exit status is non-zero only when a benchmark itself crashed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = (
    "supervisor_overhead.py",
    "sync_cost.py",
    "crash_safety.py",
    "time_to_first_checkpoint.py",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("only", nargs="*", help="benchmark file names to run (default: all)")
    args = parser.parse_args()
    chosen = [name for name in BENCHMARKS if not args.only or name in args.only]
    summary, crashed = [], []
    for name in chosen:
        print(f"== {name} (load average {os.getloadavg()[0]:.1f})", flush=True)
        started = time.monotonic()
        proc = subprocess.run([sys.executable, str(HERE / name)], stdout=subprocess.PIPE,
                              text=True, check=False)
        elapsed = time.monotonic() - started
        print(proc.stdout, end="", flush=True)
        goals = [line for line in proc.stdout.splitlines()
                 if line.endswith(("[met]", "[missed]"))]
        summary += [f"{line}  ({name}, {elapsed:.0f} s)" for line in goals]
        if proc.returncode != 0:
            crashed.append(f"{name} exited {proc.returncode}")
    print("== summary")
    for line in summary + crashed:
        print(line)
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
