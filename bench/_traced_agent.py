"""The reference agent plus a step tracer, for crash_safety.py.

Runs `rlops_runtime.agents.sb3 train` unchanged, with one observer: a daemon thread that
overwrites $BENCH_TRACE_FILE every 2 ms with "<first step> <current step> <pid>", where
the first step is `model.num_timesteps` right after the model was built or loaded (the
step a resume continued from) and the current one is `model.num_timesteps` now. The
write is a plain pwrite into the page cache: it survives kill -9 of this process, and it
lets the benchmark know the step at the moment of a kill to within one GIL switch (5 ms),
which progress.json (written every 2 s) cannot.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

from rlops_runtime.agents import sb3

TRACE_PERIOD = 0.002


def _trace(path: str, holder: dict[str, Any]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    while True:
        trainer = holder.get("trainer")
        if trainer is not None:
            line = f"{holder['first']} {int(trainer.model.num_timesteps)} {os.getpid()}"
            os.pwrite(fd, line.ljust(63).encode() + b"\n", 0)
        time.sleep(TRACE_PERIOD)


def main() -> int:
    holder: dict[str, Any] = {}
    setup = sb3.Trainer.setup

    def traced_setup(self: sb3.Trainer) -> int:
        total = setup(self)
        # Read here, before learn() takes a step: the step this run starts from.
        holder["first"] = int(self.model.num_timesteps)
        holder["trainer"] = self
        return total

    sb3.Trainer.setup = traced_setup  # type: ignore[method-assign]
    thread = threading.Thread(
        target=_trace, args=(os.environ["BENCH_TRACE_FILE"], holder), daemon=True
    )
    thread.start()
    return sb3.main(["train"])


if __name__ == "__main__":
    sys.exit(main())
