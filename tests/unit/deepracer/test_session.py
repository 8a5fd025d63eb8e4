"""DeepRacer as a backend of the session layer, the controller's decisions: the settings a
session owns (its bucket, the increment on resume, the evaluation's trials), what refuses it,
and run.json's `deepracer` object."""

from __future__ import annotations

import pytest
from ansible_collections.rlops.fleet.plugins.filter.deepracer import (
    deepracer_plan,
    deepracer_session,
    deepracer_session_settings,
)
from ansible_collections.rlops.fleet.plugins.module_utils import deepracer_config as dc

S3 = "s3://models/sessions"
CREDS = {"RLOPS_S3_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_ACCESS_KEY_ID": "rlops",
         "AWS_SECRET_ACCESS_KEY": "secret-1"}


def test_new_session_takes_the_storage_bucket_and_its_access() -> None:
    decided = deepracer_session_settings({}, "new", S3, credentials=CREDS)
    assert decided["problems"] == []
    assert decided["overrides"] == {
        "deepracer_stack_local_s3_bucket": "models",
        "deepracer_stack_local_s3_endpoint_url": "http://127.0.0.1:9000",
        "deepracer_stack_local_access_key_id": "rlops",
        "deepracer_stack_local_secret_access_key": "secret-1"}


def test_the_roles_own_endpoint_and_keys_are_kept() -> None:
    given = {"deepracer_stack_local_s3_endpoint_url": "http://172.30.213.1:9000",
             "deepracer_stack_local_access_key_id": "mine",
             "deepracer_stack_local_secret_access_key": "s"}
    decided = deepracer_session_settings(given, "new", S3, credentials=CREDS)
    assert decided["overrides"] == {"deepracer_stack_local_s3_bucket": "models"}


@pytest.mark.parametrize(("uri", "bucket", "said"), [
    (S3, "other", "deepracer_stack_local_s3_bucket 'other' is not the session's bucket 'models'"),
    ("s3://", "bucket", "has no bucket"),
])
def test_refused_storage(uri: str, bucket: str, said: str) -> None:
    decided = deepracer_session_settings({"deepracer_stack_local_s3_bucket": bucket}, "new", uri)
    assert decided["overrides"] == {}
    assert len(decided["problems"]) == 1 and said in decided["problems"][0]


@pytest.mark.parametrize("uri", ["file:///data/storage", "az://container/x"])
def test_other_storage_is_the_contracts_refusal(uri: str) -> None:
    decided = deepracer_session_settings({"deepracer_stack_local_s3_bucket": "models"}, "new", uri)
    assert decided == {"overrides": {}, "problems": []}
    made = deepracer_session(_plan(decided["overrides"]), ["docker-compose"], "/c",
                             storage_uri=uri)
    assert len(made["problems"]) == 1
    assert "the deepracer backend needs s3://bucket/prefix storage" in made["problems"][0]


def test_the_same_bucket_given_is_accepted() -> None:
    decided = deepracer_session_settings({"deepracer_stack_local_s3_bucket": "models"}, "new", S3)
    assert decided["problems"] == []


def test_resume_increments_from_the_current_model() -> None:
    current = {"model_prefix": "rl-deepracer-sagemaker", "pretrained_prefix": None}
    decided = deepracer_session_settings({}, "resume", S3, current=current)
    assert decided["overrides"] == {
        "deepracer_stack_local_s3_bucket": "models",
        "deepracer_stack_local_s3_model_prefix": "rl-deepracer-sagemaker-1",
        "deepracer_stack_local_s3_pretrained": True,
        "deepracer_stack_local_s3_pretrained_prefix": "rl-deepracer-sagemaker"}
    again = deepracer_session_settings({}, "resume", S3,
                                       current={"model_prefix": "rl-deepracer-sagemaker-1"})
    assert again["overrides"]["deepracer_stack_local_s3_model_prefix"] == \
        "rl-deepracer-sagemaker-2"


def test_resume_of_a_running_session_keeps_its_model() -> None:
    current = {"model_prefix": "m-2", "pretrained_prefix": "m-1"}
    decided = deepracer_session_settings({}, "resume", S3, current=current, active=True)
    assert decided["overrides"] == {
        "deepracer_stack_local_s3_bucket": "models",
        "deepracer_stack_local_s3_model_prefix": "m-2",
        "deepracer_stack_local_s3_pretrained": True,
        "deepracer_stack_local_s3_pretrained_prefix": "m-1"}


def test_resume_without_a_current_model_is_refused() -> None:
    decided = deepracer_session_settings({}, "resume", S3, current={})
    assert decided["overrides"] == {}
    assert "current model prefix is unknown" in decided["problems"][0]


def test_evaluate_sets_trials_and_mp4_of_the_current_model() -> None:
    decided = deepracer_session_settings({}, "evaluate", S3, current={"model_prefix": "m-1"},
                                         episodes="4", video=True)
    assert decided["overrides"] == {
        "deepracer_stack_local_s3_bucket": "models",
        "deepracer_stack_local_s3_model_prefix": "m-1",
        "deepracer_stack_eval_number_of_trials": 4,
        "deepracer_stack_eval_save_mp4": True}


def test_an_unknown_mode_is_an_error() -> None:
    with pytest.raises(ValueError, match="session mode 'train'"):
        dc.session_overrides("train", {"scheme": "s3", "location": "b"})


def _plan(settings: dict) -> dict:
    plan = deepracer_plan(settings, now="2026-12-07T09:00:00+00:00")
    assert plan["problems"] == []
    return plan


def test_run_json_object_of_a_new_session() -> None:
    decided = deepracer_session_settings({"deepracer_stack_run_id": 2}, "new", S3,
                                         credentials=CREDS)
    plan = _plan({"deepracer_stack_run_id": 2, **decided["overrides"]})
    made = deepracer_session(plan, ["docker-compose"], "/opt/deepracer/compose", storage_uri=S3)
    assert made["problems"] == []
    assert made["deepracer"] == {
        "project": "deepracer-2", "eval_project": "deepracer-eval-2",
        "compose_command": ["docker-compose"], "compose_dir": "/opt/deepracer/compose",
        "sagemaker_dir": "/tmp/sagemaker", "run_id": 2,
        "model_prefix": "rl-deepracer-sagemaker", "pretrained_prefix": None,
        "bucket": "models", "metrics_prefix": "rl-deepracer-sagemaker/metrics",
        "upload_target": None, "training_minutes": None}


def test_run_json_object_of_an_increment() -> None:
    decided = deepracer_session_settings(
        {}, "resume", S3, current={"model_prefix": "m-1", "pretrained_prefix": None})
    plan = _plan(decided["overrides"])
    made = deepracer_session(plan, ["docker", "compose"], "/c", training_minutes="30",
                             storage_uri=S3)["deepracer"]
    assert (made["model_prefix"], made["pretrained_prefix"]) == ("m-2", "m-1")
    assert made["metrics_prefix"] == "m-2/metrics"
    assert made["training_minutes"] == 30
    # The params go under the new model; rl_coach trains it from the current one.
    assert list(plan["training"]["files"]) == ["m-2/training_params.yaml"]
    coach = plan["compose"]["training"]["services"]["rl_coach"]["environment"]
    assert (coach["PRETRAINED"], coach["PRETRAINED_S3_PREFIX"]) == ("True", "m-1")


def test_upload_target_from_drfcs_upload_settings() -> None:
    assert dc.upload_target({"DR_UPLOAD_S3_BUCKET": "not-defined"}) is None
    assert dc.upload_target({"DR_UPLOAD_S3_BUCKET": "", "DR_UPLOAD_S3_PREFIX": "x"}) is None
    assert dc.upload_target({"DR_UPLOAD_S3_BUCKET": "race",
                             "DR_UPLOAD_S3_PREFIX": "m-1-1"}) == "s3://race/m-1-1"
    plan = _plan({"deepracer_stack_upload_s3_bucket": "race"})
    assert deepracer_session(plan, ["docker-compose"], "/c")["deepracer"]["upload_target"] == \
        "s3://race/rl-deepracer-sagemaker-1"
