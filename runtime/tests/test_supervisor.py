"""The supervisor against a tiny contract-following job (tests/fake_job.py), file:// storage."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import pytest
from fake_imds import FakeImds
from rlops_runtime.checkpoints import local_steps
from rlops_runtime.jsonio import write_json_atomic
from rlops_runtime.manifest import check_folder, step_dirname
from rlops_runtime.publish import publish_checkpoint, read_latest
from rlops_runtime.session import SessionLayout
from rlops_runtime.status import Status, read_status
from rlops_runtime.storage import open_storage
from rlops_runtime.supervisor import (
    RunConfig,
    SessionBusy,
    Supervisor,
    job_environment,
    last_line,
    lock_session,
    parse_env_file,
    term_when_parent_dies,
)

FAKE_JOB = Path(__file__).with_name("fake_job.py")
SESSION = "fake-20261122t000000z"


def make_session(tmp_path: Path, **run: object) -> SessionLayout:
    layout = SessionLayout.for_session(tmp_path / "data", SESSION).create()
    config = {
        "session_id": SESSION,
        "storage_uri": f"file://{tmp_path / 'storage'}",
        "command": [sys.executable, str(FAKE_JOB)],
        "total_timesteps": 10**9,
        "sync_interval": 0.5,
        "stop_grace": 10,
        **run,
    }
    write_json_atomic(layout.run_json, config)
    return layout


def supervise(layout: SessionLayout, **kwargs: object) -> tuple[int, Status]:
    supervisor = Supervisor(
        layout, RunConfig.load(layout.run_json), poll_interval=0.1, **kwargs
    )
    code = supervisor.run()
    status = read_status(layout.status)
    assert status is not None
    return code, status


class SupervisorThread(threading.Thread):
    """A supervisor run in the background, so that a test can act while it runs."""

    def __init__(self, layout: SessionLayout, **kwargs: object) -> None:
        super().__init__(daemon=True)
        self.supervisor = Supervisor(
            layout, RunConfig.load(layout.run_json), poll_interval=0.1, **kwargs)
        self.code: int | None = None

    def run(self) -> None:
        self.code = self.supervisor.run()

    def stop(self) -> None:
        """As SIGTERM would (the handler only sets this flag)."""
        self.supervisor._stop_signal = signal.SIGTERM
        self.join(30)


def wait_for(predicate: Callable[[], object], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def requested_steps(layout: SessionLayout) -> list[int]:
    return [int(line.split()[1]) for line in layout.job_log.read_text().splitlines()
            if line.endswith("(requested)")]


def storage_of(tmp_path: Path):
    return open_storage(f"file://{tmp_path / 'storage'}")


def stored_status(tmp_path: Path) -> dict:
    return json.loads(storage_of(tmp_path).get_bytes(f"{SESSION}/status.json"))


def state_of(layout: SessionLayout) -> str | None:
    status = read_status(layout.status)
    return status.state if status else None


def newest(layout: SessionLayout) -> int | None:
    steps = local_steps(layout.checkpoints)
    return steps[-1] if steps else None


def interrupted_by_the_stop_notice(run: SupervisorThread, layout: SessionLayout,
                                   fake_imds: FakeImds) -> Status:
    """IMDS gives the spot stop notice (08:00); the supervisor ends within 30 s: exit 0, state
    interrupted, the notice as its reason. Its status."""
    fake_imds.set_instance_action("stop", "2026-11-22T08:00:00Z")
    run.join(30)
    assert not run.is_alive() and run.code == 0
    status = read_status(layout.status)
    reason = "spot instance-action: stop at 2026-11-22T08:00:00Z"
    assert (status.state, status.notice, status.exit_reason) == ("interrupted", reason, reason)
    return status


# pure helpers -----------------------------------------------------------------------------


def test_parse_env_file() -> None:
    text = "# creds\nAWS_ACCESS_KEY_ID=abc\n\nAWS_SECRET_ACCESS_KEY = 'x=y'\nnot a pair\nE=\"q\"\n"
    assert parse_env_file(text) == {
        "AWS_ACCESS_KEY_ID": "abc", "AWS_SECRET_ACCESS_KEY": "x=y", "E": "q",
    }


def test_job_environment_contract_variables_win(tmp_path: Path) -> None:
    layout = SessionLayout.for_session(tmp_path, SESSION)
    config = RunConfig.from_dict({
        "session_id": SESSION, "storage_uri": "file:///s", "algo": "dqn",
        "env": {"EXTRA": "1", "RLOPS_ALGO": "not-this"},
    })
    env = job_environment({"PATH": "/bin"}, layout, config, layout.checkpoints / "x")
    assert env["PATH"] == "/bin" and env["EXTRA"] == "1"
    assert env["RLOPS_ALGO"] == "dqn"
    assert env["RLOPS_RESUME_FROM"] == str(layout.checkpoints / "x")
    assert env["RLOPS_CHECKPOINT_DIR"] == str(layout.root / "checkpoints")
    assert job_environment({}, layout, config, None)["RLOPS_RESUME_FROM"] == ""


@pytest.mark.parametrize("data, message", [
    ({"storage_uri": "file:///s"}, "missing session_id"),
    ({"session_id": SESSION, "storage_uri": "file:///s", "colour": 1}, "unknown keys colour"),
    ({"session_id": "Bad_Id", "storage_uri": "file:///s"}, "invalid"),
    ({"session_id": SESSION, "storage_uri": "file:///s", "command": "python"}, "command"),
])
def test_run_config_rejects(data: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RunConfig.from_dict(data)


def test_last_line(tmp_path: Path) -> None:
    log = tmp_path / "job.log"
    assert last_line(log) is None
    log.write_text("one\n" + "x" * 10000 + "\nTraceback...\nValueError: boom\n\n")
    assert last_line(log) == "ValueError: boom"


# supervising the fake job -----------------------------------------------------------------


def test_job_completes_and_is_published(tmp_path: Path) -> None:
    layout = make_session(tmp_path, total_timesteps=15, env={"EXTRA": "hello"})
    code, status = supervise(layout)
    assert code == 0
    assert status.state == "completed" and status.exit_code == 0
    assert status.step == 15 and status.last_checkpoint_step == 15
    assert status.last_synced_step == 15 and status.pid and status.started
    assert "extra=hello" in layout.job_log.read_text()
    assert read_latest(storage_of(tmp_path), SESSION) == 15
    assert stored_status(tmp_path)["state"] == "completed"


def test_job_exit_1_is_failed_with_last_log_line(tmp_path: Path) -> None:
    layout = make_session(tmp_path, env={"FAKE_EXIT_CODE": "1"})
    code, status = supervise(layout)
    assert code == 1
    assert status.state == "failed" and status.exit_code == 1
    assert status.exit_reason == "fatal: the fake job was told to fail"


def test_command_that_cannot_start_is_failed(tmp_path: Path) -> None:
    layout = make_session(tmp_path, command=[str(tmp_path / "no-such-program")])
    code, status = supervise(layout)
    assert code == 1 and status.state == "failed"
    assert "cannot start" in status.exit_reason


@pytest.mark.parametrize("local, remote, damaged, expected", [
    ([10, 20], [10], False, 20),     # local newer: no download
    ([10], [10, 30], False, 30),     # storage newer: downloaded
    ([], [30], False, 30),           # local copy deleted
    ([30], [30], True, 30),          # local copy damaged: replaced from storage
    ([], [], False, None),           # fresh start
])
def test_resume_picks_newest_complete(tmp_path: Path, make_checkpoint, local, remote,
                                      damaged, expected) -> None:
    layout = make_session(tmp_path, total_timesteps=0)
    staging = tmp_path / "staging"
    for step in remote:
        folder = make_checkpoint(staging, step, {"step.txt": str(step).encode()}, SESSION)
        publish_checkpoint(storage_of(tmp_path), SESSION, folder)
    for step in local:
        make_checkpoint(layout.checkpoints, step, {"step.txt": str(step).encode()}, SESSION)
    if damaged:
        (layout.checkpoints / step_dirname(local[-1]) / "step.txt").write_text("999")

    code, status = supervise(layout)

    assert code == 0 and status.state == "completed"
    assert status.resumed_from_step == expected
    log = layout.job_log.read_text()
    if expected is None:
        assert "resume_from=-" in log
    else:
        folder = layout.checkpoints / step_dirname(expected)
        assert f"start step={expected} resume_from={folder} " in log
        assert check_folder(folder) == []


def test_max_duration_ends_in_timeout(tmp_path: Path) -> None:
    layout = make_session(tmp_path, max_duration=1)
    started = time.monotonic()
    code, status = supervise(layout)
    assert code == 0 and status.state == "timeout"
    assert time.monotonic() - started < 15
    assert "(requested)" in layout.job_log.read_text()
    assert read_latest(storage_of(tmp_path), SESSION) == newest(layout)
    assert stored_status(tmp_path)["state"] == "timeout"


def test_a_new_checkpoint_and_a_stop_are_seen_between_polls(tmp_path: Path) -> None:
    # Polls 60 s apart: only the watch on the checkpoint folder (and on the stop flag) can
    # make either show within seconds.
    layout = make_session(tmp_path, env={"FAKE_CHECKPOINT_SECONDS": "1"})
    supervisor = Supervisor(layout, RunConfig.load(layout.run_json), poll_interval=60,
                            status_interval=60)
    run = threading.Thread(target=supervisor.run, daemon=True)
    run.start()
    try:
        wait_for(lambda: state_of(layout) == "running")
        wait_for(lambda: newest(layout) is not None, timeout=10)
        seen = time.monotonic()
        wait_for(lambda: read_status(layout.status).last_checkpoint_step is not None, 2)
        assert time.monotonic() - seen < 1
    finally:
        supervisor._stop_signal = signal.SIGTERM
        run.join(30)
    assert not run.is_alive() and state_of(layout) == "stopped"


class FakeWatcher:
    """Reports a spot notice on its `after`-th poll."""

    def __init__(self, after: int) -> None:
        self.after = after
        self.polls = 0

    def poll(self) -> str | None:
        self.polls += 1
        return "spot instance-action: terminate" if self.polls >= self.after else None


class BrokenWatcher:
    def poll(self) -> str | None:
        raise ConnectionError("metadata service unreachable")


def test_notice_interrupts_with_checkpoint_synced(tmp_path: Path) -> None:
    # Checkpoints only on request: the one in storage must be the requested one.
    layout = make_session(tmp_path, env={"FAKE_CHECKPOINT_SECONDS": "3600"})
    watcher = FakeWatcher(after=3)
    code, status = supervise(layout, watchers=[BrokenWatcher(), watcher], notice_interval=0.2)
    assert code == 0 and status.state == "interrupted"
    assert status.notice == "spot instance-action: terminate" and watcher.polls == 3
    assert status.exit_reason == status.notice
    log = layout.job_log.read_text()
    requested = int(log.split(" (requested)")[0].rsplit("checkpoint ", 1)[1])
    latest = read_latest(storage_of(tmp_path), SESSION)
    assert latest is not None and latest >= requested > 0
    assert status.last_synced_step == latest
    assert stored_status(tmp_path)["state"] == "interrupted"


def test_imds_notices_from_run_json(tmp_path: Path, fake_imds: FakeImds,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """notices: imds. A rebalance: checkpoint, published at once, training goes on; then a
    spot stop: checkpoint, publish, `interrupted`."""
    monkeypatch.setenv("RLOPS_IMDS_ENDPOINT", fake_imds.url)
    # No periodic checkpoints, and a sync interval no test waits for: whatever reaches
    # storage while the job runs was asked for by a notice.
    layout = make_session(tmp_path, notices="imds", sync_interval=60, env={
        "FAKE_CHECKPOINT_SECONDS": "3600", "FAKE_PROGRESS_SECONDS": "0.1"})
    run = SupervisorThread(layout, notice_interval=0.2)
    run.start()
    try:
        wait_for(lambda: state_of(layout) == "running" and layout.progress.exists())
        fake_imds.set_rebalance("2026-11-22T07:50:00Z")
        wait_for(lambda: requested_steps(layout))
        [first] = requested_steps(layout)
        wait_for(lambda: read_latest(storage_of(tmp_path), SESSION) == first, timeout=5)
        status = read_status(layout.status)
        assert status.state == "running"
        assert status.notice == "rebalance recommendation at 2026-11-22T07:50:00Z"
        assert stored_status(tmp_path)["notice"] == status.notice

        status = interrupted_by_the_stop_notice(run, layout, fake_imds)
    finally:
        if run.is_alive():
            run.stop()
    first_again, second = requested_steps(layout)
    assert first_again == first < second
    assert read_latest(storage_of(tmp_path), SESSION) == newest(layout) >= second
    assert status.last_synced_step == newest(layout)
    stored = stored_status(tmp_path)
    assert (stored["state"], stored["notice"]) == ("interrupted", status.notice)
    assert fake_imds.count("PUT", "/latest/api/token") == 1


def test_rebalance_before_the_job_progressed_is_only_recorded(
        tmp_path: Path, fake_imds: FakeImds, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a supervisor restarted after a rebalance recommendation sees at once."""
    monkeypatch.setenv("RLOPS_IMDS_ENDPOINT", fake_imds.url)
    fake_imds.set_rebalance("2026-11-22T07:50:00Z")
    layout = make_session(tmp_path, notices="imds", env={"FAKE_CHECKPOINT_SECONDS": "3600"})
    run = SupervisorThread(layout, notice_interval=0.2)
    run.start()
    try:
        wait_for(lambda: (read_status(layout.status) or Status(SESSION)).notice)
        wait_for(lambda: "start step=0" in layout.job_log.read_text())
        time.sleep(0.5)  # a few more polls
        status = read_status(layout.status)
        assert status.state == "running" and status.notice.startswith("rebalance")
        assert requested_steps(layout) == [] and newest(layout) is None

        fake_imds.set_instance_action("terminate", "2026-11-22T08:00:00Z")
        run.join(30)
    finally:
        if run.is_alive():
            run.stop()
    status = read_status(layout.status)
    assert run.code == 0 and status.state == "interrupted"
    assert status.notice == "spot instance-action: terminate at 2026-11-22T08:00:00Z"
    assert len(requested_steps(layout)) == 1
    assert read_latest(storage_of(tmp_path), SESSION) == newest(layout)


def test_notices_none_never_asks_imds(tmp_path: Path, fake_imds: FakeImds,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLOPS_IMDS_ENDPOINT", fake_imds.url)
    fake_imds.set_instance_action("stop")
    layout = make_session(tmp_path, notices="none", total_timesteps=10)
    code, status = supervise(layout, notice_interval=0.05)
    assert code == 0 and status.state == "completed" and status.notice is None
    assert fake_imds.requests == []


def ec2_firmware(tmp_path: Path) -> str:
    """A /sys whose DMI data says Amazon EC2 (what a Nitro instance shows)."""
    sys_root = tmp_path / "sys"
    (sys_root / "class/dmi/id").mkdir(parents=True)
    (sys_root / "class/dmi/id/sys_vendor").write_text("Amazon EC2\n")
    return str(sys_root)


@pytest.mark.parametrize("trouble", ["slow", "dropped"])
def test_a_metadata_service_slow_at_start_still_delivers_the_notice(
        tmp_path: Path, fake_imds: FakeImds, monkeypatch: pytest.MonkeyPatch,
        trouble: str) -> None:
    """notices: auto on an EC2 instance by its DMI data, IMDS at run.json's endpoint. It
    answers slowly (beyond the 1 s timeout) or not at all for the first seconds: the
    supervisor says so in status.json, keeps going, keeps trying, and acts on the spot
    notice that follows (checkpoint, publish, `interrupted`)."""
    monkeypatch.delenv("RLOPS_IMDS_ENDPOINT")
    if trouble == "slow":
        fake_imds.delay = 1.5
    else:
        fake_imds.drop = True
    layout = make_session(tmp_path, imds_endpoint=fake_imds.url, env={
        "FAKE_CHECKPOINT_SECONDS": "3600", "FAKE_PROGRESS_SECONDS": "0.1"})
    run = SupervisorThread(layout, notice_interval=0.2, status_interval=0.2,
                           sys_root=ec2_firmware(tmp_path), notice_retry=(0.5, 1))
    run.start()
    try:
        wait_for(lambda: ((read_status(layout.status) or Status(SESSION)).notices or {}).get(
            "last_error"))
        notices = read_status(layout.status).notices
        assert (notices["mode"], notices["source"], notices["watching"]) == (
            "auto", "ec2-imds", False)
        assert notices["last_error"].startswith(f"IMDS at {fake_imds.url}: PUT")
        # The loop is not held up: the job's progress keeps reaching status.json.
        step = read_status(layout.status).step
        wait_for(lambda: read_status(layout.status).step > step, timeout=5)
        assert run.is_alive() and state_of(layout) == "running"

        fake_imds.delay, fake_imds.drop = 0.0, False
        wait_for(lambda: read_status(layout.status).notices["watching"], timeout=10)
        notices = read_status(layout.status).notices
        assert notices["last_error"] is None and notices["since"]
        status = interrupted_by_the_stop_notice(run, layout, fake_imds)
    finally:
        if run.is_alive():
            run.stop()
    [requested] = requested_steps(layout)
    assert read_latest(storage_of(tmp_path), SESSION) == newest(layout) >= requested > 0
    assert status.last_synced_step == newest(layout) and status.unsynced_steps == []
    assert stored_status(tmp_path)["notices"]["watching"] is True


def test_notices_auto_off_ec2_never_asks_imds(tmp_path: Path, fake_imds: FakeImds,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RLOPS_IMDS_ENDPOINT")
    fake_imds.set_instance_action("stop")
    layout = make_session(tmp_path, imds_endpoint=fake_imds.url, total_timesteps=10)
    code, status = supervise(layout, notice_interval=0.05, sys_root=str(tmp_path / "sys"))
    assert code == 0 and status.state == "completed" and status.notice is None
    assert fake_imds.requests == []
    assert status.notices == {"mode": "auto", "source": None, "watching": False,
                              "since": None, "last_error": None}


@pytest.mark.parametrize("key, value", [
    ("notices", "ec2"), ("on_rebalance", "ignore"), ("imds_endpoint", "169.254.169.254"),
    ("final_sync_timeout", -1), ("final_sync_timeout", "3m"),
])
def test_run_config_rejects_bad_notice_settings(key: str, value: str) -> None:
    with pytest.raises(ValueError, match=key):
        RunConfig.from_dict({"session_id": SESSION, "storage_uri": "file:///s", key: value})


def test_sigterm_stops_after_a_newer_checkpoint(tmp_path: Path) -> None:
    """The foreground `rlops-run run` as systemd runs it, stopped with SIGTERM."""
    layout = make_session(tmp_path, env={"FAKE_CHECKPOINT_SECONDS": "0.3"})
    layout.storage_env.write_text("FAKE_CREDENTIAL=s3cret\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlops_runtime.cli", "run", "--session-dir", str(layout.root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while newest(layout) is None or state_of(layout) != "running":
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        before = newest(layout)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    status = read_status(layout.status)
    assert status.state == "stopped" and status.supervisor_pid == proc.pid
    after = newest(layout)
    assert after > before
    assert read_latest(storage_of(tmp_path), SESSION) == after == status.last_synced_step
    log = layout.job_log.read_text()
    assert "(requested)" in log and "credential=yes" in log
    keys = storage_of(tmp_path).list_keys(f"{SESSION}/")
    assert f"{SESSION}/config/run.json" in keys
    assert f"{SESSION}/config/storage.env" not in keys
    assert f"{SESSION}/logs/job.log" in keys
    assert "FAKE_CREDENTIAL" not in os.environ


def test_a_second_supervisor_is_refused_before_it_writes(tmp_path: Path) -> None:
    layout = make_session(tmp_path)
    holder = lock_session(layout)
    try:
        layout.status.unlink(missing_ok=True)
        with pytest.raises(SessionBusy, match="already has a running supervisor"):
            Supervisor(layout, RunConfig.load(layout.run_json)).run()
        assert not layout.status.exists()
    finally:
        os.close(holder)


def test_unfinished_writes_of_a_killed_job_are_cleaned_at_start(tmp_path: Path) -> None:
    layout = make_session(tmp_path, total_timesteps=5)
    partial = layout.checkpoints / ".tmp-3-999999"
    partial.mkdir(parents=True)
    (partial / "model.bin").write_bytes(b"half written")
    code, status = supervise(layout)
    assert code == 0 and status.state == "completed"
    assert not partial.exists() and newest(layout) == 5


def running(pid: int) -> bool:
    """The process exists and is not a zombie (nothing may reap an orphan here)."""
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def test_a_killed_supervisor_takes_its_job_down_with_a_checkpoint(tmp_path: Path) -> None:
    """SIGKILL leaves no supervisor to stop the job: the kernel's parent-death signal does
    (SIGTERM: the job checkpoints and exits), so it never trains on unsupervised until the
    unit's stop timeout, and the restarted supervisor resumes from that checkpoint."""
    layout = make_session(tmp_path, env={"FAKE_CHECKPOINT_SECONDS": "30"})
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlops_runtime.cli", "run", "--session-dir", str(layout.root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while state_of(layout) != "running" or read_status(layout.status).pid is None:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        job = read_status(layout.status).pid
        time.sleep(0.5)  # the job has stepped on since its start
        proc.kill()
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while running(job):
            assert time.monotonic() < deadline, "the job outlived its supervisor"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "(sigterm)" in layout.job_log.read_text()
    assert newest(layout) is not None and newest(layout) > 0


def test_the_parent_death_signal_is_set_before_exec() -> None:
    preexec = term_when_parent_dies()
    assert preexec is not None
    child = subprocess.run(
        [sys.executable, "-c", "import ctypes; s = ctypes.c_int();"
         "ctypes.CDLL(None).prctl(2, ctypes.byref(s), 0, 0, 0); print(s.value)"],
        preexec_fn=preexec, capture_output=True, text=True, check=True, timeout=30)
    assert int(child.stdout) == signal.SIGTERM
