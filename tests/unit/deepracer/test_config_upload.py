"""deepracer_upload in-process against a moto S3 server: the custom files and the params YAML
land under the keys the simapp reads, a re-run writes nothing, check mode writes nothing,
and a model prefix holding a trained model is refused unless wipe deletes it."""

from __future__ import annotations

import contextlib
import json
from datetime import datetime, timezone

import boto3
import pytest
import yaml
from ansible.module_utils import basic
from ansible_collections.rlops.fleet.plugins.module_utils import deepracer_config as dc
from ansible_collections.rlops.fleet.plugins.modules import deepracer_upload
from servers import moto_server

try:  # ansible-core >= 2.19
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # pragma: no cover - ansible-core 2.17 / 2.18

    @contextlib.contextmanager
    def patch_module_args(args=None):
        saved = basic._ANSIBLE_ARGS
        basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": args or {}}).encode()
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS = saved


class Done(Exception):
    def __init__(self, result: dict) -> None:
        super().__init__(result.get("msg", ""))
        self.result = result


def _run(monkeypatch, args: dict, check: bool = False) -> dict:
    def leave(self, **kwargs):
        raise Done(kwargs)

    def fail(self, msg="", **kwargs):
        raise Done({**kwargs, "failed": True, "msg": msg})

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", leave)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail)
    with patch_module_args({**args, "_ansible_check_mode": check}):
        with pytest.raises(Done) as done:
            deepracer_upload.main()
    return done.value.result


@pytest.fixture(scope="module")
def s3():
    with moto_server() as endpoint:
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")
        client.create_bucket(Bucket="bucket")
        yield endpoint, client


def _objects(prefix: str, reward: str = "def reward_function(params):\n    return 1.0\n"):
    env = dc.build_env({"deepracer_stack_local_s3_model_prefix": prefix,
                        "deepracer_stack_local_s3_endpoint_url": "http://127.0.0.1:9000"},
                       gateway="172.30.213.1")
    params = dc.training_files(env, [], datetime(2026, 12, 7, tzinfo=timezone.utc))["files"]
    objects = [{"key": env["DR_LOCAL_S3_REWARD_KEY"], "content": reward},
               {"key": env["DR_LOCAL_S3_MODEL_METADATA_KEY"], "content": "{}\n"},
               {"key": env["DR_LOCAL_S3_HYPERPARAMETERS_KEY"], "content": "{}\n"},
               {"key": f"{prefix}/reward_function.py", "content": reward}]
    objects += [{"key": dc.params_key(prefix, name), "content": dc.params_yaml(config)}
                for name, config in params.items()]
    return objects


def _args(endpoint: str, prefix: str, **extra) -> dict:
    return {"bucket": "bucket", "endpoint": endpoint, "access_key": "testing",
            "secret_key": "testing", "model_prefix": prefix, "objects": _objects(prefix),
            **extra}


def _keys(client, prefix: str = "") -> list:
    answer = client.list_objects_v2(Bucket="bucket", Prefix=prefix)
    return sorted(o["Key"] for o in answer.get("Contents", []))


def test_upload_idempotent_and_check_mode(monkeypatch, s3) -> None:
    endpoint, client = s3
    prefix = "model-a"
    checked = _run(monkeypatch, _args(endpoint, prefix), check=True)
    assert checked["changed"] is True and len(checked["uploaded"]) == 5
    assert _keys(client, prefix) == []
    first = _run(monkeypatch, _args(endpoint, prefix))
    assert first["changed"] is True and not first.get("failed")
    assert _keys(client, prefix) == ["model-a/reward_function.py", "model-a/training_params.yaml"]
    assert {"custom_files/reward_function.py", "custom_files/model_metadata.json",
            "custom_files/hyperparameters.json"} <= set(_keys(client, "custom_files/"))
    text = client.get_object(Bucket="bucket", Key="model-a/training_params.yaml")["Body"].read()
    loaded = yaml.safe_load(text)
    assert loaded["SAGEMAKER_SHARED_S3_PREFIX"] == "model-a"
    assert loaded["S3_ENDPOINT_URL"] == "http://172.30.213.1:9000"
    assert all(isinstance(v, str) for v in loaded.values())
    assert text.startswith(b"---\n'ALTERNATE_DRIVING_DIRECTION': 'False'\n")
    second = _run(monkeypatch, _args(endpoint, prefix))
    assert second["changed"] is False and len(second["unchanged"]) == 5


def test_a_trained_prefix_is_refused_then_wiped(monkeypatch, s3) -> None:
    endpoint, client = s3
    prefix = "model-b"
    client.put_object(Bucket="bucket", Key="model-b/model/1_Step-100.ckpt.index", Body=b"x")
    client.put_object(Bucket="bucket", Key="model-b/model/deepracer_checkpoints.json", Body=b"{}")
    refused = _run(monkeypatch, _args(endpoint, prefix))
    assert refused["failed"] is True
    assert refused["msg"].startswith(
        "Upload to s3://bucket/model-b: model prefix model-b/ holds 2 object(s) this upload "
        "does not write (model-b/model/1_Step-100.ckpt.index, model-b/model/deepracer_chec")
    assert "deepracer_stack_wipe: true" in refused["msg"]
    assert _keys(client, prefix) == ["model-b/model/1_Step-100.ckpt.index",
                                     "model-b/model/deepracer_checkpoints.json"]
    # An evaluation writes next to the model without guarding it.
    evaluation = _run(monkeypatch, _args(endpoint, prefix, guard=False))
    assert evaluation["changed"] is True and evaluation["deleted"] == []
    wiped = _run(monkeypatch, _args(endpoint, prefix, wipe=True))
    assert wiped["deleted"] == ["model-b/model/1_Step-100.ckpt.index",
                                "model-b/model/deepracer_checkpoints.json"]
    assert _keys(client, prefix) == ["model-b/reward_function.py",
                                     "model-b/training_params.yaml"]


def test_changed_content_is_written(monkeypatch, s3) -> None:
    endpoint, client = s3
    _run(monkeypatch, _args(endpoint, "model-c"))
    args = _args(endpoint, "model-c")
    args["objects"] = _objects("model-c", reward="def reward_function(params):\n    return 2.0\n")
    changed = _run(monkeypatch, args)
    assert sorted(changed["uploaded"]) == ["custom_files/reward_function.py",
                                           "model-c/reward_function.py"]
    body = client.get_object(Bucket="bucket", Key="custom_files/reward_function.py")["Body"]
    assert b"return 2.0" in body.read()


@pytest.mark.parametrize("change,message", [
    ({"model_prefix": "/x"}, "model_prefix '/x': a key prefix without"),
    ({"objects": [{"key": "a", "content": ""}, {"key": "a", "content": ""}]},
     "object keys given twice: a"),
    ({"endpoint": "127.0.0.1:9000"}, "endpoint '127.0.0.1:9000' is not an http://"),
])
def test_bad_input(monkeypatch, change: dict, message: str) -> None:
    result = _run(monkeypatch, {**_args("http://127.0.0.1:1", "m"), **change})
    assert result["failed"] is True and result["msg"].startswith(message)


def test_wrong_secret(monkeypatch, s3) -> None:
    """moto accepts any key until auth is switched on; an unreachable endpoint says so."""
    result = _run(monkeypatch, _args("http://127.0.0.1:9", "m"))
    assert result["failed"] is True and "cannot reach the S3 endpoint" in result["msg"]
