"""rlops_runtime.control: `rlops-run session start|stop|wait`, one call with a JSON answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import fake_job_session
from rlops_runtime.control import (
    Session,
    control,
    plan,
    settled,
    stop_status,
    stop_timeout,
    unit_files,
)
from rlops_runtime.daemon import pid_alive
from rlops_runtime.session import SessionLayout
from rlops_runtime.status import Status, write_status

SESSION = "ctl-20261206t000000z"


def make_session(data_root: Path, **run: object) -> SessionLayout:
    return fake_job_session(data_root, SESSION, **run)


def session_cmd(layout: SessionLayout, *args: str) -> tuple[int, dict]:
    proc = subprocess.run([sys.executable, "-m", "rlops_runtime.cli", "session", *args,
                           "--session-dir", str(layout.root), "--json"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


# --------------------------------------------------------------------------- decisions


@pytest.mark.parametrize("before, kwargs, actions", [
    (None, {}, ["start"]),
    ({"state": "running", "supervisor_alive": True}, {}, []),
    ({"state": "running", "supervisor_alive": True}, {"restart": True}, ["restart"]),
    ({"state": "lost", "supervisor_alive": False}, {}, ["start"]),
    ({"state": "stopped", "supervisor_alive": False}, {}, ["start"]),
    ({"state": "completed", "supervisor_alive": False}, {}, []),
    ({"state": "completed", "supervisor_alive": False}, {"restart": True}, ["start"]),
    ({"state": "stopped", "supervisor_alive": False, "unsynced_steps": [4]}, {},
     ["publish", "start"]),
    ({"state": "running", "supervisor_alive": True, "unsynced_steps": [4]}, {}, []),
])
def test_plan_start_with_the_process_manager(before, kwargs, actions):
    assert plan("started", "process", before, **kwargs).actions == actions


def test_plan_start_under_systemd_writes_units_and_resets_a_failed_one():
    failed = plan("started", "systemd", {"state": "failed", "supervisor_alive": False})
    assert failed.actions == ["unit_files", "reset_failed", "start"] and failed.enable is True
    running = plan("started", "systemd", {"state": "running", "supervisor_alive": True},
                   unit_active=True, enable=False)
    assert running.actions == ["unit_files"] and running.enable is False
    # A completed session is not started again, nor at boot.
    done = plan("started", "systemd", {"state": "completed", "supervisor_alive": False})
    assert done.actions == ["unit_files"] and done.enable is False and not done.starts


def test_plan_stop():
    running = {"state": "running", "supervisor_alive": True}
    assert plan("stopped", "process", running).actions == ["stop"]
    assert plan("stopped", "process", {"state": "stopped"}).actions == []
    assert plan("stopped", "process", None).actions == []
    under_systemd = plan("stopped", "systemd", running, unit_active=True)
    assert under_systemd.actions == ["stop"] and under_systemd.enable is False
    assert plan("stopped", "systemd", {"state": "stopped"}).actions == []


@pytest.mark.parametrize("want, status, before_pid, started, answer", [
    ("started", None, None, True, None),
    ("started", {"state": "running", "supervisor_pid": 7}, 7, True, None),  # the old one
    ("started", {"state": "running", "supervisor_pid": 8}, 7, True, True),
    ("started", {"state": "completed", "supervisor_pid": 8}, 7, True, True),
    ("started", {"state": "starting", "supervisor_pid": 8}, 7, True, None),
    ("started", {"state": "failed", "supervisor_pid": 8}, 7, True, False),
    ("started", {"state": "running", "supervisor_pid": 7}, 7, False, True),
    ("stopped", {"state": "stopping"}, 7, False, None),
    ("stopped", {"state": "stopped"}, 7, False, True),
])
def test_settled(want, status, before_pid, started, answer):
    assert settled(want, status, before_pid, started) is answer


def test_unit_files_name_the_user_venv_and_data_root():
    files = unit_files("/data", SESSION, "trainer", "staff", "/data/venvs/abc/bin/rlops-run", 95)
    template = files["rlops-trainer@.service"]
    assert "RequiresMountsFor=/data\n" in template and "ReadWritePaths=/data\n" in template
    assert "EnvironmentFile=-/data/sessions/%i/config/storage.env\n" in template
    dropin = files[f"rlops-trainer@{SESSION}.service.d/session.conf"]
    assert "User=trainer\nGroup=staff\nExecStart=\n" in dropin
    assert (f"ExecStart=/data/venvs/abc/bin/rlops-run run --session-dir /data/sessions/{SESSION}\n"
            in dropin)
    assert "TimeoutStopSec=95\n" in dropin


def test_a_stop_always_says_where_the_session_is():
    stopped = {"session_id": SESSION, "state": "stopped"}
    assert stop_status(SESSION, stopped) is stopped
    assert stop_status(SESSION, None) == {"session_id": SESSION, "state": "new",
                                          "supervisor_alive": False}


def test_stop_timeout_takes_the_sessions_settings():
    assert stop_timeout({"stop_grace": 10, "final_sync_timeout": 5}, 30) == 45
    assert stop_timeout(None, 60) == 300  # the runtime's defaults, 60 and 180


# --------------------------------------------------------------------------- systemd, recorded


class FakeSystemctl:
    """systemctl as a recorder: `is-active` and `is-enabled` answer from its state."""

    def __init__(self, active: bool = False, enabled: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.active, self.enabled = active, enabled

    def __call__(self, argv, **_kwargs):
        assert argv[0] == "systemctl", argv
        self.calls.append(argv[1:])
        rc = 0
        if argv[1] == "is-active":
            rc = 0 if self.active else 3
        elif argv[1] == "is-enabled":
            rc = 0 if self.enabled else 1
        return subprocess.CompletedProcess(argv, rc, "", "")

    @property
    def changes(self) -> list[list[str]]:
        return [c for c in self.calls if c[0] not in ("is-active", "is-enabled")]


def test_systemd_check_mode_writes_and_runs_nothing(tmp_path):
    layout = make_session(tmp_path / "data")
    fake = FakeSystemctl()
    session = Session(layout, "systemd", "/v/bin/rlops-run", unit_dir=tmp_path / "units", run=fake)
    answer = control(session, "started", check=True)
    assert answer["ok"] and answer["changed"]
    assert answer["actions"] == ["unit_files", "start", "enable"]
    assert fake.changes == [] and not (tmp_path / "units").exists()


def test_systemd_completed_session_is_only_disabled(tmp_path):
    layout = make_session(tmp_path / "data")
    write_status(layout.status, Status(SESSION, state="completed", supervisor_pid=None))
    units, fake = tmp_path / "units", FakeSystemctl(enabled=True)
    session = Session(layout, "systemd", "/v/bin/rlops-run", unit_dir=units, run=fake)
    answer = control(session, "started")
    assert answer["ok"] and answer["actions"] == ["unit_files", "disable"]
    assert fake.changes == [["daemon-reload"], ["disable", session.unit]]
    assert (units / f"{session.unit}.d/session.conf").read_text().count("ExecStart=/v/bin/") == 1
    # The same again: the unit files are as wanted, nothing is reloaded.
    fake.enabled, fake.calls = False, []
    again = control(session, "started")
    assert again["ok"] and not again["changed"] and fake.changes == []
    assert again["status"]["state"] == "completed"


def test_systemd_stop_of_an_inactive_unit_changes_nothing(tmp_path):
    layout = make_session(tmp_path / "data")
    fake = FakeSystemctl()
    session = Session(layout, "systemd", "/v/bin/rlops-run", unit_dir=tmp_path / "u", run=fake)
    answer = control(session, "stopped")
    assert answer["ok"] and not answer["changed"] and fake.changes == []


# --------------------------------------------------------------------------- process, for real


def test_session_start_stop_with_the_process_manager(tmp_path):
    layout = make_session(tmp_path)
    code, started = session_cmd(layout, "start", "--timeout", "30")
    assert code == 0, started
    assert started["ok"] and started["changed"] and started["actions"] == ["start"]
    assert started["before"] is None and started["status"]["state"] == "running"
    pid = started["status"]["supervisor_pid"]
    try:
        assert pid_alive(pid)
        code, again = session_cmd(layout, "start")
        assert (code, again["changed"], again["actions"]) == (0, False, [])
        assert again["status"]["supervisor_pid"] == pid
        code, would = session_cmd(layout, "start", "--restart", "--check")
        assert (code, would["changed"], would["actions"]) == (0, True, ["restart"])
        assert pid_alive(pid)
        code, restarted = session_cmd(layout, "start", "--restart", "--timeout", "30")
        assert code == 0 and restarted["actions"] == ["restart"], restarted
        new_pid = restarted["status"]["supervisor_pid"]
        assert new_pid != pid and not pid_alive(pid) and restarted["status"]["state"] == "running"
        pid = new_pid
        code, stopped = session_cmd(layout, "stop")
        assert code == 0 and stopped["actions"] == ["stop"], stopped
        assert stopped["status"]["state"] == "stopped" and not pid_alive(pid)
        code, again = session_cmd(layout, "stop")
        assert (code, again["changed"], again["status"]["state"]) == (0, False, "stopped")
    finally:
        if pid_alive(pid):
            os.kill(pid, 9)


def test_a_job_that_cannot_start_is_reported_with_the_reason(tmp_path):
    layout = make_session(tmp_path, command=["/nonexistent/job"])
    code, answer = session_cmd(layout, "start", "--timeout", "30")
    assert code == 1 and not answer["ok"] and answer["status"]["state"] == "failed"
    assert answer["msg"].startswith(
        f"session {SESSION} is not started (process, waited up to 30 s): state failed, "
        "cannot start /nonexistent/job")


def test_a_job_that_fails_is_reported_with_its_log(tmp_path):
    """The job fails after the supervisor ran it: `session wait` sees it end, with the log."""
    layout = make_session(tmp_path, env={"FAKE_EXIT_CODE": "3"})
    session_cmd(layout, "start", "--timeout", "30")
    code, answer = session_cmd(layout, "wait", "--until", "completed", "--timeout", "30")
    assert code == 1 and not answer["ok"], answer
    assert "state failed" in answer["msg"]
    assert "fatal: the fake job was told to fail" in answer["log_tail"]


def test_start_of_an_unknown_session_says_so(tmp_path):
    layout = SessionLayout.for_session(tmp_path, SESSION)
    layout.root.mkdir(parents=True)
    code, answer = session_cmd(layout, "start")
    assert code == 1 and answer["msg"] == f"session {SESSION} has no {layout.run_json}"
    # In check mode a new session (no run.json yet) would be started.
    code, would = session_cmd(layout, "start", "--check")
    assert (code, would["actions"], would["changed"]) == (0, ["start"], True)
