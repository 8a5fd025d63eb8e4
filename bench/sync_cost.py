"""Sync cost: the reference agent with checkpoints synced to S3 every 2 s vs sync off.

Both runs: `rlops-run run` on a fresh session, the reference agent (PPO, CartPole-v1, zoo
hyperparameters), a checkpoint about every 2 s, storage an S3 bucket on a moto server on
127.0.0.1.
A (sync on): sync_interval 2 — the supervisor's background thread verifies and publishes
  each new checkpoint (files, manifest, LATEST) and copies TensorBoard events, logs,
  progress and status to S3 every 2 s while the job trains.
B (sync off): sync_interval 1e9 — the runtime has no switch to disable sync, but its
  thread then syncs once as it starts (before the job exists) and the supervisor once
  after the job has ended, so nothing is synced while learn() runs.

"About every 2 s": a short warm-up run (sync off, not counted) measures this machine's
steps/s and --checkpoint-interval is set to --checkpoint-seconds of steps; the achieved
seconds per checkpoint are printed.

Measure, as in supervisor_overhead.py (read its docstring for why): env-steps/s inside
learn() from the `time/fps` points SB3 logs to TensorBoard. By default A and B run side
by side, one per core, each in its own session, and both rates are taken over the window
in which both were inside learn(), which cancels the load of a shared machine; the moto
server's and the supervisors' CPU then fall on both runs alike (moto stands in for a
remote S3, whose CPU a real host never pays), so they are printed: the supervisor's own
CPU (its sync thread included) in the window as % of one core, and moto's CPU seconds
per pair.
--sequential runs them one after the other (alternating the order), each measured over
its own learn(). As a second view: steps per CPU-second of
job + supervisor, A against B (moto's CPU not counted). "published in training" counts
the publishes A's supervisor logged before its job logged its end: proof that A synced.
A repeat in which A published nothing while training measured no sync, so it is left out
of the goal (and its supervisor.log printed): that happens when one upload stalls the
sync thread, see the notes in bench/README.md.
Each repeat alternates which run starts first (at high load the run started first came
out a few percent ahead), so the default count is even; the goal value is the median of
the per-repeat A/B ratios.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime
from functools import partial
from pathlib import Path

from _common import (
    Goal,
    compare,
    create_bucket,
    learn_fps,
    median,
    moto_server,
    own_cpu_seconds,
    read_status,
    run_pair,
    run_supervised,
    s3_env,
    table,
    write_session,
)

GOAL = 0.95
SYNC_ON = 2
SYNC_OFF = 1e9
N_ENVS = 8  # ppo.json, CartPole-v1
BUCKET = "rlops-bench"


def log_time(line: str) -> datetime | None:
    try:
        return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
    except ValueError:
        return None


def published_while_training(session: Path) -> int:
    """Publishes logged by the supervisor before the job logged that it was done."""
    logs = session / "logs"
    done = [log_time(line) for line in (logs / "job.log").read_text().splitlines()
            if " done at step " in line]
    if not done or done[-1] is None:
        return 0
    return sum(
        1 for line in (logs / "supervisor.log").read_text().splitlines()
        if "published checkpoint" in line and (log_time(line) or done[-1]) < done[-1]
    )


def run(work: Path, name: str, env: dict, steps: int, interval: int,
        sync_interval: float) -> dict:
    session = write_session(
        work / "data", name, storage_uri=f"s3://{BUCKET}/sessions", total_timesteps=steps,
        checkpoint_interval=interval, sync_interval=sync_interval, algo="ppo",
        env_id="CartPole-v1",
    )
    started = time.perf_counter()
    result = run_supervised(session, **env)
    wall = time.perf_counter() - started
    status = read_status(session)
    if result["code"] != 0 or status.get("state") != "completed":
        raise RuntimeError(f"run {name} ended {status.get('state')!r} (exit {result['code']}); "
                           f"see {session}/logs")
    synced = published_while_training(session)
    notes = []
    if sync_interval == SYNC_ON and not synced:  # keep the evidence: tmp goes away
        notes = [f"{name}: nothing published while training; supervisor.log:"] + [
            f"  {line}" for line in (session / "logs" / "supervisor.log").read_text().splitlines()
        ]
    return {"tb": session / "tensorboard", "wall": wall, "synced": synced, "notes": notes,
            "cpu": [result["job"], result["supervisor"]]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=4,
                        help="pairs; keep it even: each order (A or B first) runs as often")
    parser.add_argument("--steps", type=int, default=24_000, help="PPO steps per run")
    parser.add_argument("--checkpoint-interval", type=int, default=0,
                        help="steps between checkpoints; 0: about --checkpoint-seconds")
    parser.add_argument("--checkpoint-seconds", type=float, default=2.0)
    parser.add_argument("--sequential", action="store_true",
                        help="run A and B one after the other (for an idle machine)")
    args = parser.parse_args()
    together = not args.sequential

    rows, ratios, cpu_ratios, notes = [], [], [], []
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="rlops-bench-sync-") as tmp, \
            moto_server() as (endpoint, moto_pid):
        work = Path(tmp)
        env = s3_env(endpoint)
        create_bucket(endpoint, BUCKET)
        interval = args.checkpoint_interval
        if not interval:
            warm = run(work, "sync-warmup", env, 10_000, 10**9, SYNC_OFF)
            fps = learn_fps(warm["tb"])
            interval = max(N_ENVS, round(fps * args.checkpoint_seconds / N_ENVS) * N_ENVS)
            print(f"warm-up: {fps:,.0f} steps/s -> checkpoint every {interval} steps",
                  file=sys.stderr, flush=True)
        for index in range(args.repeats):
            moto_before = own_cpu_seconds(moto_pid) or 0.0
            on, off = run_pair(
                partial(run, work, f"sync-on-{index}", env, args.steps, interval, SYNC_ON),
                partial(run, work, f"sync-off-{index}", env, args.steps, interval, SYNC_OFF),
                a_first=index % 2 == 0, together=together,
            )
            moto_cpu = (own_cpu_seconds(moto_pid) or 0.0) - moto_before
            result = compare(on, off, together)
            if on["synced"]:  # else A measured no sync at all: see the notes
                ratios.append(result["ratio"])
                cpu_ratios.append(result["cpu_ratio"])
            rows.append([
                index, "on" if index % 2 == 0 else "off", result["a"], result["b"],
                result["ratio"], result["window"], result["cpu_ratio"], interval / result["a"],
                on["synced"], off["synced"], result["a_cpu_pct"][1], result["b_cpu_pct"][1],
                moto_cpu,
            ])
            notes += on["notes"]
            load.append(os.getloadavg()[0])
            print(f"repeat {index}: ratio {ratios[-1]:.3f}", file=sys.stderr, flush=True)

    how = "side by side, rates over the common learn() window" if together else \
        "one after the other, rates over each learn()"
    print(f"PPO CartPole-v1, {args.steps} steps per run, checkpoint every {interval} steps, "
          f"S3 on moto (127.0.0.1), sync every {SYNC_ON} s (A) vs off (B); {how}; "
          f"load average {min(load):.1f}..{max(load):.1f} on {os.cpu_count()} cores")
    print(table(
        ["repeat", "first", "A on steps/s", "B off steps/s", "A/B", "window s",
         "A/B per CPU s", "s/checkpoint", "A published in training", "B", "A sup CPU %",
         "B sup CPU %", "moto CPU s"],
        rows,
    ))
    for note in notes:
        print(note)
    if not ratios:
        print("sync cost: not measured: A published nothing while training [missed]")
        return 0
    excluded = len(rows) - len(ratios)
    print(f"A/B steps/s over {len(ratios)} repeats: {min(ratios):.3f}..{max(ratios):.3f}"
          + (f" ({excluded} left out: A published nothing while training)" if excluded else "")
          + f"; steps per CPU-second, A (job + supervisor) / B (job + supervisor): median "
          f"{median(cpu_ratios):.3f} (moto's CPU not counted)")
    print(Goal("sync cost", median(ratios), GOAL).line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
