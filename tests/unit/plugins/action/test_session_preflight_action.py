"""rlops.fleet.session_preflight's action plugin, in the worker as a task on localhost runs
it: bad arguments refused before any check, the checks' verdicts, and no secret of the storage
credentials in any result. The checks themselves: tests/unit/plugins/module_utils/
test_session_checks.py; real S3 requests: tests/integration/moto/test_s3_probe_moto.py."""

import json
from types import SimpleNamespace

import pytest
from ansible.errors import AnsibleActionFail
from ansible_collections.rlops.fleet.plugins.action.session_preflight import ActionModule

SECRET = "wJalrXUtnFEMI-K7MDENG-known-secret"
TOKEN = "FQoGZXIvYXdzEXAMPLE-known-token"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "AKIAKNOWNKEY00000000", "AWS_SECRET_ACCESS_KEY": SECRET,
               "AWS_SESSION_TOKEN": TOKEN, "RLOPS_S3_ENDPOINT_URL": "http://127.0.0.1:1"}


def preflight(args, check_mode=False):
    """session_preflight's action plugin in the worker, as a task on localhost runs it."""
    task = SimpleNamespace(args=dict(args), async_val=0, check_mode=check_mode, diff=False,
                           action="rlops.fleet.session_preflight")
    connection = SimpleNamespace(_shell=SimpleNamespace(tmpdir=None))
    return ActionModule(task, connection, None, None, None, None).run(task_vars={})


def test_preflight_refuses_bad_arguments_before_any_check():
    with pytest.raises(AnsibleActionFail, match="storage_check"):
        preflight({"storage_uri": "s3://bkt/p", "storage_check": "everywhere",
                   "storage_credentials": CREDENTIALS})


@pytest.mark.parametrize("args, failed", [
    # Refused by the check (nothing listens on port 1).
    ({"storage_uri": "s3://bkt/p", "storage_check": "controller", "connect_timeout": 2}, True),
    # Accepted: a file:// URI, a session id built from the name.
    ({"storage_uri": "file:///srv/rl", "name": "cartpole"}, False),
])
def test_preflight_has_no_secret_in_any_result(args, failed):
    result = preflight(dict(args, storage_credentials=CREDENTIALS))
    out = json.dumps(result)
    assert bool(result.get("failed")) is failed and result["session_id"]
    assert SECRET not in out and TOKEN not in out and "AKIAKNOWNKEY" not in out
    if failed:
        assert "http://127.0.0.1:1" in result["msg"]  # the endpoint stays readable


def test_preflight_names_a_session_and_refuses_a_bad_id():
    assert preflight({"name": "CartPole"})["session_id"].startswith("cartpole-")
    result = preflight({"session": "Not A Session"})
    assert result["failed"] and "Not A Session" in result["msg"]
