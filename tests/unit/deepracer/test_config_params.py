"""The params YAML equals what DRfC's own prepare-config.py wrote for the same variables.

The fixtures (fixtures/<case>/) were made by fixtures/make_fixtures.py, which ran DRfC's
scripts (commit 2eb1a1f) with its templates' values and each case's: env.json is the
environment they ran with, objects/ what they uploaded. Here the same values go in as the
role's variables (deepracer_stack_*, through the table) and what comes out is compared, text and
loaded values, with DRfC's known bugs (deepracer_config.BUGS_NOT_COPIED) as the only,
named, differences.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from ansible_collections.rlops.fleet.plugins.module_utils import deepracer_config as dc

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CASES = sorted(p.name for p in FIXTURES.iterdir() if (p / "env.json").is_file())


def _case(name: str) -> dict:
    return json.loads((FIXTURES / name / "env.json").read_text())


def _settings(env: dict) -> dict:
    """DRfC's environment as the role's variables: one deepracer_stack_* per modelled DR_* name."""
    return {dc.BY_NAME[k].var: v for k, v in env.items() if k in dc.BY_NAME}


def _workers(case: dict) -> list:
    return [_settings(case["workers"][str(n)]) for n in sorted(int(k) for k in case["workers"])]


def _ours(name: str) -> dict:
    """{key: params dict} the role writes for the case."""
    return _made(name)[0]


def _multi_config(name: str) -> str:
    return _made(name)[1]


def _made(name: str) -> tuple:
    case = _case(name)
    env = dc.build_env(_settings(case["env"]))
    now = datetime.fromisoformat(case["now"])
    prefix = env["DR_LOCAL_S3_MODEL_PREFIX"]
    if case["script"] == "training":
        made = dc.training_files(env, _workers(case), now)
        files = {dc.params_key(prefix, k): v for k, v in made["files"].items()}
        return files, made["multi_config"]
    key = dc.params_key(prefix, env["DR_LOCAL_S3_EVAL_PARAMS_FILE"])
    return {key: dc.evaluation_params(env, now)}, ""


def _theirs(name: str) -> dict:
    objects = FIXTURES / name / "objects"
    return {p.relative_to(objects).as_posix(): p.read_text()
            for p in sorted(objects.rglob("*")) if p.is_file()}


# DRfC's output with its bugs taken out, per case and key: what the role writes instead.
def _without_bugs(name: str, key: str, theirs: dict) -> dict:
    fixed = dict(theirs)
    if name == "evaluation_h2m":
        fixed["COLLISION_PENALTY"] = "7.5"  # eval-collision-penalty
        # h2m-opponent-mp4
        fixed["MP4_S3_OBJECT_PREFIX"] = ["rl-deepracer-sagemaker/mp4", "rival-3/mp4"]
    if name == "training_multi" and not key.endswith("_1.yaml"):
        fixed.pop("MULTI_CONFIG")  # worker-leaks: set after the first file was written
        if fixed["RACE_TYPE"] != "OBJECT_AVOIDANCE":
            fixed.pop("OBSTACLE_TYPE", None)  # worker-leaks: not popped by DRfC
        if fixed["RACE_TYPE"] != "HEAD_TO_BOT":
            fixed.pop("PENALTY_SECONDS", None)  # worker-leaks: not popped by DRfC
    return fixed


@pytest.mark.parametrize("name", CASES)
def test_same_keys_uploaded(name: str) -> None:
    ours = _ours(name)
    assert sorted(ours) == sorted(_theirs(name))


@pytest.mark.parametrize("name", CASES)
def test_same_values_but_the_named_bugs(name: str) -> None:
    ours = _ours(name)
    for key, text in _theirs(name).items():
        assert yaml.safe_load(dc.params_yaml(ours[key])) == \
            _without_bugs(name, key, yaml.safe_load(text)), key


@pytest.mark.parametrize("name", CASES)
def test_same_text_where_no_bug_differs(name: str) -> None:
    """DRfC's exact text: `---`, every key and value single-quoted, keys sorted."""
    ours = _ours(name)
    for key, text in _theirs(name).items():
        if _without_bugs(name, key, yaml.safe_load(text)) == yaml.safe_load(text) \
                and "&id" not in text:
            assert dc.params_yaml(ours[key]) == text, key
        assert dc.params_yaml(ours[key]).startswith("---\n'")


def test_the_bugs_are_in_the_fixtures() -> None:
    """The fixtures show each bug the role does not copy, so the differences above are real."""
    h2m = _theirs("evaluation_h2m")["rl-deepracer-sagemaker/evaluation_params.yaml"]
    assert "'COLLISION_PENALTY': '5.0'" in h2m and "- 'bucket/mp4'" in h2m
    assert "'MODEL_NAME': *id001" in h2m
    ours = _ours("evaluation_h2m")
    text = dc.params_yaml(ours["rl-deepracer-sagemaker/evaluation_params.yaml"])
    assert "*id" not in text and "'COLLISION_PENALTY': '7.5'" in text and "- 'rival-3/mp4'" in text
    worker3 = yaml.safe_load(_theirs("training_multi")["multi-2/training_params_3.yaml"])
    assert worker3["RACE_TYPE"] == "HEAD_TO_BOT" and "OBSTACLE_TYPE" in worker3
    assert set(dc.BUGS_NOT_COPIED) >= {"increment-regex", "eval-collision-penalty",
                                       "h2m-opponent-mp4", "worker-leaks"}


def test_multi_config_json_as_drfc_prints_it() -> None:
    ours = _multi_config("training_multi")
    assert json.loads(ours) == json.loads((FIXTURES / "training_multi" / "stdout.txt").read_text())


def test_table_defaults_are_drfc_templates() -> None:
    """Every modelled DR_* in DRfC's templates has the table's default (derived ones too)."""
    template = _case("training_default")["env"]
    endpoint = template["DR_LOCAL_S3_ENDPOINT_URL"]
    ours = dc.build_env({"deepracer_stack_minio_url": template["DR_MINIO_URL"],
                         "deepracer_stack_local_s3_endpoint_url": endpoint})
    modelled = {k: v for k, v in template.items() if k in dc.BY_NAME}
    assert len(modelled) >= 70
    assert {k: ours.get(k) for k in modelled} == modelled


def test_worker_settings_checked() -> None:
    env = dc.build_env({"deepracer_stack_workers": 3, "deepracer_stack_train_multi_config": True})
    assert dc.worker_problems(env, [{"deepracer_stack_world_name": "x"}]) == [
        "deepracer_stack_train_multi_config with 3 workers needs 2 entries in "
        "deepracer_stack_multi_config_workers (workers 2..3, DRfC's worker-N.env), not 1"]
    problems = dc.worker_problems(env, [{"deepracer_stack_world_name": "x"},
                                        {"deepracer_stack_car_name": "y"}])
    assert len(problems) == 1
    assert "worker 3: 'deepracer_stack_car_name' is not a per-worker" in problems[0]


def test_without_multi_config_one_file_even_with_workers() -> None:
    env = dc.build_env({"deepracer_stack_workers": 3})
    made = dc.training_files(env, [], datetime(2026, 1, 1))
    assert list(made["files"]) == ["training_params.yaml"] and made["multi_config"] == ""
    assert made["files"]["training_params.yaml"]["NUM_WORKERS"] == "3"
