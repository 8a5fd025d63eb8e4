"""Time to first checkpoint: `ansible-playbook playbooks/train_new.yml` to a checkpoint.

A (playbook): wall time from launching
    ansible-playbook playbooks/train_new.yml -e rlops_data_root=<fresh tmp>
        -e trainer_venv_root=<--venv-root> -e trainer_checkpoint_interval=2048
  (cwd: the repository, ANSIBLE_CONFIG=ansible.cfg, the default local inventory) until
  the session's status.json has last_checkpoint_step > 0, i.e. the supervisor has seen a
  complete checkpoint. The session is then stopped with playbooks/stop.yml (timed too).
  One warm-up run comes first and is not counted: it builds the shared trainer venv
  (minutes), so the measured runs see a warm venv, as a second session on a host does;
  its session is stopped with `rlops-run stop` (stop.yml takes over a minute, and
  measuring it once is enough).
B (peer): wall time from launching the session's own job command, the reference agent
  `<trainer venv>/bin/python -m rlops_runtime.agents.sb3 train`, by hand with the RLOPS_*
  variables of a fresh session (same interval, env, algo, device), until its first
  checkpoint folder is complete. B is what any launcher must pay (interpreter, torch, SB3,
  env, 2048 steps, the write); A - B is Ansible's share: the controller, the role's tasks,
  the supervisor's start and its poll interval.

The goal is on A: <= 20 s. Runs alternate A/B order; medians are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, RLOPS_RUN, Goal, clean_env, median, read_status, table

GOAL_SECONDS = 20.0
POLL = 0.1


def playbook_cmd(playbook: str, data_root: Path, args: argparse.Namespace) -> list[str]:
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), f"playbooks/{playbook}",
           "-e", f"rlops_data_root={data_root}", "-e", f"trainer_venv_root={args.venv_root}"]
    for extra in args.extra_vars:
        cmd += ["-e", extra]
    return cmd


def ansible_env() -> dict[str, str]:
    return clean_env(ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0")


def error_tail(log: Path, lines: int = 12) -> str:
    text = log.read_text(errors="replace").splitlines()
    errors = [i for i, line in enumerate(text) if "ERROR" in line or "fatal:" in line]
    start = errors[0] if errors else max(0, len(text) - lines)
    return "\n".join(text[start:start + lines])


def session_dirs(data_root: Path) -> list[Path]:
    return sorted(p for p in (data_root / "sessions").glob("*") if p.is_dir())


def first_checkpoint_seen(data_root: Path) -> Path | None:
    for session in session_dirs(data_root):
        if (read_status(session).get("last_checkpoint_step") or 0) > 0:
            return session
    return None


def run_playbook(work: Path, name: str, args: argparse.Namespace, stop_yml: bool = True) -> dict:
    """Launch train_new, time the first checkpoint, stop the session (stop.yml or the CLI)."""
    data_root = work / name
    data_root.mkdir()
    log = work / f"{name}.log"
    result: dict = {"data_root": data_root, "log": log}
    started = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(playbook_cmd("train_new.yml", data_root, args), cwd=REPO,
                                env=ansible_env(), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        deadline = started + args.timeout
        while time.perf_counter() < deadline:
            if "playbook" not in result and proc.poll() is not None:
                result["playbook"] = time.perf_counter() - started
                if proc.returncode != 0:
                    result["error"] = f"train_new.yml exited {proc.returncode}:\n" + \
                        error_tail(log)
                    return result
            session = first_checkpoint_seen(data_root)
            if session is not None:
                result["first_checkpoint"] = time.perf_counter() - started
                result["session"] = session
                break
            time.sleep(POLL)
        else:
            result["error"] = f"no checkpoint within {args.timeout} s; see {log}"
        if proc.wait(args.timeout) != 0:
            result["error"] = f"train_new.yml exited {proc.returncode}:\n" + error_tail(log)
        result.setdefault("playbook", time.perf_counter() - started)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait()
        stop_sessions(work, name, data_root, args, result, stop_yml)
    return result


def stop_sessions(work: Path, name: str, data_root: Path, args: argparse.Namespace,
                  result: dict, stop_yml: bool) -> None:
    """stop.yml for every session the run made; `rlops-run stop` if that leaves one running."""
    for session in session_dirs(data_root) if stop_yml else ():
        log = work / f"{name}-stop.log"
        started = time.perf_counter()
        with open(log, "wb") as out:
            code = subprocess.run(
                playbook_cmd("stop.yml", data_root, args) + ["-e", f"rlops_session={session.name}"],
                cwd=REPO, env=ansible_env(), stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, timeout=args.timeout, check=False,
            ).returncode
        result["stop"] = time.perf_counter() - started
        if code != 0:
            result["stop_error"] = f"stop.yml exited {code}:\n{error_tail(log)}"
    for session in session_dirs(data_root):
        if read_status(session).get("state") in ("starting", "running", "stopping"):
            subprocess.run([RLOPS_RUN, "stop", "--session-dir", str(session), "--timeout", "120"],
                           env=clean_env(), stdout=subprocess.DEVNULL, check=False)


def run_bare(work: Path, name: str, python: str, args: argparse.Namespace) -> float:
    """The reference agent by hand: seconds from launch to its first complete checkpoint."""
    from rlops_runtime.checkpoints import local_steps
    from rlops_runtime.session import SessionLayout

    layout = SessionLayout.for_session(work / name, "bare-20261122t000000z").create()
    env = clean_env(
        RLOPS_SESSION_ID=layout.session_id, RLOPS_SESSION_DIR=str(layout.root),
        RLOPS_CHECKPOINT_DIR=str(layout.checkpoints), RLOPS_RESUME_FROM="",
        RLOPS_TENSORBOARD_DIR=str(layout.tensorboard), RLOPS_LOG_DIR=str(layout.logs),
        RLOPS_PROGRESS_FILE=str(layout.progress), RLOPS_HYPERPARAMETERS=str(layout.hyperparameters),
        RLOPS_ENV_ID="CartPole-v1", RLOPS_ALGO="ppo", RLOPS_TOTAL_TIMESTEPS="100000",
        RLOPS_CHECKPOINT_INTERVAL=str(args.checkpoint_interval), RLOPS_DEVICE="auto",
        RLOPS_SEED="0",
    )
    started = time.perf_counter()
    with open(layout.job_log, "ab") as out:
        proc = subprocess.Popen([python, "-m", "rlops_runtime.agents.sb3", "train"], env=env,
                                cwd=layout.root, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        while not local_steps(layout.checkpoints):
            if proc.poll() is not None or time.perf_counter() - started > args.timeout:
                raise RuntimeError(f"bare agent: no checkpoint; see {layout.job_log}")
            time.sleep(POLL)
        return time.perf_counter() - started
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def trainer_python(session: Path) -> str:
    run = json.loads((session / "config" / "run.json").read_text())
    return run["command"][0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1,
                        help="measured playbook runs (each is followed by stop.yml)")
    parser.add_argument("--bare-repeats", type=int, default=3)
    parser.add_argument("--checkpoint-interval", type=int, default=2048)
    parser.add_argument("--venv-root", default=str(REPO / ".venv" / "trainer-venvs"))
    parser.add_argument("--timeout", type=float, default=1200,
                        help="seconds for one playbook run (the warm-up may build the venv)")
    parser.add_argument("-e", "--extra-vars", action="append", default=[],
                        help="more -e KEY=VALUE for both playbooks")
    args = parser.parse_args()
    args.extra_vars.insert(0, f"trainer_checkpoint_interval={args.checkpoint_interval}")

    with tempfile.TemporaryDirectory(prefix="rlops-bench-ttfc-") as tmp:
        work = Path(tmp)
        print("warm-up: train_new.yml (builds the trainer venv on a first run)",
              file=sys.stderr, flush=True)
        warm = run_playbook(work, "warmup", args, stop_yml=False)
        if "error" in warm:
            print(f"warm-up failed: {warm['error']}")
            print("time to first checkpoint: not measured: train_new.yml failed [missed]")
            return 0
        python = trainer_python(warm["session"])
        print(f"warm-up: first checkpoint after {warm['first_checkpoint']:.1f} s; "
              f"job python {python}",
              file=sys.stderr, flush=True)
        rows, playbook_times, bare_times, problems = [], [], [], []
        runs = max(args.repeats, args.bare_repeats)
        for index in range(runs):
            order = ("playbook", "bare") if index % 2 == 0 else ("bare", "playbook")
            row = {}
            for which in order:
                if which == "playbook" and index < args.repeats:
                    result = run_playbook(work, f"run{index}", args)
                    if "error" in result:
                        problems.append(result["error"])
                        continue
                    if "stop_error" in result:
                        problems.append(result["stop_error"])
                    playbook_times.append(result["first_checkpoint"])
                    row.update(first=result["first_checkpoint"], playbook=result["playbook"],
                               stop=result.get("stop"))
                elif which == "bare" and index < args.bare_repeats:
                    row["bare"] = run_bare(work, f"bare{index}", python, args)
                    bare_times.append(row["bare"])
            rows.append([index, row.get("first", "-"), row.get("playbook", "-"),
                         row.get("bare", "-"), row.get("stop", "-")])
            print(f"repeat {index} done", file=sys.stderr, flush=True)

    print(f"PPO CartPole-v1, checkpoint_interval {args.checkpoint_interval}, local inventory, "
          f"warm venv under {args.venv_root}; load average {os.getloadavg()[0]:.1f}")
    print(table(["repeat", "playbook -> checkpoint s", "playbook exit s",
                 "bare agent -> checkpoint s", "stop.yml s"], rows))
    for problem in problems:
        print(f"problem: {problem}")
    if not playbook_times:
        print("time to first checkpoint: not measured: train_new.yml failed [missed]")
        return 0
    a, b = median(playbook_times), median(bare_times)
    print(f"playbook / bare agent: {a / b:.2f}x; Ansible's share of the wait: "
          f"{(a - b) / a:.0%} ({a - b:.1f} s of {a:.1f} s)")
    print(Goal("time to first checkpoint", a, GOAL_SECONDS, higher_is_better=False,
               unit="s").line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
