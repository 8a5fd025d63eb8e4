"""rlops-run: detached start/stop, status with `lost`, validation and error lines."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import pytest
from rlops_runtime.cli import main, status_entry
from rlops_runtime.daemon import pid_alive, read_pid
from rlops_runtime.jsonio import write_json_atomic
from rlops_runtime.session import SessionLayout
from rlops_runtime.status import Status, read_status, write_status

FAKE_JOB = Path(__file__).with_name("fake_job.py")
FAKE_IMDS = Path(__file__).with_name("fake_imds.py")
SESSION = "cli-20261122t000000z"


def make_session(data_root: Path, **run: object) -> SessionLayout:
    layout = SessionLayout.for_session(data_root, SESSION).create()
    write_json_atomic(layout.run_json, {
        "session_id": SESSION,
        "storage_uri": f"file://{data_root / 'storage'}",
        "command": [sys.executable, str(FAKE_JOB)],
        "total_timesteps": 10**9,
        "sync_interval": 0.5,
        "stop_grace": 10,
        **run,
    })
    return layout


def rlops_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rlops_runtime.cli", *args],
                          capture_output=True, text=True, timeout=60, check=False)


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_detached_start_and_stop(tmp_path: Path) -> None:
    layout = make_session(tmp_path)
    started = rlops_run("start", "--session-dir", str(layout.root))
    assert started.returncode == 0, started.stderr
    first = json.loads(started.stdout)
    pid = read_pid(layout.pidfile)
    assert first["supervisor_pid"] == pid and pid_alive(pid)
    try:
        deadline = time.monotonic() + 20
        while read_status(layout.status).state != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        again = rlops_run("start", "--session-dir", str(layout.root))
        assert again.returncode == 2 and "already supervised" in again.stderr
        stopped = rlops_run("stop", "--session-dir", str(layout.root), "--timeout", "30")
        assert (stopped.returncode, stopped.stdout.strip()) == (0, "stopped")
    finally:
        if pid_alive(pid):
            os.kill(pid, 9)
    assert not layout.pidfile.exists() and not pid_alive(pid)
    status = read_status(layout.status)
    assert status.state == "stopped" and status.last_checkpoint_step
    assert "session cli-20261122t000000z: stopped" in layout.supervisor_log.read_text()
    # Already terminal: a no-op that reports the state.
    again = rlops_run("stop", "--session-dir", str(layout.root))
    assert (again.returncode, again.stdout.strip()) == (0, "stopped")
    listed = json.loads(rlops_run("status", "--data-root", str(tmp_path)).stdout)
    assert [(e["session_id"], e["state"]) for e in listed] == [(SESSION, "stopped")]


def test_run_on_ec2_stops_on_a_spot_notice(tmp_path: Path) -> None:
    """`rlops-run run` with notices "auto" (run.json's default) and the fake IMDSv2 run as
    a script, as a lab container would reach it. The notice is there from the start (the
    CLI polls every 5 s): the wiring is tested here, the checkpoint in test_supervisor."""
    imds = subprocess.Popen([sys.executable, str(FAKE_IMDS), "--port", "0"],
                            stdout=subprocess.PIPE, text=True)
    try:
        url = imds.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        notice = json.dumps({"action": "stop", "time": "2026-11-22T08:00:00Z"}).encode()
        urllib.request.urlopen(urllib.request.Request(
            f"{url}/_control/spot/instance-action", data=notice, method="PUT"), timeout=5).close()
        layout = make_session(tmp_path)
        result = subprocess.run(
            [sys.executable, "-m", "rlops_runtime.cli", "run", "--session-dir", str(layout.root)],
            env={**os.environ, "RLOPS_IMDS_ENDPOINT": url}, capture_output=True, text=True,
            timeout=60, check=False)
    finally:
        imds.terminate()
        assert imds.wait(timeout=10) == 0
    assert result.returncode == 0, result.stderr
    status = read_status(layout.status)
    reason = "spot instance-action: stop at 2026-11-22T08:00:00Z"
    assert (status.state, status.notice, status.exit_reason) == ("interrupted", reason, reason)
    log = layout.supervisor_log.read_text()
    assert f"watching EC2 instance metadata (IMDSv2) at {url}" in log
    assert f"notice: {reason}" in log


def test_start_reports_a_supervisor_that_dies(tmp_path: Path) -> None:
    layout = make_session(tmp_path, storage_uri="s3://")
    result = rlops_run("start", "--session-dir", str(layout.root), "--timeout", "20")
    assert result.returncode == 1
    assert "did not start" in result.stderr and "has no bucket" in result.stderr


def test_status_reports_lost_for_a_dead_supervisor(tmp_path: Path, capsys) -> None:
    layout = make_session(tmp_path)
    write_status(layout.status, Status(SESSION, state="running", supervisor_pid=dead_pid(),
                                       host=socket.gethostname(),
                                       last_checkpoint_time="2026-11-22T05:00:00Z"))
    code, out, _err = run_main(capsys, "status", "--data-root", str(tmp_path), "--session", SESSION)
    assert code == 0
    [entry] = json.loads(out)
    assert entry["state"] == "lost" and entry["checkpoint_age_s"] > 0
    code, out, _err = run_main(capsys, "stop", "--session-dir", str(layout.root))
    assert (code, out.strip()) == (0, "lost")


def test_status_entry_only_judges_supervisors_on_this_host() -> None:
    now = datetime(2026, 11, 22, 5, 1, tzinfo=timezone.utc)
    status = Status(SESSION, state="running", supervisor_pid=dead_pid(), host="elsewhere",
                    last_checkpoint_time="2026-11-22T05:00:00Z")
    assert status_entry(status, "here", now)["state"] == "running"
    entry = status_entry(status, "elsewhere", now)
    assert entry["state"] == "lost" and entry["checkpoint_age_s"] == 60


def test_stop_refuses_a_supervisor_without_pidfile(tmp_path: Path, capsys) -> None:
    layout = make_session(tmp_path)
    write_status(layout.status, Status(SESSION, state="running", supervisor_pid=os.getpid(),
                                       host=socket.gethostname()))
    code, _out, err = run_main(capsys, "stop", "--session-dir", str(layout.root))
    assert code == 2 and "without a pidfile" in err


def test_validate(tmp_path: Path, capsys) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"n_steps": 64, "learning_rate": "lin_0.0003"}))
    assert run_main(capsys, "validate", "--env-id", "CartPole-v1", "--algo", "ppo",
                    "--hyperparameters", str(good))[:2] == (0, "ok\n")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"n_step": 64, "gamma": "high"}))
    code, _out, err = run_main(capsys, "validate", "--env-id", "CartPol-v1",
                               "--hyperparameters", str(bad))
    assert code == 2 and err.count("\n") == 1 and err.startswith("rlops-run: error: ")
    assert "'n_step' is not a PPO hyperparameter (did you mean 'n_steps'?)" in err
    assert "gamma must be a number" in err and "CartPole-v1" in err
    broken = tmp_path / "broken.json"
    broken.write_text("{'n_steps': 64}")
    code, _out, err = run_main(capsys, "validate", "--env-id", "CartPole-v1",
                               "--hyperparameters", str(broken))
    assert code == 2 and "not valid JSON" in err and err.count("\n") == 1


def test_check_storage(tmp_path: Path, capsys) -> None:
    uri = f"file://{tmp_path / 'storage'}"
    assert run_main(capsys, "check-storage", uri)[:2] == (0, f"ok: {uri}\n")
    code, _out, err = run_main(capsys, "check-storage", "ftp://host/x")
    assert code == 2 and "unsupported storage URI" in err and err.count("\n") == 1


def test_sessions_lists_local_and_stored(tmp_path: Path, capsys, make_checkpoint) -> None:
    make_session(tmp_path)
    storage = tmp_path / "storage"
    (storage / "other-20261122t000000z" / "logs").mkdir(parents=True)
    code, out, _err = run_main(capsys, "sessions", "--data-root", str(tmp_path),
                               "--storage-uri", f"file://{storage}")
    assert code == 0 and json.loads(out) == [
        {"session_id": SESSION, "local": True, "storage": False},
        {"session_id": "other-20261122t000000z", "local": False, "storage": True},
    ]


def test_sessions_check_first_checks_storage(tmp_path: Path, capsys) -> None:
    storage = tmp_path / "storage"
    code, out, _err = run_main(capsys, "sessions", "--data-root", str(tmp_path),
                               "--storage-uri", f"file://{storage}")
    assert code == 0 and json.loads(out) == [] and not storage.exists()  # no check: no write
    code, out, _err = run_main(capsys, "sessions", "--check", "--data-root", str(tmp_path),
                               "--storage-uri", f"file://{storage}")
    assert code == 0 and json.loads(out) == []
    assert storage.is_dir()  # the check made the folder and wrote (and removed) its probe
    storage.chmod(0o500)
    try:
        code, out, err = run_main(capsys, "sessions", "--check", "--data-root", str(tmp_path),
                                  "--storage-uri", f"file://{storage}")
    finally:
        storage.chmod(0o700)
    if os.geteuid() != 0:  # root writes anyway
        assert code == 2 and out == "" and err.count("\n") == 1
    code, _out, err = run_main(capsys, "sessions", "--check", "--data-root", str(tmp_path))
    assert code == 2 and "--check needs --storage-uri" in err


def test_evaluate_without_checkpoint(tmp_path: Path, capsys) -> None:
    layout = make_session(tmp_path)
    code, _out, err = run_main(capsys, "evaluate", "--session-dir", str(layout.root),
                               "--episodes", "1")
    assert code == 2
    assert err == f"rlops-run: error: session {SESSION} has no complete checkpoint\n"


@pytest.mark.parametrize("args, message", [
    (["bogus"], "invalid choice"),
    (["evaluate", "--session-dir", "/x", "--episodes", "0"], "must be >= 1"),
    (["run", "--session-dir", "/nonexistent/s"], "does not exist"),
    (["status", "--data-root", "/tmp", "--session", "Bad_Id"], "invalid"),
])
def test_bad_input_is_one_line_exit_2(args: list[str], message: str, capsys) -> None:
    try:
        code = main(args)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("rlops-run: error: ") and err.count("\n") == 1 and message in err


def test_run_refuses_a_mismatched_session_id(tmp_path: Path, capsys) -> None:
    layout = make_session(tmp_path)
    write_json_atomic(layout.run_json, {"session_id": "other", "storage_uri": "file:///s"})
    code, _out, err = run_main(capsys, "run", "--session-dir", str(layout.root))
    assert code == 2 and "does not match" in err


def test_restore_downloads_missing_config_only(tmp_path: Path, capsys) -> None:
    storage = tmp_path / "storage"
    stored = storage / SESSION / "config"
    stored.mkdir(parents=True)
    (stored / "run.json").write_text(json.dumps({"session_id": SESSION}))
    (stored / "hyperparameters.json").write_text('{"n_steps": 64}')
    session_dir = tmp_path / "host" / "sessions" / SESSION
    (session_dir / "config").mkdir(parents=True)
    (session_dir / "config" / "hyperparameters.json").write_text('{"n_steps": 8}')
    args = ["restore", "--session-dir", str(session_dir), "--storage-uri", f"file://{storage}"]
    assert run_main(capsys, *args)[:2] == (0, '["run.json"]\n')
    assert (session_dir / "config" / "run.json").read_text() == (stored / "run.json").read_text()
    assert (session_dir / "config" / "hyperparameters.json").read_text() == '{"n_steps": 8}'
    assert run_main(capsys, *args)[:2] == (0, "[]\n")
    unknown = tmp_path / "host" / "sessions" / "nope-20261122t000000z"
    code, _out, err = run_main(capsys, "restore", "--session-dir", str(unknown),
                               "--storage-uri", f"file://{storage}")
    assert code == 2 and "is unknown to storage" in err


def test_requirements_lock_travels_with_config(tmp_path: Path, capsys) -> None:
    """The set a session's venv was installed with: shown from storage before a host that
    has only storage installs it, and restored with the rest of config/."""
    storage = tmp_path / "storage"
    stored = storage / SESSION / "config"
    stored.mkdir(parents=True)
    (stored / "run.json").write_text(json.dumps({"session_id": SESSION}))
    (stored / "requirements.lock").write_text("# python: 3.11\nnumpy==2.4.6\n")
    uri = f"file://{storage}"
    assert run_main(capsys, "show-config", "--storage-uri", uri, "--session", SESSION,
                    "requirements.lock")[:2] == (0, "# python: 3.11\nnumpy==2.4.6\n")
    # A session that recorded none (made before sessions recorded their set): nothing.
    assert run_main(capsys, "show-config", "--storage-uri", uri, "--session", SESSION,
                    "hyperparameters.json")[:2] == (0, "")
    with pytest.raises(SystemExit) as exited:  # credentials never leave the host
        main(["show-config", "--storage-uri", uri, "--session", SESSION, "storage.env"])
    assert exited.value.code == 2 and "invalid choice" in capsys.readouterr().err
    session_dir = tmp_path / "host" / "sessions" / SESSION
    args = ["restore", "--session-dir", str(session_dir), "--storage-uri", uri]
    assert run_main(capsys, *args)[:2] == (0, '["run.json", "requirements.lock"]\n')
    assert (session_dir / "config" / "requirements.lock").read_text() == \
        (stored / "requirements.lock").read_text()


def test_storage_env_comes_from_stdin_not_the_command_line(tmp_path, monkeypatch, capsys):
    """Credentials for storage commands arrive on stdin (a JSON object), so that neither
    the process list nor Ansible's -vvv output shows them."""
    import io

    from rlops_runtime import cli

    monkeypatch.setenv("RLOPS_TEST_SECRET", "")  # restored (removed) after the test
    seen = {}

    def fake_sessions(args):
        seen["secret"] = os.environ.get("RLOPS_TEST_SECRET")
        return 0

    monkeypatch.setattr(cli, "cmd_sessions", fake_sessions)
    monkeypatch.setattr("sys.stdin", io.StringIO('{"RLOPS_TEST_SECRET": "s3cr3t"}'))
    assert cli.main(["sessions", "--data-root", str(tmp_path), "--storage-env-stdin"]) == 0
    assert seen["secret"] == "s3cr3t"
    monkeypatch.setattr("sys.stdin", io.StringIO("AWS_SECRET_ACCESS_KEY=x"))
    assert cli.main(["sessions", "--data-root", str(tmp_path), "--storage-env-stdin"]) == 2
    assert "--storage-env-stdin reads one JSON object on stdin: " in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO('["AWS_SECRET_ACCESS_KEY"]'))
    assert cli.main(["sessions", "--data-root", str(tmp_path), "--storage-env-stdin"]) == 2
    assert ("--storage-env-stdin reads one JSON object on stdin, got list"
            in capsys.readouterr().err)
