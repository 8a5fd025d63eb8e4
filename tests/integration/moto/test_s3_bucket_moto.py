"""rlops.fleet.s3_bucket through real ansible-playbook runs at -vvv against a moto server on
127.0.0.1 that checks signatures and IAM policies: check mode creates nothing, a run
creates the missing buckets, a second run reports unchanged, and refusals (a wrong secret,
a missing permission, an endpoint nobody listens on, bad names) say which bucket and why.
The secret appears nowhere in the output. boto3 checks what really exists between runs.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from servers import free_port, moto_require_auth, moto_server, moto_users

REPO = Path(__file__).resolve().parents[3]
PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
SECRET_MARK = "wrong-secret-Qv93-known"
USERS = {
    "root": ["s3:*"],
    # May look, may not create. moto 5.2.6 authorises HeadBucket as s3:ListBucket.
    "looker": ["s3:ListBucket", "s3:GetBucketLocation"],
}


def _boto(service, endpoint, key="testing", secret="testing"):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret)


@pytest.fixture(scope="module")
def moto():
    """(endpoint, {user: (key, secret)}): IAM users made while moto accepts anything, then
    authentication switched on (/moto-api/reset-auth)."""
    with moto_server() as endpoint:
        keys = moto_users(_boto("iam", endpoint), USERS)
        moto_require_auth(endpoint)
        yield endpoint, keys


def _buckets(endpoint, keys):
    return sorted(b["Name"] for b in _boto("s3", endpoint, *keys["root"]).list_buckets()["Buckets"])


def _task(endpoint, user, names, **extra):
    key, secret = user
    return {"rlops.fleet.s3_bucket": dict(
        {"names": names, "endpoint": endpoint, "access_key": key, "secret_key": secret}, **extra)}


def _playbook(tmp_path, tasks, check=False, diff=False):
    """Each task's result, and everything ansible-playbook -vvv printed."""
    play = [{"name": "Buckets", "hosts": "localhost", "gather_facts": False,
             "tasks": [dict(task, ignore_errors=True) for task in tasks]}]
    path = tmp_path / "play.yml"
    path.write_text(json.dumps(play))  # JSON is YAML
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}
    proc = subprocess.run(
        [str(PLAYBOOK), "-vvv", "-i", "localhost,", "-c", "local",
         "-e", f"ansible_python_interpreter={sys.executable}", str(path)]
        + (["--check"] if check else []) + (["--diff"] if diff else []),
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    start = proc.stdout.index("{")
    results = [task["hosts"]["localhost"]
               for task in json.loads(proc.stdout[start:])["plays"][0]["tasks"]]
    return results, proc.stdout + proc.stderr


def test_check_mode_creates_nothing_then_a_run_creates_then_unchanged(moto, tmp_path):
    endpoint, keys = moto
    names = ["ckpt-a", "ckpt-b", "ckpt-a"]
    (planned,), output = _playbook(tmp_path, [_task(endpoint, keys["root"], names)],
                                   check=True, diff=True)
    assert not planned.get("failed"), planned.get("msg")
    assert planned["changed"] is True
    assert (planned["created"], planned["existing"]) == (["ckpt-a", "ckpt-b"], [])
    assert planned["diff"] == {"before": {"buckets": []},
                               "after": {"buckets": ["ckpt-a", "ckpt-b"]}}
    assert not {"ckpt-a", "ckpt-b"} & set(_buckets(endpoint, keys))
    assert keys["root"][1] not in output

    made, again = _playbook(tmp_path, [_task(endpoint, keys["root"], names)] * 2)[0]
    assert not made.get("failed"), made.get("msg")
    assert (made["changed"], made["created"], made["existing"]) == (
        True, ["ckpt-a", "ckpt-b"], [])
    assert (made["endpoint"], made["region"]) == (endpoint, "us-east-1")
    assert (again["changed"], again["created"], again["existing"]) == (
        False, [], ["ckpt-a", "ckpt-b"])
    assert {"ckpt-a", "ckpt-b"} <= set(_buckets(endpoint, keys))


def test_a_bucket_outside_us_east_1_is_created_there(moto, tmp_path):
    endpoint, keys = moto
    (made,), _output = _playbook(
        tmp_path, [_task(endpoint, keys["root"], ["ckpt-eu"], region="eu-west-1")])
    assert not made.get("failed"), made.get("msg")
    assert made["created"] == ["ckpt-eu"] and made["region"] == "eu-west-1"
    location = _boto("s3", endpoint, *keys["root"]).get_bucket_location(Bucket="ckpt-eu")
    assert location["LocationConstraint"] == "eu-west-1"


def test_refusals_name_the_bucket_and_why_and_never_show_the_secret(moto, tmp_path):
    endpoint, keys = moto
    wrong = (keys["root"][0], SECRET_MARK)
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    tasks = [
        _task(endpoint, wrong, ["ckpt-wrong"]),
        _task(endpoint, keys["looker"], ["ckpt-denied"]),
        _task(closed, wrong, ["ckpt-closed"], connect_timeout=2),
        _task(endpoint, wrong, ["Bad_Name", "ok-name", "10.0.0.1", "a..b"]),
        _task("ftp://127.0.0.1:21", wrong, ["ckpt-ftp"]),
        _task(endpoint, wrong, ["ckpt-ca"], ca_file="/nonexistent/ca.pem"),
    ]
    results, output = _playbook(tmp_path, tasks)
    rejected, denied, unreachable, bad_names, bad_endpoint, bad_ca = results
    assert rejected["failed"] and rejected["msg"] == (
        f"Look for bucket ckpt-wrong at {endpoint}: credentials rejected by {endpoint} "
        "(SignatureDoesNotMatch): check access_key and secret_key")
    assert denied["failed"] and denied["msg"] == (
        f"Create bucket ckpt-denied at {endpoint}: access denied (AccessDenied): the "
        "credentials lack s3:CreateBucket on bucket 'ckpt-denied'")
    assert denied["changed"] is False and denied["created"] == []
    assert unreachable["failed"] and unreachable["msg"] == (
        f"Look for bucket ckpt-closed at {closed}: cannot reach the S3 endpoint {closed} "
        "(connection refused)")
    assert bad_names["failed"] and bad_names["msg"].startswith(
        "not valid bucket names: 'Bad_Name', '10.0.0.1', 'a..b' (3-63 lowercase")
    assert bad_endpoint["failed"] and "is not an http:// or https:// URL" in bad_endpoint["msg"]
    assert bad_ca["failed"] and "ca_file is for an https:// endpoint" in bad_ca["msg"]
    assert all(result["created"] == [] for result in results)
    refused = {"ckpt-wrong", "ckpt-denied", "ckpt-closed", "ok-name", "ckpt-ftp", "ckpt-ca"}
    assert not refused & set(_buckets(endpoint, keys))
    # -vvv prints every result with its arguments: the secret is masked everywhere.
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in output
    assert SECRET_MARK not in output and keys["root"][1] not in output
