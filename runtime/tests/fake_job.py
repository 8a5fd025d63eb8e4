"""A job that follows the session contract, for supervisor tests (no SB3: starts fast).

Counts about 50 steps a second; checkpoints (a step.txt file) every
FAKE_CHECKPOINT_SECONDS, on SIGUSR1, and once more at the end or on SIGTERM; reports
progress with each checkpoint and, with FAKE_PROGRESS_SECONDS set, that often too. With
FAKE_EXIT_CODE set it prints a last line and exits with that code at once.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from rlops_runtime.contract import CheckpointRequest, report_progress, save_checkpoint


def main() -> int:
    request = CheckpointRequest().install()
    terminated: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: terminated.append(signum))
    env = os.environ
    resume = env["RLOPS_RESUME_FROM"]
    step = int(Path(resume, "step.txt").read_text()) if resume else 0
    credential = "yes" if env.get("FAKE_CREDENTIAL") else "no"
    print(f"start step={step} resume_from={resume or '-'} extra={env.get('EXTRA', '-')} "
          f"credential={credential}", flush=True)
    if env.get("FAKE_EXIT_CODE"):
        print("fatal: the fake job was told to fail", flush=True)
        return int(env["FAKE_EXIT_CODE"])

    def checkpoint(why: str) -> None:
        save_checkpoint(env["RLOPS_CHECKPOINT_DIR"], step,
                        lambda tmp: (tmp / "step.txt").write_text(str(step)),
                        session=env["RLOPS_SESSION_ID"])
        report_progress(env["RLOPS_PROGRESS_FILE"], step=step, episodes=step // 10,
                        mean_return=float(step))
        print(f"checkpoint {step} ({why})", flush=True)

    total = int(env["RLOPS_TOTAL_TIMESTEPS"])
    every = float(env.get("FAKE_CHECKPOINT_SECONDS", "0.2"))
    report_every = float(env.get("FAKE_PROGRESS_SECONDS") or "inf")
    last = last_report = time.monotonic()
    while step < total and not terminated:
        time.sleep(0.02)
        step += 1
        if request.pending:
            request.clear()
            checkpoint("requested")
        elif time.monotonic() - last >= every:
            checkpoint("interval")
            last = time.monotonic()
        elif time.monotonic() - last_report >= report_every:
            report_progress(env["RLOPS_PROGRESS_FILE"], step=step)
            last_report = time.monotonic()
    checkpoint("sigterm" if terminated else "final")
    return 0


if __name__ == "__main__":
    sys.exit(main())
