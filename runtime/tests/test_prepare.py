"""rlops_runtime.prepare: `rlops-run session prepare`, a session made ready in one call."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rlops_runtime.prepare import PrepareError, Request, prepare, storage_env_text
from rlops_runtime.session import SessionLayout

SESSION = "prep-20261206t000000z"


def request(storage: Path, mode: str = "new", **extra) -> Request:
    settings = {"storage_uri": f"file://{storage}", "command": ["python", "train.py"],
                **extra.pop("settings", {})}
    return Request(mode=mode, settings=settings, **extra)


def cli(layout: SessionLayout, body: dict, *args: str) -> tuple[int, dict]:
    proc = subprocess.run([sys.executable, "-m", "rlops_runtime.cli", "session", "prepare",
                           "--session-dir", str(layout.root), "--json", *args],
                          input=json.dumps(body), capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_a_new_session_gets_its_config_record_and_credentials(tmp_path: Path) -> None:
    layout = SessionLayout.for_session(tmp_path / "host", SESSION)
    req = request(tmp_path / "storage", hyperparameters={"n_steps": 64}, record="# set\n",
                  credentials={"AWS_ACCESS_KEY_ID": "k"})
    answer = prepare(layout, req)
    assert answer["ok"] and answer["changed"]
    assert answer["changes"] == {"run.json": "written", "hyperparameters.json": "written"}
    assert answer["written"] == ["requirements.lock", "storage.env"]
    assert json.loads(layout.run_json.read_text())["session_id"] == SESSION
    assert json.loads(layout.hyperparameters.read_text()) == {"n_steps": 64}
    assert layout.requirements_lock.read_text() == "# set\n"
    assert layout.storage_env.read_text() == storage_env_text(SESSION, {"AWS_ACCESS_KEY_ID": "k"})
    assert layout.storage_env.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "storage").is_dir()  # storage was checked (a probe written)
    again = prepare(layout, req)
    assert not again["changed"] and again["changes"] == {} and again["written"] == []


def test_check_mode_says_what_would_change_and_changes_nothing(tmp_path: Path) -> None:
    layout = SessionLayout.for_session(tmp_path / "host", SESSION)
    answer = prepare(layout, request(tmp_path / "storage", record="# set\n"), check=True)
    assert answer["changed"] and answer["written"] == ["requirements.lock"]
    assert answer["changes"] == {"run.json": "written", "hyperparameters.json": "written"}
    assert not (tmp_path / "host").exists() and not (tmp_path / "storage").exists()


def test_a_new_session_that_storage_has_is_refused_before_anything_changes(tmp_path):
    storage = tmp_path / "storage"
    (storage / SESSION / "logs").mkdir(parents=True)
    layout = SessionLayout.for_session(tmp_path / "host", SESSION)
    with pytest.raises(PrepareError, match=f"session {SESSION} already exists in storage "
                                           f"file://{storage}: run resume.yml"):
        prepare(layout, request(storage))
    assert not layout.root.exists()


def test_a_new_session_with_local_checkpoints_is_refused(tmp_path: Path, make_checkpoint):
    layout = SessionLayout.for_session(tmp_path / "host", SESSION)
    make_checkpoint(layout.checkpoints, 100)
    with pytest.raises(PrepareError, match="already has checkpoints .*: run resume.yml"):
        prepare(layout, request(tmp_path / "storage"))
    assert not layout.run_json.exists()


def test_a_resumed_session_the_host_lost_comes_back_from_storage(tmp_path: Path) -> None:
    storage = tmp_path / "storage"
    first = SessionLayout.for_session(tmp_path / "old", SESSION)
    prepare(first, request(storage, record="# set\n", settings={"total_timesteps": 1000}))
    for name in ("run.json", "requirements.lock"):  # what the supervisor's sync would send
        (storage / SESSION / "config").mkdir(parents=True, exist_ok=True)
        (storage / SESSION / "config" / name).write_bytes((first.config_dir / name).read_bytes())
    layout = SessionLayout.for_session(tmp_path / "host", SESSION)
    more = request(storage, mode="resume", record="# other\n",
                   settings={"total_timesteps": 5000})
    looked = prepare(layout, more, check=True)
    assert looked["restored"] == ["run.json", "requirements.lock"] and not layout.root.exists()
    answer = prepare(layout, more)
    assert answer["restored"] == ["run.json", "requirements.lock"]
    assert answer["summary"] == ["total_timesteps 1000 -> 5000"]
    assert json.loads(layout.run_json.read_text())["total_timesteps"] == 5000
    assert layout.requirements_lock.read_text() == "# set\n"  # a resume keeps its set


def test_an_unknown_session_cannot_be_resumed_and_leaves_nothing(tmp_path: Path) -> None:
    layout = SessionLayout.for_session(tmp_path / "host", SESSION)
    for check in (True, False):
        with pytest.raises(PrepareError, match=f"session {SESSION} cannot be resumed: the host"):
            prepare(layout, request(tmp_path / "storage", mode="resume"), check=check)
    assert not layout.root.exists()


def test_a_resume_that_changes_what_it_may_not_is_refused(tmp_path: Path) -> None:
    layout = SessionLayout.for_session(tmp_path / "host", SESSION)
    prepare(layout, request(tmp_path / "storage", settings={"algo": "ppo"}))
    with pytest.raises(PrepareError, match=f"session {SESSION}: .*algo"):
        prepare(layout, request(tmp_path / "storage", mode="resume", settings={"algo": "dqn"}))


def test_the_command_answers_in_json_with_credentials_from_stdin(tmp_path: Path) -> None:
    layout = SessionLayout.for_session(tmp_path / "host", SESSION)
    body = {"mode": "new", "settings": {"storage_uri": f"file://{tmp_path / 's'}"},
            "hyperparameters": {"n_step": 64}, "validate": True,
            "credentials": {"RLOPS_TEST_TOKEN": "secret"}}
    code, answer = cli(layout, body)
    assert code == 1 and not answer["ok"]
    assert "'n_step' is not a PPO hyperparameter" in answer["msg"]
    assert not layout.root.exists()
    body["hyperparameters"] = {"n_steps": 64}
    code, answer = cli(layout, body, "--mode", "new")
    assert code == 0 and answer["ok"] and answer["changed"]
    assert "secret" in layout.storage_env.read_text() and "RLOPS_TEST_TOKEN" not in os.environ
    code, answer = cli(layout, {"settings": {}}, "--mode", "new")
    assert code == 1 and answer["msg"] == "settings.storage_uri is required"


def test_the_request_is_one_json_object() -> None:
    with pytest.raises(PrepareError, match="^prepare reads one JSON object on stdin, got list$"):
        Request.parse("[]", "new")
    with pytest.raises(PrepareError, match="^settings.storage_uri is required$"):
        Request.parse("", "new")


def test_the_hand_tool_validate_and_prepare_give_one_verdict(tmp_path: Path, capsys) -> None:
    """`rlops-run validate` (a hand tool) and prepare's validate run the same rule."""
    from rlops_runtime import cli as runtime_cli

    hyperparameters = {"n_step": 64, "gamma": "high"}
    hp_file = tmp_path / "hp.json"
    hp_file.write_text(json.dumps(hyperparameters))
    assert runtime_cli.main(["validate", "--env-id", "CartPole-v1", "--algo", "ppo",
                             "--hyperparameters", str(hp_file)]) == 2
    said = capsys.readouterr().err
    layout = SessionLayout.for_session(tmp_path / "host", SESSION)
    with pytest.raises(PrepareError) as refused:
        prepare(layout, request(tmp_path / "storage", hyperparameters=hyperparameters,
                                validate=True, settings={"env_id": "CartPole-v1"}))
    assert said == f"rlops-run: error: {refused.value}\n"
    assert "'n_step' is not a PPO hyperparameter" in said and not layout.root.exists()
