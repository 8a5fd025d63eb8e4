"""Run the benchmarks and print the measures of issue 11 in one table (`make bench`).

By default the two scripts that make the four measures run, one after the other:
time_to_first_checkpoint.py (train_new to the first checkpoint / the agent by hand; the
controller's CPU seconds per host; task results of train_new's host plays) and
supervisor_overhead.py (steps/s under the supervisor / bare SB3). `--all` adds
sync_cost.py and crash_safety.py; names given pick scripts. Each script prints its own
table and goal lines; this prints those lines again as one table at the end, with each
script's wall time and the load average around it. Benchmarks report, they never fail
on a missed goal: the exit status is non-zero only when a benchmark itself crashed.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from _common import table

HERE = Path(__file__).resolve().parent
MEASURES = ("time_to_first_checkpoint.py", "supervisor_overhead.py")
OTHERS = ("sync_cost.py", "crash_safety.py")
# `label: value (goal <= 2.5) [met]` (Goal.line) or `label: not measured: why [missed]`
GOAL_LINE = re.compile(r"^(?P<label>[^:]+): (?P<value>.+?) \(goal (?P<goal>[<>]= [^)]+)\) "
                       r"\[(?P<state>met|missed)\]$")
NOT_MEASURED = re.compile(r"^(?P<label>[^:]+): (?P<value>not measured: .+) \[missed\]$")


def goal_rows(output: str, source: str) -> list[list[str]]:
    """One table row per goal line a benchmark printed."""
    rows = []
    for line in output.splitlines():
        match = GOAL_LINE.match(line)
        if match:
            rows.append([match["label"], match["value"], match["goal"],
                         "yes" if match["state"] == "met" else "no", source])
            continue
        match = NOT_MEASURED.match(line)
        if match:
            rows.append([match["label"], match["value"], "-", "no", source])
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("only", nargs="*", help="benchmark file names to run "
                        f"(default: {', '.join(MEASURES)})")
    parser.add_argument("--all", action="store_true", help=f"also {', '.join(OTHERS)}")
    args = parser.parse_args()
    known = MEASURES + OTHERS
    unknown = [name for name in args.only if name not in known]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; known: {', '.join(known)}")
    chosen = args.only or list(MEASURES + (OTHERS if args.all else ()))
    rows, crashed = [], []
    for name in chosen:
        load_before = os.getloadavg()[0]
        print(f"== {name} (load average {load_before:.1f})", flush=True)
        started = time.monotonic()
        proc = subprocess.run([sys.executable, str(HERE / name)], stdout=subprocess.PIPE,
                              text=True, check=False)
        elapsed = time.monotonic() - started
        print(proc.stdout, end="", flush=True)
        source = f"{name}, {elapsed:.0f} s, load {load_before:.1f}..{os.getloadavg()[0]:.1f}"
        rows += goal_rows(proc.stdout, source)
        if proc.returncode != 0:
            crashed.append(f"{name} exited {proc.returncode}")
    print(f"== summary ({os.cpu_count()} cores; informational: goals, not tests)")
    print(table(["measure", "measured", "goal", "holds", "from (script, wall time, load)"],
                rows, left=1))
    for line in crashed:
        print(line)
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
