"""The DeepRacer backend in the session contract: its name, agent, run.json's `deepracer`
object, s3:// storage, what a resume may change, and no SB3 hyperparameter names for it."""

from __future__ import annotations

import pytest
from rlops_runtime import session_contract as contract
from rlops_runtime.host_sessions import BACKENDS, deepracer_entry
from rlops_runtime.settings import SettingsError, new_config, plan_resume

STACK = {"project": "deepracer-0", "eval_project": "deepracer-eval-0",
         "compose_command": ["docker", "compose"], "compose_dir": "/srv/dr/compose",
         "sagemaker_dir": "/tmp/sagemaker", "run_id": 0, "model_prefix": "rl-deepracer-1",
         "bucket": "bucket", "metrics_prefix": "rl-deepracer-1/metrics"}
SETTINGS = {"session_id": "dr-20261207t000000z", "storage_uri": "s3://bucket/sessions",
            "backend": "deepracer", "deepracer": STACK}


def test_the_backend_its_agent_and_its_registry_entry():
    assert "deepracer" in contract.BACKEND_NAMES
    assert contract.BACKEND_AGENT_ARGS["deepracer"] == (
        "-m", "rlops_runtime.agents.deepracer", "train")
    assert BACKENDS["deepracer"].evaluate is not BACKENDS["supervisor"].evaluate


def test_a_deepracer_session_is_accepted_and_written():
    assert contract.requested_setting_problems(SETTINGS) == []
    config = new_config(SETTINGS)
    assert config["deepracer"] == STACK and config["backend"] == "deepracer"
    assert contract.check_run_json(config) is config
    # Ansible's -e gives a JSON string.
    assert contract.coerce_setting("deepracer", '{"a": 1}') == {"a": 1}


@pytest.mark.parametrize("change, message", [
    ({"storage_uri": "file:///srv/store"}, "needs s3://bucket/prefix storage"),
    ({"storage_uri": "az://cont/p"}, "needs s3://bucket/prefix storage"),
    ({"storage_uri": "s3://other/p"}, "deepracer.bucket 'bucket' is not the storage's bucket"),
    ({"deepracer": None}, "deepracer must be an object"),
    ({"deepracer": {**STACK, "run_id": "0"}}, "run_id must be an integer"),
    ({"deepracer": {**STACK, "model_prefix": "/abs"}}, "model_prefix '/abs' is not an S3 key"),
    ({"deepracer": {**STACK, "model_prefix": "a/../b"}}, "not an S3 key prefix"),
    ({"deepracer": {**STACK, "compose_dir": "rel"}}, "compose_dir must be an absolute path"),
    ({"deepracer": {**STACK, "compose_command": "docker compose"}}, "list of words"),
    ({"deepracer": {**STACK, "project": "Deep Racer"}}, "not a compose project name"),
    ({"deepracer": {**STACK, "eval_project": "deepracer-0"}}, "they must differ"),
    ({"deepracer": {**STACK, "upload_target": "s3://b"}}, "upload_target must be s3://"),
    ({"deepracer": {**STACK, "training_minutes": 0}}, "training_minutes must be a number > 0"),
    ({"deepracer": {**STACK, "pretrained_prefix": "rl-deepracer-1"}}, "is the model_prefix"),
    ({"deepracer": {**STACK, "wipe": True}}, "unknown keys wipe"),
    ({"deepracer": {k: v for k, v in STACK.items() if k != "bucket"}}, "missing bucket"),
    ({"algo": "dqn"}, "model_metadata.json's training_algorithm"),
    ({"backend": "supervisor"}, "trainer_deepracer is set, but the session's backend is"),
])
def test_bad_deepracer_settings_are_refused_with_what_and_why(change, message):
    problems = contract.requested_setting_problems({**SETTINGS, **change})
    assert any(message in p for p in problems), problems
    with pytest.raises(SettingsError, match="."):
        new_config({**SETTINGS, **change})


def test_run_json_checks_the_stack_too():
    with pytest.raises(contract.ContractError, match="needs s3://bucket/prefix storage"):
        contract.check_run_json({**SETTINGS, "storage_uri": "file:///x"})
    with pytest.raises(contract.ContractError, match="deepracer is set, but backend is"):
        contract.check_run_json({**SETTINGS, "backend": "ray"})


def test_no_sb3_hyperparameters_for_deepracer():
    assert contract.hyperparameter_key_problems("ppo", {}, "deepracer") == []
    problems = contract.hyperparameter_key_problems("ppo", {"n_steps": 8}, "deepracer")
    assert problems and "custom files' hyperparameters.json" in problems[0]


def test_resume_may_increment_and_change_its_budget_and_upload_target_only():
    config = new_config(SETTINGS)
    increment = {**STACK, "model_prefix": "rl-deepracer-2", "pretrained_prefix": "rl-deepracer-1",
                 "training_minutes": 30, "upload_target": "s3://away/models/m"}
    plan = plan_resume(config, {"deepracer": increment}, 0)
    assert plan.config["deepracer"] == increment
    assert plan.changes["deepracer"] == [STACK, increment]
    with pytest.raises(SettingsError, match=r"trainer_deepracer keys project, run_id cannot "
                                            r"change on resume \(only model_prefix"):
        plan_resume(config, {"deepracer": {**STACK, "project": "deepracer-1", "run_id": 1}}, 0)
    assert contract.deepracer_resume_problems(STACK, STACK) == []


def test_the_status_entry_names_the_model_before_the_drivers_first_report():
    run = {**SETTINGS, "deepracer": {**STACK, "model_prefix": "m2", "pretrained_prefix": "m1"}}
    entry = deepracer_entry({"state": "starting", "deepracer": None}, run)
    assert entry["deepracer"] == {"model_prefix": "m2", "pretrained_prefix": "m1"}
    reported = {"state": "running", "deepracer": {"model_prefix": "m2", "iteration": 3,
                                                  "pretrained_prefix": "m1"}}
    assert deepracer_entry(reported, run)["deepracer"]["iteration"] == 3
    # What last ran wins over a run.json a resume has prepared and not started yet.
    ran = {"state": "stopped", "deepracer": {"model_prefix": "m1", "pretrained_prefix": None}}
    assert deepracer_entry(ran, run)["deepracer"]["model_prefix"] == "m1"
    assert deepracer_entry(None, run) is None
