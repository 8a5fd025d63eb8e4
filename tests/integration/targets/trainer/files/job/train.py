"""A minimal job that follows the session contract (docs/contract.md) without torch.

It "trains" by counting steps, checkpoints its counter every RLOPS_CHECKPOINT_INTERVAL
steps, resumes from RLOPS_RESUME_FROM, checkpoints on SIGUSR1 and stops on SIGTERM.
Used by runme.sh to run the trainer role with trainer_source=local.
"""

import json
import os
import signal
import sys
import time
from pathlib import Path

import packaging  # from requirements.txt: proves the requirements file was installed
from rlops_runtime.contract import CheckpointRequest, report_progress, save_checkpoint

STEP_SECONDS = float(os.environ.get("JOB_STEP_SECONDS", "0.01"))


def main() -> int:
    checkpoints = Path(os.environ["RLOPS_CHECKPOINT_DIR"])
    total = int(os.environ["RLOPS_TOTAL_TIMESTEPS"])
    interval = int(os.environ["RLOPS_CHECKPOINT_INTERVAL"])
    session = os.environ["RLOPS_SESSION_ID"]
    resume = os.environ.get("RLOPS_RESUME_FROM", "")
    step = json.loads((Path(resume) / "state.json").read_text())["step"] if resume else 0
    print(f"job {session}: starting at step {step} of {total} (packaging {packaging.__version__})")

    request = CheckpointRequest().install()
    stopping = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))

    def checkpoint() -> None:
        save_checkpoint(checkpoints, step,
                        lambda tmp: (tmp / "state.json").write_text(json.dumps({"step": step})),
                        session=session)
        print(f"checkpoint {step}")

    while step < total and not stopping:
        time.sleep(STEP_SECONDS)
        step += 1
        if step % interval == 0 or request.pending:
            request.clear()
            checkpoint()
            report_progress(os.environ["RLOPS_PROGRESS_FILE"], step=step, episodes=0)
    checkpoint()
    print(f"job {session}: {'stopped' if stopping else 'done'} at step {step}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
