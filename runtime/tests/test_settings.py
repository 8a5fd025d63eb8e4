"""The job's settings: a new session's run.json, and what a resume may change."""

from __future__ import annotations

import io
import json
from dataclasses import fields

import pytest
from rlops_runtime import cli
from rlops_runtime.jsonio import read_json, write_json_atomic
from rlops_runtime.session import SessionLayout
from rlops_runtime.settings import (
    RESUME_POLICY,
    SettingsError,
    new_config,
    plan_resume,
)
from rlops_runtime.supervisor import RunConfig

SESSION = "cartpole-20261206t000000z"
BASE = {"session_id": SESSION, "storage_uri": "file:///srv/storage",
        "command": ["/venv/a/bin/python", "-m", "rlops_runtime.agents.sb3", "train"],
        "workdir": "/data/s",
        "env_base": {"PATH": "/venv/a/bin:/usr/bin", "VIRTUAL_ENV": "/venv/a"}}


def test_every_run_json_key_has_a_resume_policy():
    assert sorted(RESUME_POLICY) == sorted(f.name for f in fields(RunConfig))


def test_new_config_takes_runconfig_defaults_and_coerces_strings():
    config = new_config({**BASE, "total_timesteps": "5000", "sync_interval": "2.5",
                         "env": {"A": 1}})
    assert config["total_timesteps"] == 5000
    assert config["sync_interval"] == 2.5
    assert config["checkpoint_interval"] == RunConfig.checkpoint_interval == 10_000
    assert config["env"] == {"PATH": "/venv/a/bin:/usr/bin", "VIRTUAL_ENV": "/venv/a", "A": "1"}
    assert "env_base" not in config


@pytest.mark.parametrize("settings,message", [
    ({"total_timesteps": 0}, "trainer_total_timesteps must be greater than 0"),
    ({"stop_grace": -1}, "trainer_stop_grace must not be negative"),
    ({"total_timesteps": "many"}, "trainer_total_timesteps must be a number"),
    ({"notices": "always"}, "notices must be one of"),
    ({"device": "gpu"}, "trainer_device must be one of auto, cpu, cuda, got 'gpu'"),
    ({"algo": "a2c"}, "trainer_algo must be one of ppo, dqn"),
    ({"colour": "red"}, "unknown settings: colour"),
])
def test_new_config_refuses_bad_values(settings, message):
    with pytest.raises((SettingsError, ValueError), match=message):
        new_config({**BASE, **settings})


def current() -> dict:
    return new_config({**BASE, "total_timesteps": 100_000, "env": {"WANDB_MODE": "off"}})


def test_resume_with_nothing_requested_changes_nothing():
    plan = plan_resume(current(), {}, step=50_000)
    assert not plan.changed and plan.config == current()


def test_resume_applies_a_larger_budget_and_safe_settings():
    plan = plan_resume(current(), {"total_timesteps": "300000", "checkpoint_interval": 5000,
                                   "device": "cpu", "env_id": "CartPole-v1"}, step=100_000)
    assert plan.changes == {"total_timesteps": [100_000, 300_000],
                            "checkpoint_interval": [10_000, 5000], "device": ["auto", "cpu"]}
    assert plan.config["total_timesteps"] == 300_000


def test_resume_refuses_a_budget_the_session_has_passed():
    with pytest.raises(SettingsError, match="not beyond step 60000"):
        plan_resume(current(), {"total_timesteps": 50_000}, step=60_000)


def test_resume_refuses_what_the_checkpoints_depend_on_all_at_once():
    with pytest.raises(SettingsError) as err:
        plan_resume(current(), {"env_id": "Acrobot-v1", "algo": "dqn",
                                "total_timesteps": 500_000}, step=0)
    message = str(err.value)
    assert message.startswith("trainer_env_id ('CartPole-v1', asked for 'Acrobot-v1') and "
                              "trainer_algo ('ppo', asked for 'dqn') cannot change on resume")
    assert "start a new session" in message


def test_resume_refuses_other_hyperparameters_and_names_the_difference():
    with pytest.raises(SettingsError, match=r"n_steps: 64 -> 128"):
        plan_resume(current(), {}, step=0, hyperparameters={"n_steps": 64},
                    requested_hyperparameters={"n_steps": 128})
    same = plan_resume(current(), {}, step=0, hyperparameters={"n_steps": 64},
                       requested_hyperparameters={"n_steps": 64})
    assert not same.changed


def test_resume_on_another_host_takes_its_venv_and_keeps_the_users_env():
    request = {"command": ["/venv/b/bin/python", "-m", "rlops_runtime.agents.sb3", "train"],
               "env_base": {"PATH": "/venv/b/bin:/usr/bin", "VIRTUAL_ENV": "/venv/b"}}
    plan = plan_resume(current(), request, step=10)
    assert plan.config["command"][0] == "/venv/b/bin/python"
    assert plan.config["env"] == {"PATH": "/venv/b/bin:/usr/bin", "VIRTUAL_ENV": "/venv/b",
                                  "WANDB_MODE": "off"}
    assert plan.changes["env"] == ["PATH", "VIRTUAL_ENV"]


def run_configure(layout: SessionLayout, mode: str, request: dict, monkeypatch, capsys,
                  *extra: str) -> tuple[int, dict | str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(request)))
    code = cli.main(["configure", "--session-dir", str(layout.root), "--mode", mode, *extra])
    out = capsys.readouterr()
    return code, (json.loads(out.out) if code == 0 else out.err)


def test_configure_writes_a_new_session_once(tmp_path, monkeypatch, capsys):
    layout = SessionLayout.for_session(tmp_path, SESSION)
    request = {"settings": {k: v for k, v in BASE.items() if k != "session_id"},
               "hyperparameters": {"n_steps": 64}}
    code, out = run_configure(layout, "new", request, monkeypatch, capsys, "--check")
    assert code == 0 and out["changed"] and not layout.run_json.exists()
    code, out = run_configure(layout, "new", request, monkeypatch, capsys)
    assert out["changed"] and read_json(layout.hyperparameters) == {"n_steps": 64}
    assert RunConfig.load(layout.run_json).session_id == SESSION
    code, out = run_configure(layout, "new", request, monkeypatch, capsys)
    assert code == 0 and not out["changed"]


def test_configure_resume_applies_or_refuses_and_leaves_run_json_alone(
        tmp_path, monkeypatch, capsys):
    layout = SessionLayout.for_session(tmp_path, SESSION)
    layout.config_dir.mkdir(parents=True)
    write_json_atomic(layout.run_json, current())
    (layout.checkpoints / "000000020000").mkdir(parents=True)
    (layout.checkpoints / "000000020000" / "manifest.json").write_text("{}")
    code, err = run_configure(layout, "resume", {"settings": {"total_timesteps": 10_000}},
                              monkeypatch, capsys)
    assert code == 2 and "not beyond step 20000" in err
    assert read_json(layout.run_json) == current()
    code, out = run_configure(layout, "resume", {"settings": {"total_timesteps": 400_000}},
                              monkeypatch, capsys)
    assert code == 0 and out["changes"] == {"total_timesteps": [100_000, 400_000]}
    assert out["summary"] == ["total_timesteps 100000 -> 400000"]
    assert read_json(layout.run_json)["total_timesteps"] == 400_000


def test_resume_keeps_the_job_a_session_runs():
    own = {**current(), "command": ["python", "train.py"], "workdir": "/data/s/source"}
    with pytest.raises(SettingsError, match=r"runs its own job \(python train.py\).*"
                       "resume with the session's trainer_source"):
        plan_resume(own, {"command": BASE["command"]}, step=0)
    updated = plan_resume(own, {"command": ["python", "train2.py"]}, step=0)
    assert updated.changes == {"command": [["python", "train.py"], ["python", "train2.py"]]}
