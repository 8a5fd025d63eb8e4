"""Helpers shared by the benchmarks: sessions, run.json, a moto server, TensorBoard fps.

Benchmarks run with the project's venv (`.venv/bin/python bench/<name>.py`); `rlops-run`
is taken from the same bin folder as the interpreter. Nothing here asserts on timing.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent
# The loopback servers the tests use (tests/servers.py) serve the benchmarks too.
sys.path.insert(0, str(REPO / "tests"))
from harness import NotInTime  # noqa: E402
from harness import wait_until as _wait_until  # noqa: E402
from servers import serve_moto, stop_process  # noqa: E402,F401 (stop_process: re-exported)

BIN = Path(sys.executable).parent
RLOPS_RUN = str(BIN / "rlops-run")
AGENT = [sys.executable, "-m", "rlops_runtime.agents.sb3", "train"]
FPS_TAG = "time/fps"
# Variables that would change what is measured: threads, AWS settings from the caller's
# shell, and a session of the caller's.
_SCRUBBED_PREFIXES = ("RLOPS_", "AWS_")
_SCRUBBED = {"OMP_NUM_THREADS", "MKL_NUM_THREADS"}
# Runs that are compared each get their own session, as systemd or `rlops-run start` gives
# the supervisor, and as the supervisor gives its job: with the kernel's autogroup
# scheduling (sched_autogroup_enabled), CPU is shared out per session first, so a peer
# left in the benchmark's session would get a smaller share than the job it is compared to.
NEW_SESSION = True


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        key: value for key, value in os.environ.items()
        if key not in _SCRUBBED and not key.startswith(_SCRUBBED_PREFIXES)
    }
    env.update(extra)
    return env


def write_session(data_root: Path, session_id: str, **run: Any) -> Path:
    """Create `<data_root>/sessions/<id>/config/run.json`; returns the session dir."""
    from rlops_runtime.session import SessionLayout

    layout = SessionLayout.for_session(data_root, session_id).create()
    config = {"session_id": session_id, "command": AGENT, "device": "cpu", "seed": 0, **run}
    layout.run_json.write_text(json.dumps(config, indent=2) + "\n")
    return layout.root


def run_supervised(session_dir: Path, timeout: float = 600, **env: str) -> dict[str, Any]:
    """`rlops-run run` in the foreground until it exits.

    Returns its exit status and the CPU traces of the supervisor process (its sync thread
    included) and of its job (the pid status.json names).
    """
    proc = subprocess.Popen(
        [RLOPS_RUN, "run", "--session-dir", str(session_dir)], env=clean_env(**env),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=NEW_SESSION,
    )

    def job_pid() -> int | None:
        status = read_status(session_dir)
        return status.get("pid") if status.get("supervisor_pid") == proc.pid else None

    deadline = time.monotonic() + timeout
    try:
        with CpuTrace(lambda: proc.pid) as supervisor, CpuTrace(job_pid) as job:
            while proc.poll() is None:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"rlops-run run {session_dir} took over {timeout} s")
                time.sleep(0.1)
    finally:
        stop_process(proc, timeout=120)  # a no-op once it has exited
    return {"code": proc.returncode, "supervisor": supervisor, "job": job}


def own_cpu_seconds(pid: int) -> float | None:
    """utime + stime of one process (not its children), None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    # Fields 14 and 15 of proc(5); the split starts at field 3 (state).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_status(session_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((Path(session_dir) / "status.json").read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def tb_scalars(tensorboard_dir: Path, tag: str = FPS_TAG) -> list[tuple[float, int, float]]:
    """(wall time, step, value) of `tag` in every event file under the folder, by step."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    points = []
    for run_dir in sorted({p.parent for p in Path(tensorboard_dir).rglob("events.out.*")}):
        acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
        acc.Reload()
        if tag in acc.Tags().get("scalars", []):
            points += [(e.wall_time, e.step, e.value) for e in acc.Scalars(tag)]
    return sorted(points, key=lambda point: point[1])


def learn_fps(tensorboard_dir: Path) -> float:
    """SB3's own throughput of the whole learn() call: its last `time/fps` scalar.

    SB3 logs fps = steps since learn() began / seconds since learn() began, so the last
    value covers every rollout and update but the final one, callbacks included.
    """
    points = tb_scalars(tensorboard_dir)
    if not points:
        raise RuntimeError(f"no {FPS_TAG} scalars under {tensorboard_dir}")
    return points[-1][2]


def _step_at(points: list[tuple[float, int, float]], when: float) -> float:
    """The step at wall time `when`, interpolated between two logged points."""
    for (t0, s0, _fps0), (t1, s1, _fps1) in zip(points, points[1:]):
        if t0 <= when <= t1:
            return s0 + (s1 - s0) * ((when - t0) / (t1 - t0) if t1 > t0 else 1.0)
    raise ValueError(f"wall time {when} is outside the logged points")


@dataclass
class Span:
    """Steps a run made inside learn() between two wall times."""

    start: float
    end: float
    steps: float

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @property
    def rate(self) -> float:
        return self.steps / self.seconds


def learn_spans(tb_a: Path, tb_b: Path, together: bool) -> tuple[Span, Span]:
    """Where to compare two runs' steps/s, from the `time/fps` points SB3 logged.

    Every point carries the wall time it was written at and the step. Side by side
    (`together`), both runs are measured over the window in which both were in learn():
    from the later run's first point to the earlier run's last. Otherwise each over its
    own first..last point (all of learn() but the first rollout and the last update).
    """
    a, b = tb_scalars(tb_a), tb_scalars(tb_b)
    if len(a) < 2 or len(b) < 2:
        raise RuntimeError(f"too few {FPS_TAG} points under {tb_a} or {tb_b}")
    if not together:
        return (Span(a[0][0], a[-1][0], a[-1][1] - a[0][1]),
                Span(b[0][0], b[-1][0], b[-1][1] - b[0][1]))
    start, end = max(a[0][0], b[0][0]), min(a[-1][0], b[-1][0])
    if end <= start:
        raise RuntimeError("the two runs were never in learn() at the same time")
    return tuple(  # type: ignore[return-value]
        Span(start, end, _step_at(points, end) - _step_at(points, start)) for points in (a, b)
    )


class CpuTrace:
    """(wall time, CPU seconds) of one process, sampled every `period` while it lives.

    `pid_fn` names the process (None until it is known, e.g. a job not started yet).
    """

    def __init__(self, pid_fn: Callable[[], int | None], period: float = 0.1) -> None:
        self.pid_fn = pid_fn
        self.period = period
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CpuTrace:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        pid = None
        while not self._stop.is_set():
            pid = pid or self.pid_fn()
            cpu = own_cpu_seconds(pid) if pid else None
            if cpu is not None:
                self.samples.append((time.time(), cpu))
            self._stop.wait(self.period)

    def at(self, when: float) -> float:
        points = self.samples
        if not points or when <= points[0][0]:
            return points[0][1] if points else 0.0
        for (t0, c0), (t1, c1) in zip(points, points[1:]):
            if when <= t1:
                return c0 + (c1 - c0) * (when - t0) / (t1 - t0)
        return points[-1][1]

    def between(self, start: float, end: float) -> float:
        return self.at(end) - self.at(start)


def compare(a: dict[str, Any], b: dict[str, Any], together: bool) -> dict[str, float]:
    """Wall-clock and per-CPU-second rates of A and B; results carry "tb" and "cpu" traces."""
    span_a, span_b = learn_spans(a["tb"], b["tb"], together)
    cpu_a = [trace.between(span_a.start, span_a.end) for trace in a["cpu"]]
    cpu_b = [trace.between(span_b.start, span_b.end) for trace in b["cpu"]]
    per_cpu_a, per_cpu_b = span_a.steps / sum(cpu_a), span_b.steps / sum(cpu_b)
    return {
        "a": span_a.rate, "b": span_b.rate, "ratio": span_a.rate / span_b.rate,
        "window": span_a.seconds, "a_per_cpu": per_cpu_a, "b_per_cpu": per_cpu_b,
        "cpu_ratio": per_cpu_a / per_cpu_b,
        # CPU % of one core of each traced process of A and B inside the window
        "a_cpu_pct": [100 * cpu / span_a.seconds for cpu in cpu_a],
        "b_cpu_pct": [100 * cpu / span_b.seconds for cpu in cpu_b],
    }


def run_pair(run_a: Callable[[], dict], run_b: Callable[[], dict], a_first: bool,
             together: bool) -> tuple[dict, dict]:
    """Run A and B, at the same time (threads) or one after the other, in the given order."""
    order = [("a", run_a), ("b", run_b)]
    if not a_first:
        order.reverse()
    results: dict[str, dict] = {}
    errors: list[BaseException] = []

    def call(key: str, fn: Callable[[], dict]) -> None:
        try:
            results[key] = fn()
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    if not together:
        for key, fn in order:
            call(key, fn)
            if errors:
                raise errors[0]
        return results["a"], results["b"]
    threads = [threading.Thread(target=call, args=item) for item in order]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results["a"], results["b"]


@contextlib.contextmanager
def moto_server() -> Iterator[tuple[str, int]]:
    """A moto S3 server on 127.0.0.1 for the block; yields (endpoint URL, pid)."""
    with serve_moto(new_session=NEW_SESSION) as (url, proc):
        yield url, proc.pid


def s3_env(endpoint: str) -> dict[str, str]:
    """Environment that points boto3 (in the supervisor) at the moto server only."""
    return {
        "RLOPS_S3_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/nonexistent/aws-config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def create_bucket(endpoint: str, bucket: str) -> None:
    import boto3

    boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    ).create_bucket(Bucket=bucket)


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.05,
               what: str = "condition") -> Any:
    """The harness's wait (tests/harness) at the benchmarks' finer interval; TimeoutError
    when time runs out (a benchmark reports it, it is no test failure)."""
    try:
        return _wait_until(predicate, timeout, what, interval=interval)
    except NotInTime as exc:
        raise TimeoutError(str(exc)) from None


@dataclass
class Goal:
    """One goal line: `label: value (goal >= X) [met]`; run_all.py reads these lines back.

    `digits` defaults to 3 for a plain ratio and 1 with a unit.
    """

    label: str
    value: float
    goal: float
    higher_is_better: bool = True
    unit: str = ""
    digits: int | None = None

    @property
    def met(self) -> bool:
        return self.value >= self.goal if self.higher_is_better else self.value <= self.goal

    def line(self) -> str:
        op = ">=" if self.higher_is_better else "<="
        digits = self.digits if self.digits is not None else (1 if self.unit else 3)
        value = f"{self.value:.{digits}f}" + (f" {self.unit}" if self.unit else "")
        goal = f"{self.goal:g}" + (f" {self.unit}" if self.unit else "")
        return f"{self.label}: {value} (goal {op} {goal}) [{'met' if self.met else 'missed'}]"


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(headers: list[str], rows: list[list[Any]], left: int = 0) -> str:
    """Columns right-aligned, the first `left` ones left-aligned."""
    cells = [[str(h) for h in headers]] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) if i < left else c.rjust(w)
                       for i, (c, w) in enumerate(zip(row, widths))).rstrip()
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return str(value)
