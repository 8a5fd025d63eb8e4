"""Supervisor overhead: the reference agent under `rlops-run run` vs bare SB3.

A (supervised): `rlops-run run` on a fresh session — file:// storage, checkpoint every
  --checkpoint-interval steps (10000), sync every 10 s — running the reference agent
  `python -m rlops_runtime.agents.sb3 train` (PPO, CartPole-v1, zoo hyperparameters).
B (bare): bench/_bare_sb3.py — the same SB3 PPO with the same hyperparameters, env,
  n_envs, seed, device, one torch thread and TensorBoard logging, no callbacks.

Measure: env-steps/s inside learn(), from what SB3 itself logs to TensorBoard in both
runs: after every rollout (256 steps) a `time/fps` point with its step and wall time.
Inside learn() is where the supervised run pays its overhead — the contract callback on
every step, checkpoints (save, fsync, sha256, rename), progress.json writes, and the
supervisor and its sync thread competing for the two cores and the disk — while process
start, torch import and env/model set-up are the same for both and paid once.

Pairing (default): A and B run at the same time, each on its own core, and the rate of
each is taken over the wall-clock window in which both were inside learn(), so whatever
else the machine does falls on both equally. This machine is shared: run one after the
other, the same configuration varied by up to 2x from one run to the next; side by side,
identical runs stayed within about 10% of each other and A/B mostly within 5%. The
cost of pairing: the supervisor process's own CPU is shared by both runs instead of
charged to A alone, so it is printed separately (as % of one core inside the window);
everything inside the job process counts fully.
--sequential instead runs A and B one after the other, alternating which goes first, each
measured over its own learn() (first to last point): the right mode on an otherwise idle
machine, where it charges the supervisor fully.
Both runs get their own session (setsid), as the job has under the supervisor: with the
kernel's autogroup scheduling a run left in the benchmark's session gets less CPU.

A second view: steps per CPU-second over the same window, the job's and the supervisor's
CPU (sampled from /proc) against the bare run's. It charges the supervisor fully but
misses time spent waiting (fsync stalls); on a loaded machine it moves too (caches).

Each repeat alternates which run starts first (at high load the run started first came
out a few percent ahead), so the default count is even; the goal value is the median of
the per-repeat A/B ratios of steps/s. The process wall times are printed as context (they add the
supervisor's start, the final checkpoint and the final sync).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

from _common import (
    NEW_SESSION,
    CpuTrace,
    Goal,
    clean_env,
    compare,
    median,
    read_status,
    run_pair,
    run_supervised,
    stop_process,
    table,
    write_session,
)

GOAL = 0.97
BARE = Path(__file__).resolve().with_name("_bare_sb3.py")


def run_agent(work: Path, index: int, args: argparse.Namespace) -> dict:
    session_id = f"overhead-{index}"
    session = write_session(
        work / "data", session_id, storage_uri=f"file://{work / 'storage'}",
        total_timesteps=args.steps, checkpoint_interval=args.checkpoint_interval,
        sync_interval=10, algo="ppo", env_id="CartPole-v1",
    )
    started = time.perf_counter()
    run = run_supervised(session)
    wall = time.perf_counter() - started
    state = read_status(session).get("state")
    if run["code"] != 0 or state != "completed":
        raise RuntimeError(f"supervised run {session_id} ended {state!r} (exit {run['code']}); "
                           f"see {session}/logs/job.log")
    return {"tb": session / "tensorboard", "wall": wall, "cpu": [run["job"], run["supervisor"]]}


def run_by_hand(work: Path, index: int, args: argparse.Namespace) -> dict:
    """`--a agent`: the same job command with the environment the supervisor would give it,
    started without the supervisor (the agent's own contract work: the callback,
    checkpoints, progress reports)."""
    from rlops_runtime.session import SessionLayout
    from rlops_runtime.supervisor import RunConfig, job_environment

    session_id = f"byhand-{index}"
    session = write_session(
        work / "data", session_id, storage_uri=f"file://{work / 'storage'}",
        total_timesteps=args.steps, checkpoint_interval=args.checkpoint_interval,
        sync_interval=10, algo="ppo", env_id="CartPole-v1",
    )
    layout = SessionLayout.for_session(work / "data", session_id)
    config = RunConfig.load(layout.run_json)
    started = time.perf_counter()
    with open(layout.job_log, "ab") as out:
        proc = subprocess.Popen(config.command, cwd=session,
                                env=job_environment(clean_env(), layout, config, None),
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=NEW_SESSION)
    try:
        with CpuTrace(lambda: proc.pid) as cpu:
            proc.wait(timeout=600)
    finally:
        stop_process(proc)
    if proc.returncode != 0:
        raise RuntimeError(f"agent by hand exited {proc.returncode}; see {layout.job_log}")
    return {"tb": session / "tensorboard", "wall": time.perf_counter() - started,
            "cpu": [cpu, CpuTrace(lambda: None)]}


def run_bare(work: Path, index: int, args: argparse.Namespace, name: str = "bare") -> dict:
    tb = work / f"{name}-{index}"
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(BARE), "--steps", str(args.steps), "--tensorboard-dir", str(tb)],
        env=clean_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=NEW_SESSION,
    )
    try:
        with CpuTrace(lambda: proc.pid) as cpu:
            _stdout, stderr = proc.communicate(timeout=600)
    finally:
        stop_process(proc)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"bare SB3 failed: {stderr[-2000:]}")
    return {"tb": tb, "wall": wall, "cpu": [cpu]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=4,
                        help="pairs; keep it even: each order (A or B first) runs as often")
    parser.add_argument("--steps", type=int, default=20_000, help="PPO steps per run")
    parser.add_argument("--checkpoint-interval", type=int, default=10_000)
    parser.add_argument("--sequential", action="store_true",
                        help="run A and B one after the other (for an idle machine)")
    parser.add_argument("--a", dest="a", choices=["supervised", "agent", "bare"],
                        default="supervised",
                        help="A: under `rlops-run run` (the measure); the same job command "
                        "started by hand without the supervisor (to tell the agent's own "
                        "contract work from the supervisor's share); or bare SB3 again (an "
                        "A/A run: the pairing's own bias and spread)")
    args = parser.parse_args()
    together = not args.sequential
    run_a = {"supervised": run_agent, "agent": run_by_hand,
             "bare": partial(run_bare, name="bare-a")}[args.a]

    rows, ratios, cpu_ratios = [], [], []
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="rlops-bench-overhead-") as tmp:
        work = Path(tmp)
        for index in range(args.repeats):
            a, b = run_pair(partial(run_a, work, index, args),
                            partial(run_bare, work, index, args),
                            a_first=index % 2 == 0, together=together)
            result = compare(a, b, together)
            ratios.append(result["ratio"])
            cpu_ratios.append(result["cpu_ratio"])
            rows.append([index, "A" if index % 2 == 0 else "B", result["a"], result["b"],
                         result["ratio"], result["window"], result["cpu_ratio"],
                         (result["a_cpu_pct"] + ["-"])[1], a["wall"], b["wall"]])
            load.append(os.getloadavg()[0])
            print(f"repeat {index}: ratio {ratios[-1]:.3f}", file=sys.stderr, flush=True)

    how = "side by side, rates over the common learn() window" if together else \
        "one after the other, rates over each learn()"
    what = {"supervised": "rlops-run run", "agent": "the job command by hand",
            "bare": "bare SB3 (A/A)"}[args.a]
    print(f"A: {what}; "
          f"PPO CartPole-v1, {args.steps} steps per run, checkpoint every "
          f"{args.checkpoint_interval} steps, file:// storage, sync every 10 s; {how}; "
          f"load average {min(load):.1f}..{max(load):.1f} on {os.cpu_count()} cores")
    print(table(
        ["repeat", "first", f"A {args.a} steps/s", "B bare steps/s", "A/B", "window s",
         "A/B per CPU s", "supervisor CPU %", "A wall s", "B wall s"],
        rows,
    ))
    print(f"A/B steps/s over {len(ratios)} repeats: {min(ratios):.3f}..{max(ratios):.3f}; "
          f"steps per CPU-second, A (job + supervisor) / B: median {median(cpu_ratios):.3f}")
    if args.a == "supervised":
        print(Goal("supervisor overhead (steps/s supervised / bare SB3)", median(ratios),
                   GOAL).line())
    else:  # not the measure: no goal line for run_all.py to pick up
        print(f"{what} / bare SB3 (steps/s): median {median(ratios):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
