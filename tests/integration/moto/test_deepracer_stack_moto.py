"""rlops.fleet.deepracer_stack's upload entry point through real ansible-playbook runs against a
moto server on 127.0.0.1: the shipped custom files pass validation and land under DRfC's keys
with the training params, a second run changes nothing, check mode writes nothing, a prefix
holding a trained model is refused (and kept), and a bad setting fails before any upload.
The secret appears nowhere in the output.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
import yaml
from servers import moto_server

REPO = Path(__file__).resolve().parents[3]
PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
SECRET = "moto-secret-Zq81-known"
TRACK = "2022_reinvent_champ_ccw"


@pytest.fixture(scope="module")
def moto():
    with moto_server() as endpoint:
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key=SECRET)
        client.create_bucket(Bucket="bucket")
        yield endpoint, client


def _play(tmp_path, endpoint, check=False, **settings):
    variables = {"deepracer_stack_local_s3_endpoint_url": endpoint,
                 "deepracer_stack_local_access_key_id": "testing",
                 "deepracer_stack_local_secret_access_key": SECRET,
                 "deepracer_stack_validate_tracks": [TRACK], **settings}
    play = [{"name": "DeepRacer upload", "hosts": "localhost", "gather_facts": False,
             "tasks": [{"name": "Upload", "ansible.builtin.include_role": {
                 "name": "rlops.fleet.deepracer_stack", "tasks_from": "upload"},
                 "vars": variables}]}]
    path = tmp_path / "play.yml"
    path.write_text(json.dumps(play))
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    proc = subprocess.run(
        [str(PLAYBOOK), "-i", "localhost,", "-c", "local",
         "-e", f"ansible_python_interpreter={sys.executable}", str(path)]
        + (["--check"] if check else []),
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    output = proc.stdout + proc.stderr
    assert SECRET not in output
    return proc.returncode, output


def _keys(client, prefix=""):
    answer = client.list_objects_v2(Bucket="bucket", Prefix=prefix)
    return sorted(o["Key"] for o in answer.get("Contents", []))


def test_upload_check_mode_then_real_then_unchanged(moto, tmp_path):
    endpoint, client = moto
    rc, output = _play(tmp_path, endpoint, check=True,
                       deepracer_stack_local_s3_model_prefix="dr-a")
    assert rc == 0, output[-3000:]
    assert _keys(client, "dr-a/") == [] and _keys(client, "custom_files/") == []
    rc, output = _play(tmp_path, endpoint, deepracer_stack_local_s3_model_prefix="dr-a")
    assert rc == 0, output[-3000:]
    assert "changed=1" in output
    assert _keys(client, "dr-a/") == ["dr-a/reward_function.py", "dr-a/training_params.yaml"]
    assert _keys(client, "custom_files/") == ["custom_files/hyperparameters.json",
                                              "custom_files/model_metadata.json",
                                              "custom_files/reward_function.py"]
    shipped = (REPO / "roles/deepracer_stack/files/custom_files/reward_function.py").read_bytes()
    body = client.get_object(Bucket="bucket", Key="custom_files/reward_function.py")["Body"]
    assert body.read() == shipped
    params = yaml.safe_load(
        client.get_object(Bucket="bucket", Key="dr-a/training_params.yaml")["Body"].read())
    assert params["SAGEMAKER_SHARED_S3_PREFIX"] == "dr-a"
    assert params["METRICS_S3_OBJECT_KEY"] == "dr-a/metrics/TrainingMetrics.json"
    rc, output = _play(tmp_path, endpoint, deepracer_stack_local_s3_model_prefix="dr-a")
    assert rc == 0 and "changed=0" in output, output[-3000:]


def test_a_trained_prefix_is_refused_and_kept(moto, tmp_path):
    endpoint, client = moto
    client.put_object(Bucket="bucket", Key="dr-b/model/model_5.pb", Body=b"trained")
    rc, output = _play(tmp_path, endpoint, deepracer_stack_local_s3_model_prefix="dr-b")
    assert rc != 0
    assert "model prefix dr-b/ holds 1 object(s) this upload does not write" in output
    assert _keys(client, "dr-b/") == ["dr-b/model/model_5.pb"]


def test_bad_settings_fail_before_any_upload(moto, tmp_path):
    endpoint, client = moto
    rc, output = _play(tmp_path, endpoint, deepracer_stack_local_s3_model_prefix="dr-c",
                       deepracer_stack_workers=12,
                       deepracer_stack_extra_env={"DR_WORLD_NAME": "x"})
    assert rc != 0
    assert "deepracer_stack_extra_env: DR_WORLD_NAME is modelled" in output
    assert "deepracer_stack_workers is '12': 1 to 10 robomaker workers" in output
    assert _keys(client, "dr-c/") == []
