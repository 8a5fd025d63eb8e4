"""Time to first checkpoint, controller CPU and tasks of one `train_new.yml` on this machine.

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
  the supervisor's start and how soon it sees the checkpoint. The runtime's part of it is
  printed too: from the supervisor's `running` line in logs/supervisor.log (the job just
  started) to the checkpoint in status.json, next to B.

Three measures of issue 11 come from the same playbook runs (medians over --repeats):
- time to first checkpoint: A / B, goal <= 2.5 (B a median of --bare-repeats);
- controller CPU: user + sys CPU seconds of ansible-playbook and every process under it
  (workers, module runs), from getrusage(RUSAGE_CHILDREN) taken before the launch and
  after it is reaped, divided by the hosts of the host plays: goal <= 3 s per host. The
  supervisor and the job leave that tree (rlops-run start detaches them), so they are not
  counted; on this machine the module runs, i.e. the host's side of each task, are, so it
  is the controller's share plus the host's Ansible work;
- tasks: task results on the host in train_new's host plays (every play not on the
  literal `localhost`), from bench/callback_plugins/rlops_bench_tasks.py, skipped tasks
  and includes counted as the output shows them (one TASK banner each): goal <= 40.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from _common import REPO, RLOPS_RUN, Goal, clean_env, median, read_status, table

GOAL_RATIO = 2.5  # train_new -> first checkpoint / the agent by hand
GOAL_CPU_PER_HOST = 3.0  # controller CPU seconds per host per train_new
GOAL_TASKS = 40  # task results of train_new's host plays on localhost
POLL = 0.1
CALLBACKS = Path(__file__).resolve().with_name("callback_plugins")
TASKS_CALLBACK = "rlops_bench_tasks"
RATIO_LABEL = "train_new to first checkpoint / agent by hand"
CPU_LABEL = "controller CPU per host per train_new"
TASKS_LABEL = "tasks of train_new's host play (localhost)"


def playbook_cmd(playbook: str, data_root: Path, args: argparse.Namespace) -> list[str]:
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), f"playbooks/{playbook}",
           "-e", f"rlops_data_root={data_root}", "-e", f"trainer_venv_root={args.venv_root}"]
    for extra in args.extra_vars:
        cmd += ["-e", extra]
    return cmd


def ansible_env(tasks_file: Path | None = None) -> dict[str, str]:
    env = clean_env(ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0")
    if tasks_file is not None:
        enabled = [name for name in env.get("ANSIBLE_CALLBACKS_ENABLED", "").split(",") if name]
        plugins = [str(CALLBACKS)] + [p for p in env.get("ANSIBLE_CALLBACK_PLUGINS", "")
                                      .split(os.pathsep) if p]
        env.update(ANSIBLE_CALLBACKS_ENABLED=",".join(enabled + [TASKS_CALLBACK]),
                   ANSIBLE_CALLBACK_PLUGINS=os.pathsep.join(plugins),
                   RLOPS_BENCH_TASKS_FILE=str(tasks_file))
    return env


def children_cpu() -> float:
    """User + sys CPU seconds of every reaped child of this process (and theirs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def host_play_tasks(tasks_file: Path) -> dict:
    """Task results per host in the plays that do not run on the literal `localhost`.

    Returns {"per_host": {host: results}, "plays": [(name, host play?, results on all
    hosts)]}, both empty when the playbook wrote no counts (it crashed).
    """
    try:
        plays = json.loads(tasks_file.read_text())["plays"]
    except (FileNotFoundError, ValueError, KeyError):
        return {"per_host": {}, "plays": []}
    per_host: dict[str, int] = {}
    summary = []
    for play in plays:
        total = 0
        for host, counts in play["counts"].items():
            results = sum(counts.values())
            total += results
            if play["hosts"] != ["localhost"]:
                per_host[host] = per_host.get(host, 0) + results
        summary.append((play["name"], play["hosts"] != ["localhost"], total))
    return {"per_host": per_host, "plays": summary}


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


def job_started(session: Path) -> float | None:
    """Epoch seconds of the supervisor's `running` line (it logs just after starting the job)."""
    try:
        text = (session / "logs" / "supervisor.log").read_text(errors="replace")
    except OSError:
        return None
    found = re.search(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*: running$", text, re.M)
    if not found:
        return None
    return datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


def run_playbook(work: Path, name: str, args: argparse.Namespace, stop_yml: bool = True) -> dict:
    """Launch train_new, time the first checkpoint, stop the session (stop.yml or the CLI)."""
    data_root = work / name
    data_root.mkdir()
    log = work / f"{name}.log"
    tasks_file = work / f"{name}-tasks.json"
    result: dict = {"data_root": data_root, "log": log}
    cpu_before = children_cpu()  # nothing else is reaped until train_new is
    started = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(playbook_cmd("train_new.yml", data_root, args), cwd=REPO,
                                env=ansible_env(tasks_file), stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT)
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
                running = job_started(session)
                if running is not None:
                    result["from_running"] = time.time() - running
                break
            time.sleep(POLL)
        else:
            result["error"] = f"no checkpoint within {args.timeout} s; see {log}"
        if proc.wait(args.timeout) != 0:
            result["error"] = f"train_new.yml exited {proc.returncode}:\n" + error_tail(log)
        result.setdefault("playbook", time.perf_counter() - started)
        result["cpu"] = children_cpu() - cpu_before
        result["tasks"] = host_play_tasks(tasks_file)
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
    parser.add_argument("--repeats", type=int, default=2,
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
    load = [os.getloadavg()[0]]

    with tempfile.TemporaryDirectory(prefix="rlops-bench-ttfc-") as tmp:
        work = Path(tmp)
        print("warm-up: train_new.yml (builds the trainer venv on a first run)",
              file=sys.stderr, flush=True)
        warm = run_playbook(work, "warmup", args, stop_yml=False)
        if "error" in warm:
            print(f"warm-up failed: {warm['error']}")
            not_measured("train_new.yml failed")
            return 0
        python = trainer_python(warm["session"])
        print(f"warm-up: first checkpoint after {warm['first_checkpoint']:.1f} s; "
              f"job python {python}",
              file=sys.stderr, flush=True)
        rows, measured, bare_times, problems = [], [], [], []
        plays: list = []
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
                    hosts = len(result["tasks"]["per_host"]) or None
                    tasks = max(result["tasks"]["per_host"].values(), default=None)
                    measured.append({"first": result["first_checkpoint"], "hosts": hosts,
                                     "running": result.get("from_running"),
                                     "cpu": result["cpu"], "tasks": tasks})
                    plays = plays or result["tasks"]["plays"]
                    row.update(first=result["first_checkpoint"], playbook=result["playbook"],
                               running=result.get("from_running", "-"),
                               stop=result.get("stop"), cpu=result["cpu"], hosts=hosts,
                               tasks=tasks)
                elif which == "bare" and index < args.bare_repeats:
                    row["bare"] = run_bare(work, f"bare{index}", python, args)
                    bare_times.append(row["bare"])
            rows.append([index] + [row.get(key, "-") for key in (
                "first", "playbook", "running", "bare", "stop", "cpu", "hosts", "tasks")])
            load.append(os.getloadavg()[0])
            print(f"repeat {index} done", file=sys.stderr, flush=True)

    print(f"PPO CartPole-v1, checkpoint_interval {args.checkpoint_interval}, local inventory, "
          f"warm venv under {args.venv_root}; load average {min(load):.1f}..{max(load):.1f} "
          f"on {os.cpu_count()} cores")
    print(table(["repeat", "playbook -> checkpoint s", "playbook exit s",
                 "job started -> checkpoint seen s", "bare agent -> checkpoint s", "stop.yml s",
                 "train_new CPU s", "hosts", "host play tasks"], rows))
    if plays:
        print("task results per play (first measured run): " + "; ".join(
            f"{name or '(unnamed)'}{' [host play]' if host else ''}: {total}"
            for name, host, total in plays))
    for problem in problems:
        print(f"problem: {problem}")
    if not measured:
        not_measured("train_new.yml failed")
        return 0
    a, b = median([m["first"] for m in measured]), median(bare_times)
    print(f"playbook {a:.1f} s / bare agent {b:.1f} s; Ansible's share of the wait: "
          f"{(a - b) / a:.0%} ({a - b:.1f} s)")
    from_running = [m["running"] for m in measured if m["running"] is not None]
    if from_running:
        print(f"the runtime's part: job started -> checkpoint in status.json "
              f"{median(from_running):.2f} s vs the bare agent's {b:.2f} s")
    print(Goal(RATIO_LABEL, a / b, GOAL_RATIO, higher_is_better=False, digits=2).line())
    per_host = [m["cpu"] / m["hosts"] for m in measured if m["hosts"]]
    tasks = [m["tasks"] for m in measured if m["tasks"] is not None]
    if per_host:
        print(Goal(CPU_LABEL, median(per_host), GOAL_CPU_PER_HOST, higher_is_better=False,
                   unit="s").line())
    else:
        print(f"{CPU_LABEL}: not measured: no task counts, no hosts [missed]")
    if tasks:
        print(Goal(TASKS_LABEL, median(tasks), GOAL_TASKS, higher_is_better=False,
                   digits=0).line())
    else:
        print(f"{TASKS_LABEL}: not measured: the callback wrote no counts [missed]")
    return 0


def not_measured(why: str) -> None:
    for label in (RATIO_LABEL, CPU_LABEL, TASKS_LABEL):
        print(f"{label}: not measured: {why} [missed]")


if __name__ == "__main__":
    sys.exit(main())
