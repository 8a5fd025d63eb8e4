"""rlops_runtime.host_sessions: the session layer's decisions, and its verbs as the playbooks
run them (`rlops-run session locate|status|stop|pack|evaluate --data-root R --session S`)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import fake_job_session
from rlops_runtime import session_contract as contract
from rlops_runtime.contract import save_checkpoint
from rlops_runtime.daemon import pid_alive
from rlops_runtime.host_sessions import (
    BACKENDS,
    Backend,
    LayerError,
    backend_for,
    pick_manager,
    publish_targets,
    wanted_files,
)
from rlops_runtime.jsonio import utc_iso
from rlops_runtime.session import SessionLayout
from rlops_runtime.status import Status, write_status

SESSION = "layer-20261206t000000z"
OTHER = "other-20261206t000000z"


def make_session(data_root: Path, session: str = SESSION, **run: object) -> SessionLayout:
    return fake_job_session(data_root, session, **run)


def layer(data_root: Path, action: str, *args: str, stdin: str = "") -> tuple[int, dict, str]:
    proc = subprocess.run([sys.executable, "-m", "rlops_runtime.cli", "session", action,
                           "--data-root", str(data_root), *args],
                          input=stdin, capture_output=True, text=True, timeout=120, check=False)
    return proc.returncode, json.loads(proc.stdout) if proc.stdout else {}, proc.stderr


# --------------------------------------------------------------------------- decisions


def test_backend_from_run_json_defaults_to_the_supervisor():
    # The name's rules are the contract's (test_session_contract); the registry follows them.
    assert backend_for({"session_id": SESSION}) is BACKENDS["supervisor"]
    assert backend_for({"backend": ""}) is BACKENDS["supervisor"]


def test_the_registry_has_the_contracts_backends():
    assert set(BACKENDS) == set(contract.BACKEND_NAMES)
    assert all(BACKENDS[name].name == name for name in BACKENDS)


def test_an_unknown_backend_is_refused_with_the_known_ones():
    with pytest.raises(LayerError, match=(f"session {SESSION} runs on backend 'racer', which "
                                          "this runtime does not have \\(it has deepracer, ray, "
                                          "supervisor\\)")):
        backend_for({"session_id": SESSION, "backend": "racer"})


def test_a_backend_is_one_registry_entry():
    racer = Backend("racer", start=lambda s, **o: {"ok": True}, stop=lambda s, **o: {"ok": True},
                    status=lambda s: None)
    assert backend_for({"backend": "racer"}, {**BACKENDS, "racer": racer}) is racer
    assert backend_for({"backend": "ray"}) is BACKENDS["ray"]


@pytest.mark.parametrize("asked, detached, unit, booted, manager", [
    ("systemd", False, False, False, "systemd"),
    ("process", False, True, True, "process"),
    ("auto", True, True, True, "process"),     # started detached, whatever units exist
    ("auto", False, True, True, "systemd"),
    ("auto", False, True, False, "process"),   # a unit file but no systemd (a container)
    ("auto", False, False, True, "process"),
])
def test_pick_manager(asked, detached, unit, booted, manager):
    assert pick_manager(asked, detached, unit, booted) == manager


def test_publish_targets_only_sessions_whose_supervisor_is_gone():
    records = [
        {"session_id": "a", "unsynced_steps": [4], "supervisor_alive": False},
        {"session_id": "b", "unsynced_steps": [4], "supervisor_alive": True},
        {"session_id": "c", "unsynced_steps": [], "supervisor_alive": False},
        {"session_id": "d", "unsynced_steps": [4], "supervisor_alive": None},  # another host's
        {"session_id": "e"},
    ]
    assert publish_targets(records) == ["a"]


def test_wanted_files_are_new_or_changed_and_never_credentials():
    here = {"logs/job.log": "2", "report/summary.json": "3", "config/run.json": "4",
            "config/storage.env": "5", "source/train.py": "6", "supervisor.pid": "7",
            "checkpoints/.tmp-000000000008/model.zip": "8",
            "checkpoints/.damaged-000000000004/model.zip": "9"}
    have = {"logs/job.log": "1", "config/run.json": "4"}
    assert wanted_files(here, have) == ["logs/job.log", "report/summary.json"]


# --------------------------------------------------------------------------- the verbs


def test_locate_says_here_owner_backend_and_known_sessions(tmp_path):
    make_session(tmp_path)
    storage = tmp_path / "storage"
    (storage / OTHER / "checkpoints").mkdir(parents=True)
    code, found, _err = layer(tmp_path, "locate", "--session", SESSION,
                              "--storage-uri", f"file://{storage}", "--storage-env-stdin",
                              stdin="{}")
    assert code == 0
    assert found["here"] and found["backend"] == "supervisor" and found["manager"] == "process"
    assert found["owner"] and found["known"] == sorted([SESSION, OTHER])
    assert not found["in_storage"] and found["storage_error"] is None

    code, missing, _err = layer(tmp_path, "locate", "--session", OTHER,
                                "--storage-uri", f"file://{storage}")
    assert code == 0 and not missing["here"] and missing["in_storage"] and missing["owner"] == ""


def test_locate_with_storage_away_still_lists_the_hosts_sessions(tmp_path):
    make_session(tmp_path)
    code, found, _err = layer(tmp_path, "locate", "--session", SESSION,
                              "--storage-uri", "s3://rl-nowhere/x", "--storage-env-stdin",
                              stdin=json.dumps({"RLOPS_S3_ENDPOINT_URL": "http://127.0.0.1:9",
                                                "AWS_ACCESS_KEY_ID": "x",
                                                "AWS_SECRET_ACCESS_KEY": "y",
                                                "AWS_DEFAULT_REGION": "us-east-1"}))
    assert code == 0 and found["here"] and found["known"] == [SESSION]
    assert "cannot reach the S3 endpoint http://127.0.0.1:9" in found["storage_error"]


def test_a_bad_session_id_is_refused_before_anything(tmp_path):
    code, answer, err = layer(tmp_path, "locate", "--session", "Bad_Id")
    assert code == 2 and answer == {} and "session id 'Bad_Id' is invalid" in err


def _left_behind(tmp_path: Path) -> SessionLayout:
    """A session whose supervisor is gone with a checkpoint storage lacks."""
    layout = make_session(tmp_path)
    save_checkpoint(layout.checkpoints, 8, lambda tmp: (tmp / "model.zip").write_bytes(b"m"),
                    session=SESSION)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout
    write_status(layout.status, Status(session_id=SESSION, state="completed",
                                       supervisor_pid=int(dead), host=os.uname().nodename,
                                       step=8, last_checkpoint_step=8, updated=utc_iso(),
                                       unsynced_steps=[8]))
    return layout


def test_status_publishes_what_storage_lacks_and_check_only_says_so(tmp_path):
    _left_behind(tmp_path)
    code, would, _err = layer(tmp_path, "status", "--check")
    assert code == 0 and would["changed"], would
    assert [(p["session_id"], p["sent"]) for p in would["publishes"]] == [(SESSION, [8])]
    assert would["records"][0]["unsynced_steps"] == [8]
    assert not (tmp_path / "storage" / SESSION).exists()

    code, done, _err = layer(tmp_path, "status")
    assert code == 0 and done["changed"] and done["publishes"][0]["sent"] == [8]
    assert done["records"][0]["unsynced_steps"] == []  # read again after publishing
    assert (tmp_path / "storage" / SESSION / "checkpoints" / "LATEST").read_text().strip() == "8"

    code, again, _err = layer(tmp_path, "status", "--session", SESSION)
    assert code == 0 and not again["changed"] and again["publishes"] == []
    code, elsewhere, _err = layer(tmp_path, "status", "--session", OTHER)
    assert code == 0 and elsewhere["records"] == []  # not on this host: no record, no failure


def test_stop_by_data_root_and_session_through_the_backend(tmp_path):
    layout = make_session(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "rlops_runtime.cli", "session", "start",
                           "--session-dir", str(layout.root), "--timeout", "30"],
                          capture_output=True, text=True, timeout=120, check=False)
    pid = json.loads(proc.stdout)["status"]["supervisor_pid"]
    try:
        code, would, _err = layer(tmp_path, "stop", "--session", SESSION, "--manager", "auto",
                                  "--check")
        assert code == 0 and would["actions"] == ["stop"] and would["manager"] == "process"
        assert pid_alive(pid)
        code, stopped, _err = layer(tmp_path, "stop", "--session", SESSION, "--manager", "auto")
        assert code == 0 and stopped["actions"] == ["stop"], stopped
        assert stopped["status"]["state"] == "stopped" and not pid_alive(pid)
        code, again, _err = layer(tmp_path, "stop", "--session", SESSION, "--manager", "auto")
        assert (code, again["changed"]) == (0, False)
    finally:
        if pid_alive(pid):
            os.kill(pid, 9)


def test_stop_of_a_session_that_never_ran_says_so(tmp_path):
    make_session(tmp_path)  # its config, no status.json: prepared, never started here
    for check in ([], ["--check"]):
        code, answer, _err = layer(tmp_path, "stop", "--session", SESSION, "--manager", "auto",
                                   *check)
        assert (code, answer["ok"], answer["changed"], answer["before"]) == (0, True, False, None)
        assert answer["manager"] == "process" and answer["status"]["state"] == "new", answer


def test_stop_of_a_session_on_an_unknown_backend_changes_nothing(tmp_path):
    make_session(tmp_path, backend="racer")
    code, answer, _err = layer(tmp_path, "stop", "--session", SESSION, "--manager", "auto")
    assert code == 1 and not answer["ok"]
    assert answer["msg"] == (f"session {SESSION} runs on backend 'racer', which this runtime "
                             "does not have (it has deepracer, ray, supervisor)")


def test_pack_brings_what_the_controller_lacks_without_credentials(tmp_path):
    layout = _left_behind(tmp_path)
    layout.storage_env.write_text("AWS_SECRET_ACCESS_KEY=s\n")
    layout.job_log.write_text("line\n")
    code, would, _err = layer(tmp_path, "pack", "--session", SESSION, "--check",
                              stdin=json.dumps({"have": {}}))
    assert code == 0 and would["pack"] is None and "logs/job.log" in would["files"]
    assert "config/storage.env" not in would["files"]
    assert not layout.report_dir.joinpath("summary.json").exists()  # check mode writes nothing

    code, packed, _err = layer(tmp_path, "pack", "--session", SESSION,
                               stdin=json.dumps({"have": {}}))
    try:
        assert code == 0 and "report/summary.json" in packed["files"]
        with tarfile.open(packed["pack"]) as archive:
            names = sorted(archive.getnames())
            log = archive.extractfile("logs/job.log")
            assert log is not None and io.BytesIO(log.read()).read() == b"line\n"
        assert names == packed["files"] and "config/storage.env" not in names
    finally:
        Path(packed["pack"]).unlink()


def test_pack_and_evaluate_of_a_session_not_here_say_so(tmp_path):
    code, _answer, err = layer(tmp_path, "pack", "--session", SESSION, stdin="{}")
    assert code == 2 and f"session {SESSION} is not on this host" in err
    code, _answer, err = layer(tmp_path, "evaluate", "--session", SESSION)
    assert code == 2 and f"session {SESSION} is not on this host" in err


def test_evaluate_check_names_the_checkpoint_and_runs_nothing(tmp_path):
    layout = _left_behind(tmp_path)
    code, would, _err = layer(tmp_path, "evaluate", "--session", SESSION, "--episodes", "3",
                              "--check")
    assert code == 0 and (would["checkpoint"], would["episodes"], would["result"]) == (8, 3, None)
    assert list(layout.eval_dir.iterdir()) == []
    code, _answer, err = layer(tmp_path, "evaluate", "--session", SESSION, "--episodes", "0")
    assert code == 2 and "--episodes must be >= 1, got 0" in err


def test_status_of_a_session_on_an_unknown_backend_says_so_and_shows_the_others(tmp_path):
    _left_behind(tmp_path)
    racer = make_session(tmp_path, OTHER, backend="racer")
    write_status(racer.status, Status(session_id=OTHER, state="running"))
    code, answer, _err = layer(tmp_path, "status", "--check")
    assert code == 0
    by_id = {r["session_id"]: r for r in answer["records"]}
    assert by_id[SESSION]["state"] == "completed"
    assert by_id[OTHER]["state"] == "unknown"
    assert "runs on backend 'racer', which this runtime does not have" in by_id[OTHER][
        "exit_reason"]
