"""cProfile of the reference agent's learn(): where the supervised job's time goes.

Runs `rlops_runtime.agents.sb3 train` in this process on a fresh session (PPO
CartPole-v1 by default, no supervisor: the job's own share), under cProfile, and prints
the time spent in learn() and in the parts of it the session contract adds: the contract
callback, checkpoints (save_checkpoint) and progress reports. --top N also prints the N
functions with the most cumulative time. A profile slows Python code (the callback) more
than torch's C++ code (the updates), so the shares are upper bounds.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
from pathlib import Path

from _common import clean_env

# (label, file name suffix, function name) of the contract's parts inside learn().
PARTS = (
    ("learn()", "on_policy_algorithm.py", "learn"),
    ("contract callback _on_step", "sb3.py", "_on_step"),
    ("checkpoints (save_checkpoint)", "contract.py", "save_checkpoint"),
    ("progress reports (Trainer.report)", "sb3.py", "report"),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--checkpoint-interval", type=int, default=10_000)
    parser.add_argument("--algo", default="ppo")
    parser.add_argument("--env-id", default="CartPole-v1")
    parser.add_argument("--top", type=int, default=0, help="also print the top N by cumtime")
    args = parser.parse_args()

    from rlops_runtime.agents import sb3
    from rlops_runtime.session import SessionLayout

    with tempfile.TemporaryDirectory(prefix="rlops-bench-profile-") as tmp:
        layout = SessionLayout.for_session(Path(tmp), "profile-20261206t000000z").create()
        env = clean_env(
            RLOPS_SESSION_ID=layout.session_id, RLOPS_CHECKPOINT_DIR=str(layout.checkpoints),
            RLOPS_TENSORBOARD_DIR=str(layout.tensorboard),
            RLOPS_PROGRESS_FILE=str(layout.progress),
            RLOPS_HYPERPARAMETERS=str(layout.hyperparameters), RLOPS_ENV_ID=args.env_id,
            RLOPS_ALGO=args.algo, RLOPS_TOTAL_TIMESTEPS=str(args.steps),
            RLOPS_CHECKPOINT_INTERVAL=str(args.checkpoint_interval), RLOPS_DEVICE="cpu",
            RLOPS_SEED="0",
        )
        profile = cProfile.Profile()
        profile.enable()
        sb3.train(env)
        profile.disable()
    stats = pstats.Stats(profile)
    found = {}
    items = stats.stats.items()  # type: ignore[attr-defined]
    for (filename, _line, name), (_cc, nc, _tt, ct, _callers) in items:
        for label, suffix, func in PARTS:
            if name == func and filename.endswith(suffix):
                calls, seconds = found.get(label, (0, 0.0))
                found[label] = (calls + nc, seconds + ct)
    learn = found.get("learn()", (0, 0.0))[1]
    print(f"{args.algo} {args.env_id}, {args.steps} steps, checkpoint every "
          f"{args.checkpoint_interval}; load average {os.getloadavg()[0]:.1f}")
    for label, _suffix, _func in PARTS:
        calls, seconds = found.get(label, (0, 0.0))
        share = f"{100 * seconds / learn:5.2f}% of learn()" if learn else ""
        print(f"  {label:36s} {calls:7d} calls {seconds:8.3f} s  {share}")
    if args.top:
        stats.sort_stats("cumulative").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
