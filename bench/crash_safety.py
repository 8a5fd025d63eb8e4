"""Crash safety: kill -9 the reference agent (sometimes its supervisor too), then resume.

Two sessions, one PPO and one DQN (CartPole-v1, zoo hyperparameters), each under
`rlops-run run` with file:// storage synced every second, run side by side (one job per
core). Trials alternate between them (even: PPO, odd: DQN); each trial resumes its session
from where the previous kill left it:

1. `rlops-run run`; wait for status.json `running` and for the job to have built or
   loaded its model and taken at least one step.
2. Kill, at a point drawn by a seeded RNG. Modes cycle per session: `job` (kill -9 the
   job once it reaches a random step 1..--span x interval past its resume point, i.e. at
   a random moment of the checkpoint cycle whatever the machine's speed), `job+sup`
   (kill -9 the supervisor, then the job: the host is gone, no final sync), and the same
   two `@write`: wait until the job has a checkpoint `.tmp-` folder, then kill within
   0..40 ms, in the middle of a checkpoint write (the DQN one holds a ~5 MB replay
   buffer). A kill that leaves its `.tmp-` folder behind is counted as a hit mid-write.
3. Check what a reader would use:
   - local: every step folder verifies (manifest, sizes, sha256); the newest one with a
     manifest is the one `rlops-run` tries first, so if it does not verify it counts as
     damaged-used;
   - storage: checkpoints/LATEST names a step whose files in storage verify against its
     manifest (readers use LATEST first: damaged-used again if it does not).
   The expected resume point is the newest complete checkpoint, local or in storage.
4. The next run of the session is the resume: its status.json `resumed_from_step` must
   equal the expected step, the job must load exactly that step (its first traced step)
   and train past it; anything else is a resume failure. The last kill of each session is
   followed by one more resume, stopped gracefully (SIGTERM: `stopped`, exit 0, a
   checkpoint newer than the resume point).

Steps lost = step at the kill - the resumed step. The step at the kill comes from
bench/_traced_agent.py (the reference agent plus a thread writing `num_timesteps` every
2 ms; it may lag by one GIL switch, 5 ms). The bound: the agent checkpoints in its
per-env-step callback as soon as num_timesteps >= k x interval, and num_timesteps moves by
n_envs per env step, so checkpoint k is at a step in [k x interval, k x interval + n_envs)
and a kill just before checkpoint k+1 is complete loses at most interval + n_envs - 1
steps (PPO, 8 envs: +7; DQN, 1 env: +0). No rollout of overshoot: the check runs on every
env step, not once per rollout.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from _common import RLOPS_RUN, clean_env, read_status, table, wait_until, write_session

TRACED_AGENT = [sys.executable, str(Path(__file__).resolve().with_name("_traced_agent.py"))]
MODES = ("job", "job+sup", "job@write", "job+sup@write")
N_ENVS = {"ppo": 8, "dqn": 1}
START_TIMEOUT = 180.0


@dataclass
class Session:
    algo: str
    interval: int
    dir: Path
    trace: Path
    expected: int | None = None  # step the next run must resume from
    runs: int = 0


@dataclass
class Tally:
    rows: list[list] = field(default_factory=list)
    damaged_folders: int = 0
    damaged_used: int = 0
    resume_failures: list[str] = field(default_factory=list)
    mid_write: int = 0
    max_lost: int = 0


def read_trace(path: Path) -> tuple[int, int, int] | None:
    try:
        first, step, pid = path.read_text().split()[:3]
        return int(first), int(step), int(pid)
    except (FileNotFoundError, ValueError):
        return None


def process_gone(pid: int) -> bool:
    """True once `pid` has exited (a zombie counts: it can no longer write anything)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return fields[0] in ("Z", "X")


def kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def tmp_folders(checkpoints: Path, pid: int | None = None) -> list[Path]:
    suffix = f"-{pid}" if pid is not None else ""
    return [p for p in checkpoints.glob(".tmp-*") if p.name.endswith(suffix) or not suffix]


def check_local(checkpoints: Path) -> tuple[int | None, list[str], bool]:
    """(newest complete step, problems of step folders, newest-with-manifest is damaged)."""
    from rlops_runtime.checkpoints import newest_complete_local
    from rlops_runtime.manifest import MANIFEST, check_folder, parse_step

    problems = []
    newest_listed = None
    for entry in sorted(checkpoints.iterdir()):
        step = parse_step(entry.name)
        if step is None:
            continue
        if not (entry / MANIFEST).is_file():
            problems.append(f"{entry.name}: step folder without a manifest")
            continue
        newest_listed = step
        problems += [f"{entry.name}: {p}" for p in check_folder(entry)]
    newest = newest_complete_local(checkpoints)
    newest_step = newest[0] if newest else None
    return newest_step, problems, newest_listed is not None and newest_listed != newest_step


def check_storage(storage_uri: str, session_id: str, scratch: Path) -> tuple[int | None, list]:
    """(LATEST step in storage, its problems): downloads LATEST's files and verifies them."""
    from rlops_runtime.manifest import MANIFEST, step_dirname, verify_folder
    from rlops_runtime.publish import read_latest
    from rlops_runtime.storage import StorageError, open_storage

    storage = open_storage(storage_uri)
    step = read_latest(storage, session_id)
    if step is None:
        return None, []
    prefix = f"{session_id}/checkpoints/{step_dirname(step)}"
    folder = scratch / step_dirname(step)
    shutil.rmtree(folder, ignore_errors=True)
    try:
        data = storage.get_bytes(f"{prefix}/{MANIFEST}")
        manifest = json.loads(data) if data is not None else None
        if not isinstance(manifest, dict):
            return step, [f"LATEST {step}: manifest missing or unreadable"]
        for entry in manifest.get("files", []):
            storage.get_file(f"{prefix}/{entry['path']}", folder / entry["path"])
        problems = verify_folder(folder, manifest, step=step)
    except (StorageError, ValueError, KeyError, TypeError) as exc:
        problems = [str(exc)]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return step, [f"LATEST {step}: {p}" for p in problems]


def expected_resume(session: Session, storage_uri: str, scratch: Path):
    """(newest complete step, local problems, storage problems, reader's pick damaged)."""
    local_step, local_problems, local_damaged_first = check_local(session.dir / "checkpoints")
    remote_step, remote_problems = check_storage(storage_uri, session.dir.name, scratch)
    good_remote = remote_step if not remote_problems else None
    candidates = [step for step in (local_step, good_remote) if step is not None]
    expected = max(candidates) if candidates else None
    return expected, local_problems, remote_problems, local_damaged_first or bool(remote_problems)


def start(session: Session) -> tuple[subprocess.Popen, dict, tuple[int, int, int]]:
    """Start a run and wait until the job trains; raises RuntimeError on a failed resume."""
    session.trace.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [RLOPS_RUN, "run", "--session-dir", str(session.dir)], env=clean_env(),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    session.runs += 1

    def running() -> dict | None:
        if proc.poll() is not None:
            raise RuntimeError(f"supervisor exited {proc.returncode} before running")
        status = read_status(session.dir)
        ok = status.get("supervisor_pid") == proc.pid and status.get("state") == "running"
        return status if ok else None

    def trained() -> tuple[int, int, int] | None:
        trace = read_trace(session.trace)
        if proc.poll() is not None or (status["pid"] and process_gone(status["pid"])):
            raise RuntimeError("job exited before training")
        return trace if trace and trace[2] == status["pid"] and trace[1] > trace[0] else None

    try:
        status = wait_until(running, START_TIMEOUT, what="state running")
        trace = wait_until(trained, START_TIMEOUT, interval=0.01, what="the job to train")
    except (RuntimeError, TimeoutError) as exc:
        stop_all(proc, read_status(session.dir).get("pid"))
        raise RuntimeError(f"{exc}; {tail(session.dir / 'logs' / 'job.log')}") from None
    return proc, status, trace


def check_resume(session: Session, status: dict, trace: tuple[int, int, int]) -> str | None:
    resumed = status.get("resumed_from_step")
    first = trace[0]
    if resumed != session.expected:
        return f"resumed_from_step {resumed}, expected {session.expected}"
    if first != (session.expected or 0):
        return f"job started at step {first}, expected {session.expected or 0}"
    return None


def stop_all(proc: subprocess.Popen, job_pid: int | None) -> None:
    """Leave nothing running: the supervisor we started and its job (both by pid)."""
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    if job_pid:
        kill(job_pid)
        wait_until(lambda: process_gone(job_pid), 30, what=f"job {job_pid} to exit")


def tail(path: Path, lines: int = 3) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except FileNotFoundError:
        return "no job.log"


def kill_point(session: Session, mode: str, rng: random.Random, first: int, job_pid: int,
               span: float) -> None:
    """Return at the moment to kill: a random step, or inside a checkpoint write."""
    checkpoints = session.dir / "checkpoints"
    if mode.endswith("@write"):
        def writing() -> bool:
            return bool(tmp_folders(checkpoints, job_pid)) or process_gone(job_pid)
        wait_until(writing, START_TIMEOUT, interval=0.001, what="a checkpoint write")
        time.sleep(rng.uniform(0, 0.04))
        return
    target = first + rng.randint(1, int(span * session.interval))

    def reached() -> bool:
        trace = read_trace(session.trace)
        return (trace is not None and trace[1] >= target) or process_gone(job_pid)

    wait_until(reached, START_TIMEOUT, interval=0.001, what=f"step {target}")


def trial(index: int, session: Session, mode: str, rng: random.Random, span: float,
          tally: Tally, storage_uri: str, scratch: Path) -> None:
    try:
        proc, status, trace = start(session)
    except RuntimeError as exc:
        tally.resume_failures.append(f"trial {index} ({session.algo}): {exc}")
        session.expected = expected_resume(session, storage_uri, scratch)[0]
        return
    problem = check_resume(session, status, trace)
    if problem:
        tally.resume_failures.append(f"trial {index} ({session.algo}): {problem}")
    job_pid = status["pid"]
    try:
        kill_point(session, mode, rng, trace[0], job_pid, span)
    except TimeoutError:
        pass  # kill anyway: still a kill at a moment the job did not choose
    if mode.startswith("job+sup"):
        kill(proc.pid)
    kill(job_pid)
    wait_until(lambda: process_gone(job_pid), 30, what=f"job {job_pid} to exit")
    kill_trace = read_trace(session.trace)
    killed_at = kill_trace[1] if kill_trace and kill_trace[2] == job_pid else trace[1]
    hit_write = bool(tmp_folders(session.dir / "checkpoints", job_pid))
    try:
        code = proc.wait(60)
    except subprocess.TimeoutExpired:
        stop_all(proc, None)
        code = None
    session.expected, local_problems, remote_problems, used_damaged = expected_resume(
        session, storage_uri, scratch)
    tally.damaged_folders += len(local_problems)
    tally.damaged_used += used_damaged
    tally.mid_write += hit_write
    lost = killed_at - (session.expected or 0)
    bound = session.interval + N_ENVS[session.algo] - 1
    tally.max_lost = max(tally.max_lost, lost)
    tally.rows.append([
        index, session.algo, mode, trace[0], killed_at, "yes" if hit_write else "",
        "-" if code is None else code, session.expected, lost, bound,
        "OK" if lost <= bound else "OVER", "DAMAGED" if used_damaged else "ok",
    ])
    for message in local_problems + remote_problems:
        print(f"trial {index}: {message}", file=sys.stderr)


def final_resume(session: Session, tally: Tally) -> None:
    """Resume once more and stop gracefully: `stopped`, exit 0, a newer checkpoint."""
    try:
        proc, status, trace = start(session)
    except RuntimeError as exc:
        tally.resume_failures.append(f"final ({session.algo}): {exc}")
        return
    problem = check_resume(session, status, trace)
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(120)
    except subprocess.TimeoutExpired:
        stop_all(proc, status["pid"])
        code = None
    final = read_status(session.dir)
    newest = final.get("last_checkpoint_step")
    if not problem and (code != 0 or final.get("state") != "stopped"):
        problem = f"graceful stop ended {final.get('state')!r}, exit {code}"
    if not problem and (newest is None or newest <= (session.expected or 0)):
        problem = f"no checkpoint after the resume point {session.expected} (newest {newest})"
    if problem:
        tally.resume_failures.append(f"final ({session.algo}): {problem}")


def run_session(session: Session, indices: list[int], seed: int, span: float,
                storage_uri: str, scratch: Path) -> Tally:
    """One session's trials in order (each resumes the previous one), then the final resume."""
    rng = random.Random(f"{seed}-{session.algo}")
    tally = Tally()
    scratch.mkdir(parents=True, exist_ok=True)
    for number, index in enumerate(indices):
        mode = MODES[number % len(MODES)]
        trial(index, session, mode, rng, span, tally, storage_uri, scratch)
        print(f"trial {index}: {session.algo} {mode} done", file=sys.stderr, flush=True)
    final_resume(session, tally)
    return tally


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--span", type=float, default=2.5,
                        help="random kills fall 1..SPAN*interval steps after the resume point")
    parser.add_argument("--ppo-interval", type=int, default=4096)
    parser.add_argument("--dqn-interval", type=int, default=1000)
    args = parser.parse_args()
    began = time.monotonic()

    with tempfile.TemporaryDirectory(prefix="rlops-bench-crash-") as tmp:
        work = Path(tmp)
        storage_uri = f"file://{work / 'storage'}"
        sessions = []
        for algo, interval in (("ppo", args.ppo_interval), ("dqn", args.dqn_interval)):
            trace = work / f"trace-{algo}"
            sessions.append(Session(algo, interval, write_session(
                work / "data", f"crash-{algo}", storage_uri=storage_uri, algo=algo,
                env_id="CartPole-v1", total_timesteps=10_000_000, checkpoint_interval=interval,
                sync_interval=1, stop_grace=60, command=TRACED_AGENT,
                env={"BENCH_TRACE_FILE": str(trace)},
            ), trace))
        # The two sessions run side by side (one job per core); trials alternate PPO/DQN.
        with ThreadPoolExecutor(max_workers=len(sessions)) as pool:
            futures = [
                pool.submit(run_session, session, list(range(n, args.trials, len(sessions))),
                            args.seed, args.span, storage_uri, work / f"scratch-{session.algo}")
                for n, session in enumerate(sessions)
            ]
            tallies = [future.result() for future in futures]
        leftovers = sum(len(tmp_folders(s.dir / "checkpoints")) for s in sessions)

    rows = sorted((row for t in tallies for row in t.rows), key=lambda row: row[0])
    failures = [failure for t in tallies for failure in t.resume_failures]
    damaged_used = sum(t.damaged_used for t in tallies)
    over = sum(row[10] == "OVER" for row in rows)
    print(f"crash safety: {args.trials} trials (seed {args.seed}), "
          f"{time.monotonic() - began:.0f} s; kill modes: {', '.join(MODES)}")
    print(table(
        ["trial", "algo", "kill", "resumed at", "killed at", "mid-write", "sup exit",
         "newest complete", "lost", "bound", "", "reader's pick"],
        rows,
    ))
    for failure in failures:
        print(f"resume failure: {failure}")
    print(f"trials: {len(rows)} of {args.trials}; kills mid-write: "
          f"{sum(t.mid_write for t in tallies)}; damaged step folders: "
          f"{sum(t.damaged_folders for t in tallies)}; .tmp- folders left behind: {leftovers}")
    for session, tally in zip(sessions, tallies):
        n_envs = N_ENVS[session.algo]
        print(f"{session.algo}: max steps lost {tally.max_lost} vs bound "
              f"{session.interval + n_envs - 1} (checkpoint interval {session.interval} "
              f"+ n_envs {n_envs} - 1)")
    print(f"damaged-used: {damaged_used} (goal 0) [{'met' if not damaged_used else 'missed'}]")
    print(f"resume failures: {len(failures)} (goal 0) [{'met' if not failures else 'missed'}]")
    print(f"trials losing more than the bound: {over} (goal 0) [{'met' if not over else 'missed'}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
