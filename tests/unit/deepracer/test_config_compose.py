"""The compose projects, the increment's next prefix, the escape hatch and the checks.

The compose files validate against two JSON schemas (compose_spec/README.md): the Compose
specification's (compose-spec commit 170098b, 2026-06-23), which docker compose v2 follows,
and docker-compose 1.29.2's (the lab hosts' Debian bookworm has only that one).
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from ansible_collections.rlops.fleet.plugins.filter.deepracer import FilterModule
from ansible_collections.rlops.fleet.plugins.module_utils import deepracer_config as dc
from ansible_collections.rlops.fleet.plugins.module_utils import session_contract as contract

SPECS = Path(__file__).resolve().parent / "compose_spec"
SCHEMAS = {"compose-spec": json.loads((SPECS / "compose-spec.json").read_text()),
           "docker-compose-1.29.2": json.loads(
               (SPECS / "docker-compose-1.29.2" / "compose_spec.json").read_text())}
KEY = "AKIAEXAMPLEEXAMPLE00"


def _validate(project: dict) -> None:
    # Through YAML text, as the role writes it (to_nice_yaml), so that the types are the file's.
    document = yaml.safe_load(yaml.safe_dump(project))
    for schema in SCHEMAS.values():
        jsonschema.Draft7Validator(schema).validate(document)


def _env(**settings) -> dict:
    return dc.build_env({"deepracer_stack_local_s3_endpoint_url": "http://127.0.0.1:9000",
                         "deepracer_stack_local_access_key_id": KEY,
                         "deepracer_stack_local_secret_access_key": "s3cr3t-s3cr3t", **settings},
                        gateway="172.30.213.1")


@pytest.mark.parametrize("job", ["training", "evaluation"])
@pytest.mark.parametrize("workers,gpu", [(1, False), (4, True), (10, False)])
def test_valid_compose(job: str, workers: int, gpu: bool) -> None:
    env = _env(deepracer_stack_workers=workers)
    project = dc.compose_project(env, job, gpu=gpu, comms_dir="/opt/deepracer/tmp/comms.0")
    _validate(project)
    robomaker = project["services"]["robomaker"]
    assert project["networks"]["default"] == {"external": True, "name": "sagemaker-local"}
    if job == "training":
        assert robomaker["scale"] == workers
        assert ("volumes" in robomaker) == (workers > 1)
        assert robomaker["command"] == [
            "/opt/ml/code/run.sh " + ("multi" if workers > 1 else "run")
            + " distributed_training.launch.py"]
    else:
        assert "scale" not in robomaker
        assert robomaker["environment"]["S3_YAML_NAME"] == "evaluation_params.yaml"
    assert ("deploy" in robomaker) == gpu


@pytest.mark.parametrize("schema", sorted(SCHEMAS))
def test_schema_rejects_a_broken_project(schema: str) -> None:
    """Each schema is a real check: a misspelt service key fails it."""
    project = dc.compose_project(_env(), "training")
    project["services"]["robomaker"]["scael"] = 2
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(SCHEMAS[schema]).validate(project)


def test_no_project_name_in_the_file() -> None:
    """docker-compose 1.29.2 refuses a top-level name: the role passes --project-name."""
    project = dc.compose_project(_env(), "training")
    assert "name" not in project
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(SCHEMAS["docker-compose-1.29.2"]).validate(
            {**project, "name": "deepracer-0"})


def test_training_wiring() -> None:
    env = _env(deepracer_stack_local_s3_model_prefix="model-3",
               deepracer_stack_local_s3_pretrained=True,
               deepracer_stack_local_s3_pretrained_prefix="model-2")
    project = dc.compose_project(env, "training", digest="sha256:" + "a" * 64)
    assert dc.project_name(env, "training") == "deepracer-0"
    assert dc.project_name(_env(deepracer_stack_run_id=2), "evaluation") == "deepracer-eval-2"
    coach = project["services"]["rl_coach"]
    image = "awsdeepracercommunity/deepracer-simapp:6.0.4-cpu@sha256:" + "a" * 64
    assert coach["image"] == image and coach["environment"]["SAGEMAKER_IMAGE"] == image
    assert coach["volumes"] == ["/var/run/docker.sock:/var/run/docker.sock",
                                "/tmp/sagemaker:/tmp/sagemaker"]
    assert coach["environment"]["S3_ENDPOINT_URL"] == "http://172.30.213.1:9000"
    assert coach["environment"]["AWS_ACCESS_KEY_ID"] == KEY
    assert coach["environment"]["PRETRAINED"] == "True"
    assert coach["environment"]["PRETRAINED_S3_PREFIX"] == "model-2"
    assert coach["environment"]["MODEL_S3_PREFIX"] == "model-3"
    assert coach["environment"]["HYPERPARAMETER_FILE_S3_KEY"] == "custom_files/hyperparameters.json"
    robomaker = project["services"]["robomaker"]
    assert robomaker["ports"] == ["127.0.0.1:8080-8089:8080", "127.0.0.1:5901-5920:5900"]
    assert robomaker["environment"]["S3_ENDPOINT_URL"] == "http://172.30.213.1:9000"
    assert robomaker["environment"]["SAGEMAKER_SHARED_S3_PREFIX"] == "model-3"
    assert all(isinstance(v, str) for v in robomaker["environment"].values())


def test_gpu_tag_and_aws_s3() -> None:
    env = dc.build_env({}, gpu=True)
    project = dc.compose_project(env, "training", gpu=True)
    coach = project["services"]["rl_coach"]
    assert coach["image"] == "awsdeepracercommunity/deepracer-simapp:6.0.4-gpu"
    # AWS S3: no endpoint, no keys (an instance role), docker-compose-aws.yml's settings.
    assert "S3_ENDPOINT_URL" not in coach["environment"]
    assert "AWS_ACCESS_KEY_ID" not in coach["environment"]
    assert coach["environment"]["AWS_METADATA_SERVICE_NUM_ATTEMPTS"] == "5"
    devices = project["services"]["robomaker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]


def test_container_endpoint() -> None:
    assert dc.container_endpoint("http://127.0.0.1:9000", "172.30.213.1") == \
        "http://172.30.213.1:9000"
    assert dc.container_endpoint("http://localhost:9000/", "10.0.0.1") == "http://10.0.0.1:9000/"
    assert dc.container_endpoint("https://s3.example.com", "10.0.0.1") == "https://s3.example.com"
    assert dc.container_endpoint("", "10.0.0.1") == ""
    env = dc.build_env({"deepracer_stack_local_s3_endpoint_url": "http://127.0.0.1:9000",
                        "deepracer_stack_minio_url": "http://minio.lan:9000"}, gateway="10.0.0.1")
    assert env["DR_MINIO_URL"] == "http://minio.lan:9000"


@pytest.mark.parametrize("old,new", [
    ("rl-deepracer-sagemaker", "rl-deepracer-sagemaker-1"),  # DRfC: rl-deepracer-1
    ("model-1", "model-2"),
    ("model-9", "model-10"),
    ("my-model-09", "my-model-10"),
    ("model", "model-1"),
    ("model-1a", "model-1a-1"),
    ("2024-model", "2024-model-1"),
    ("123", "124"),
    ("model-", "model--1"),
])
def test_next_model_prefix(old: str, new: str) -> None:
    assert dc.next_model_prefix(old) == new


def test_next_model_prefix_delimiter() -> None:
    assert dc.next_model_prefix("model_v_7", "_") == "model_v_8"
    assert dc.next_model_prefix("model-v-7", "_") == "model-v-7_1"
    with pytest.raises(ValueError):
        dc.next_model_prefix("model-1", "")


def test_extra_env() -> None:
    assert dc.extra_env_problems({"DR_EVAL_OPP_S3_METRICS_PREFIX": "x", "DR_X_1": 2}) == []
    assert dc.extra_env_problems({"dr_lower": 1, "MINIO_X": 1, "DR_WORLD_NAME": "a",
                                  "DR_LIST": [1]}) == [
        "deepracer_stack_extra_env: DR_LIST must be a string, number or boolean",
        "deepracer_stack_extra_env: DR_WORLD_NAME is modelled: set deepracer_stack_world_name",
        "deepracer_stack_extra_env: 'MINIO_X' is not a DR_* name (upper case letters, digits "
        "and _ after DR_)",
        "deepracer_stack_extra_env: 'dr_lower' is not a DR_* name (upper case letters, digits "
        "and _ after DR_)"]
    env = dc.build_env({"deepracer_stack_race_type": "HEAD_TO_MODEL"},
                       extra={"DR_EVAL_OPP_S3_METRICS_PREFIX": "elsewhere", "DR_X": True})
    assert env["DR_X"] == "True"
    from datetime import datetime
    params = dc.evaluation_params(env, datetime(2026, 1, 1))
    assert params["METRICS_S3_OBJECT_KEY"][1].startswith("elsewhere/EvaluationMetrics-")


def test_settings_problems() -> None:
    assert dc.settings_problems(_env()) == []
    problems = dc.settings_problems(dc.build_env({
        "deepracer_stack_workers": 11, "deepracer_stack_race_type": "DRAG",
        "deepracer_stack_eval_checkpoint": "x", "deepracer_stack_simapp_version": "latest",
        "deepracer_stack_local_s3_model_prefix": "/a/"}),
        gpu=True, digest="sha256:abc")
    text = "\n".join(problems)
    for part in ("deepracer_stack_workers is '11': 1 to 10", "deepracer_stack_race_type 'DRAG'",
                 "deepracer_stack_eval_checkpoint 'x'", "has no 'gpu'", "sha256:<64 hex digits>",
                 "floating tag", "deepracer_stack_local_s3_model_prefix '/a/'"):
        assert part in text
    assert dc.settings_problems(dc.build_env({"deepracer_stack_workers": 2}), algorithm="sac") == [
        "deepracer_stack_workers is 2: SAC trains with one worker only (model_metadata.json says "
        "training_algorithm sac)"]
    assert dc.settings_problems(dc.build_env({"deepracer_stack_workers": 1}), algorithm="sac") == []


def _inspected(ident: str, run_id: str, job: str, running: bool = True,
               root: str = "/tmp/sagemaker") -> dict:
    """`docker inspect` of the container compose made of a SageMaker SDK compose file."""
    return {"Id": ident, "Name": f"/{ident}_algo-1-ab12c_1", "State": {"Running": running},
            "Config": {"Labels": {"com.docker.compose.project": ident,
                                  "com.docker.compose.project.config_files":
                                  f"{root}/{ident}/docker-compose.yaml"},
                       "Env": [f"RUN_ID={run_id}", f"TRAINING_JOB_NAME={job}",
                               "AWS_SECRET_ACCESS_KEY=x"]}}


def test_the_trainer_containers_filter_is_the_contracts_rule() -> None:
    """The filter of deepracer_stack's stop; the rule's cases are the runtime's
    (runtime/tests/test_deepracer.py), where session_contract.trainer_containers lives."""
    trainer = FilterModule().filters()["deepracer_trainer_containers"]
    records = [_inspected("tmpaaaa1111", "0", "model-1"),
               _inspected("tmpbbbb2222", "10", "model-1"),
               _inspected("tmpcccc3333", "0", "model-10"),
               _inspected("tmpdddd4444", "0", "model-1", running=False),
               _inspected("deepracer-0", "0", "model-1", root="/opt/deepracer/compose")]
    # As the role passes them: docker's JSON, DR_RUN_ID a string.
    found = trainer(json.loads(json.dumps(records)), "/tmp/sagemaker", "0", "model-1")
    assert found == [
        {"id": "tmpaaaa1111", "name": "tmpaaaa1111_algo-1-ab12c_1",
         "config_files": ["/tmp/sagemaker/tmpaaaa1111/docker-compose.yaml"], "running": True},
        {"id": "tmpdddd4444", "name": "tmpdddd4444_algo-1-ab12c_1",
         "config_files": ["/tmp/sagemaker/tmpdddd4444/docker-compose.yaml"], "running": False}]
    assert found == contract.trainer_containers(records, "/tmp/sagemaker", 0, "model-1")
    # DRfC's grep -F would also have taken run 10's and model-10's (trainer-substring-match).
    assert [t["id"] for t in trainer(records, "/tmp/sagemaker", 10, "model-1")] == ["tmpbbbb2222"]
    assert trainer(None, "/tmp/sagemaker", 1, "model-1") == []
    assert "trainer_containers" in dc.BUGS_NOT_COPIED["trainer-substring-match"]
