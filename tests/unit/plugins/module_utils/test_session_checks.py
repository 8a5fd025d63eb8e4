from datetime import datetime, timezone

import pytest
from ansible_collections.rlops.fleet.plugins.module_utils import session_checks as sc
from ansible_collections.rlops.fleet.plugins.module_utils.s3_probe import (
    BUCKET,
    NO_ANSWER,
    UNREACHABLE,
    CheckError,
)
from ansible_collections.rlops.fleet.plugins.module_utils.session_checks import run_checks

NOW = datetime(2026, 11, 22, 5, 15, 0, tzinfo=timezone.utc)


def params(**overrides):
    base = dict(session=None, name="cartpole", env_id="CartPole-v1", algo="ppo",
                source="builtin", hyperparameters=None, storage_uri="file:///tmp/s",
                storage_credentials={}, storage_check="auto", check_storage=None,
                connect_timeout=5.0, read_timeout=10.0)
    base.update(overrides)
    return base


@pytest.mark.parametrize("value", ["a", "cartpole-20261122t051500z", "0-x", "a" * 63])
def test_valid_session_ids(value):
    assert sc.session_id_error(value) is None


@pytest.mark.parametrize("value", ["", "-a", "A", "a_b", "a" * 64, "a/b", None])
def test_invalid_session_ids_say_why(value):
    assert "lowercase letters" in sc.session_id_error(value)


def test_make_session_id_sanitises_and_stamps():
    assert sc.make_session_id("My Cart_Pole!", NOW) == "my-cart-pole-20261122t051500z"
    long_id = sc.make_session_id("x" * 80, NOW)
    assert len(long_id) == 63 and sc.session_id_error(long_id) is None
    with pytest.raises(ValueError, match="at least one letter or digit"):
        sc.make_session_id("___", NOW)


def test_hyperparameters_json_and_keys():
    assert sc.parse_hyperparameters('{"n_steps": 64}') == ({"n_steps": 64}, None)
    assert sc.parse_hyperparameters(None) == ({}, None)
    _result, error = sc.parse_hyperparameters("{n_steps: 64")
    assert error.startswith("hyperparameters are not valid JSON")
    _result, error = sc.parse_hyperparameters("[1]")
    assert "must be a JSON object" in error
    message = sc.hyperparameter_errors("ppo", {"n_step": 64, "seed": 3})
    assert "'n_step' is not a PPO hyperparameter (did you mean 'n_steps'?)" in message
    assert "'seed' is set by the session" in message
    assert sc.hyperparameter_errors("dqn", {"buffer_size": 10, "n_envs": 1}) is None


def test_the_ray_backends_hyperparameters_are_checked_on_the_controller():
    # The Ray agent's names (the contract's RAY_PPO_KEYS) are refused before any host is
    # touched, as the single-host agent's are.
    assert sc.hyperparameter_errors("ppo", {"n_steps": 64, "learning_rate": 1e-3}, "ray") is None
    message = sc.hyperparameter_errors("ppo", {"use_sde": True}, "ray")
    assert message == ("hyperparameters rejected: 'use_sde' is not a PPO hyperparameter of "
                       "the ray backend's agent")
    calls = []
    _result, error = run_checks(params(backend="ray", hyperparameters={"normalize": True}),
                                s3_check=lambda *a, **k: calls.append(a))
    assert "'normalize' is not a PPO hyperparameter of the ray backend's agent" in error
    _result, error = run_checks(params(hyperparameters={"normalize": True}))
    assert error is None
    _result, error = run_checks(params(backend="ray", source="local",
                                       hyperparameters={"anything": 1}))
    assert error is None and not calls


def test_env_ids():
    assert sc.env_id_error("CartPole-v1") is None
    assert sc.env_id_error("ALE/Pong-v5") is None
    assert "not a gymnasium id" in sc.env_id_error("CartPole")
    message = sc.env_id_error("CartPol-v1", registry={"CartPole-v1", "Acrobot-v1"})
    assert message == (
        "env id 'CartPol-v1' is not registered in gymnasium: did you mean CartPole-v1?")


@pytest.mark.parametrize("uri,expected", [
    ("file:///data/store/", ("file", "/data/store", "")),
    ("s3://my-bucket/rl/runs/", ("s3", "my-bucket", "rl/runs")),
])
def test_storage_uris(uri, expected):
    assert sc.parse_storage_uri(uri) == (expected, None)


@pytest.mark.parametrize("uri,fragment", [
    ("ftp://host/x", "unsupported storage URI"),
    ("/data", "is not a URI"),
    ("file://relative/x", "must be absolute"),
    ("s3://Bad_Bucket/x", "not a valid S3 bucket name"),
    ("az://Models/x", "storage URI 'az://Models/x': 'Models' is not a valid Azure Blob "
                      "container name (3-63 lowercase letters, digits and single hyphens)"),
])
def test_bad_storage_uris(uri, fragment):
    parsed, error = sc.parse_storage_uri(uri)
    assert parsed is None and fragment in error


def test_run_checks_stops_at_first_problem_and_never_touches_storage_for_file():
    calls = []
    result, error = run_checks(params(), s3_check=lambda *a, **k: calls.append(a))
    assert error is None and result["session_id"].startswith("cartpole-")
    assert result["storage"] == {"scheme": "file", "location": "/tmp/s", "prefix": ""}
    assert result["storage_checked"] is False
    assert "file:// storage is a folder on the training host" in result["storage_check_reason"]
    assert not calls
    _result, error = run_checks(params(session="Bad"))
    assert "session id 'Bad' is invalid" in error
    _result, error = run_checks(params(env_id="Nope-v0"), registry={"CartPole-v1"})
    assert "not registered" in error
    _result, error = run_checks(params(env_id="Nope-v0", source="local"), registry={"CartPole-v1"})
    assert error is None


def test_az_with_the_vms_identity_is_left_to_the_runtime_on_the_host():
    calls = []
    result, error = run_checks(params(storage_uri="az://models/x", storage_credentials={
        "AZURE_STORAGE_ACCOUNT": "acct1"}), s3_check=lambda *a, **k: calls.append(a),
        az_check=lambda *a, **k: calls.append(a))
    assert error is None and not calls and not result["storage_checked"]
    assert result["storage_check_reason"] == (
        "no key, SAS or connection string in storage_credentials (the VM's managed identity): "
        "az:// storage is checked by the runtime on the training host (rlops-run session "
        "prepare) before the session is written")
    _result, error = run_checks(params(storage_uri="az://models/x", storage_check="controller",
                                       storage_credentials={"AZURE_STORAGE_ACCOUNT": "acct1"}),
                                az_check=lambda *a, **k: calls.append(a))
    assert error.startswith("storage az://models/x cannot be checked from the controller: ")
    assert not calls


@pytest.mark.parametrize("mode", ["auto", "host", "controller"])
@pytest.mark.parametrize("credentials, said", [
    ({}, "no Azure Storage credentials: set AZURE_STORAGE_CONNECTION_STRING, or "
         "AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN, or "
         "AZURE_STORAGE_ACCOUNT alone on a VM whose managed identity has the role Storage Blob "
         "Data Contributor"),
    ({"AZURE_STORAGE_KEY": "k3y"}, "no Azure Storage credentials"),
    ({"AZURE_STORAGE_ACCOUNT": "My_Account"},
     "AZURE_STORAGE_ACCOUNT 'My_Account' is not a storage account name"),
    ({"AZURE_STORAGE_ACCOUNT": "acct1", "AZURE_STORAGE_KEY": "k3y",
      "AZURE_STORAGE_SAS_TOKEN": "sv=1&sig=s3cret"},
     "both AZURE_STORAGE_KEY and AZURE_STORAGE_SAS_TOKEN are set: give one"),
])
def test_az_credentials_that_cannot_work_are_refused_on_the_controller(mode, credentials, said):
    # The host's runtime gets the same credentials: refused here, in every mode and in check
    # mode, before any host is touched, and never with a secret in the message.
    calls = []
    for check_mode in (False, True):
        _result, error = run_checks(params(storage_uri="az://models/x", storage_check=mode,
                                           storage_credentials=credentials),
                                    check_mode=check_mode,
                                    az_check=lambda *a, **k: calls.append(a))
        assert error.startswith("storage az://models/x: " + said), error
        assert "k3y" not in error and "s3cret" not in error
    assert not calls


AZ_KEY = {"AZURE_STORAGE_ACCOUNT": "acct1", "AZURE_STORAGE_KEY": "k3y"}


@pytest.mark.parametrize("mode, rc, stderr, checked, error, reason", [
    ("auto", 0, "", True, None, ""),
    ("auto", 2, "rlops-run: error: storage az://models/x: listing az://models/x/ failed: "
     "credentials rejected by E (AuthenticationFailed): check AZURE_STORAGE_ACCOUNT and "
     "AZURE_STORAGE_KEY\n", False, "storage az://models/x: listing az://models/x/ failed: "
     "credentials rejected by E (AuthenticationFailed): check AZURE_STORAGE_ACCOUNT and "
     "AZURE_STORAGE_KEY", ""),
    ("auto", 2, "rlops-run: error: storage az://models/x: listing az://models/x/ failed: "
     "cannot reach the Blob endpoint E (refused)\n", False, None,
     "the controller cannot check az:// storage: storage az://models/x: listing "
     "az://models/x/ failed: cannot reach the Blob endpoint E (refused); the training host "
     "checks storage"),
    ("controller", 2, "rlops-run: error: storage az://models/x: listing az://models/x/ failed: "
     "cannot reach the Blob endpoint E (refused)\n", False, "storage az://models/x: listing "
     "az://models/x/ failed: cannot reach the Blob endpoint E (refused)", ""),
])
def test_az_with_a_key_is_checked_by_the_runtime_on_the_controller(
        mode, rc, stderr, checked, error, reason):
    calls = []

    def check(uri, credentials):
        calls.append((uri, credentials))
        return rc, stderr

    result, got = run_checks(params(storage_uri="az://models/x", storage_credentials=AZ_KEY,
                                    storage_check=mode), az_check=check)
    assert calls == [("az://models/x", AZ_KEY)]
    assert (result["storage_checked"], got, result["storage_check_reason"]) == (
        checked, error, reason)
    _result, got = run_checks(params(storage_uri="az://models/x", storage_credentials=AZ_KEY),
                              check_mode=True, az_check=check)
    assert got is None and len(calls) == 1  # check mode writes no probe


class FakeCheck:
    """Stands in for s3_probe.check_storage: records its calls, answers or raises."""

    def __init__(self, answer=None, error=None):
        self.answer = answer or {"checked": True, "reason": "",
                                 "permissions": ["s3:ListBucket", "s3:PutObject", "s3:GetObject"]}
        self.error = error
        self.calls = []

    def __call__(self, uri, bucket, prefix, given, environ=None, write=True, **timeouts):
        self.calls.append(dict(uri=uri, bucket=bucket, prefix=prefix, given=given,
                               environ=environ, write=write, **timeouts))
        if self.error:
            raise self.error
        return self.answer


S3 = dict(storage_uri="s3://bbb/p", storage_credentials={"AWS_ACCESS_KEY_ID": "k"})
UNREACHABLE_ERROR = CheckError("storage s3://bbb/p: listing s3://bbb/p/ failed: cannot reach "
                               "the S3 endpoint http://10.9.9.9:9000 (connection refused)",
                               UNREACHABLE)
NO_CREDENTIALS = {"checked": False, "reason": "no AWS access key in the storage credentials, "
                  "nor in the controller's environment or shared AWS files", "permissions": []}


def test_the_check_gets_the_request_and_the_controller_environment():
    check = FakeCheck()
    result, error = run_checks(params(**S3), environ={"HOME": "/h"}, s3_check=check)
    assert error is None and result["storage_checked"] is True
    assert result["storage_check_permissions"] == ["s3:ListBucket", "s3:PutObject",
                                                   "s3:GetObject"]
    assert check.calls == [dict(uri="s3://bbb/p", bucket="bbb", prefix="p",
                                given={"AWS_ACCESS_KEY_ID": "k"}, environ={"HOME": "/h"},
                                write=True, connect_timeout=5.0, read_timeout=10.0)]


def test_check_mode_only_reads():
    check = FakeCheck()
    run_checks(params(**S3), check_mode=True, environ={}, s3_check=check)
    assert check.calls[0]["write"] is False


@pytest.mark.parametrize("mode, check, error_fragment, reason_fragment", [
    # auto: an endpoint the controller cannot connect to, or no credentials here: the host.
    ("auto", FakeCheck(error=UNREACHABLE_ERROR), None,
     "the controller cannot reach the S3 endpoint: storage s3://bbb/p: listing"),
    ("auto", FakeCheck(answer=NO_CREDENTIALS), None, "no AWS access key"),
    # Anything else fails at once, in auto mode too.
    ("auto", FakeCheck(error=CheckError("storage s3://bbb/p: listing s3://bbb/p/ failed: the "
                                        "S3 endpoint E accepted the connection but sent no "
                                        "answer within 10 s", NO_ANSWER)),
     "accepted the connection but sent no answer within 10 s", ""),
    ("auto", FakeCheck(error=CheckError("bucket 'bbb' does not exist at E", BUCKET)),
     "bucket 'bbb' does not exist at E", ""),
    # controller: unreachable and no credentials fail too.
    ("controller", FakeCheck(error=UNREACHABLE_ERROR), "cannot reach the S3 endpoint", ""),
    ("controller", FakeCheck(answer=NO_CREDENTIALS),
     "storage s3://bbb/p cannot be checked from the controller: no AWS access key", ""),
])
def test_what_each_mode_does(mode, check, error_fragment, reason_fragment):
    result, error = run_checks(params(storage_check=mode, **S3), environ={}, s3_check=check)
    if error_fragment:
        assert error_fragment in error
    else:
        assert error is None
    assert result["storage_checked"] is False
    assert reason_fragment in result["storage_check_reason"]
    if reason_fragment:
        assert result["storage_check_reason"].endswith("; the training host checks storage")


def test_host_mode_and_the_deprecated_bool():
    check = FakeCheck()
    result, error = run_checks(params(storage_check="host", **S3), s3_check=check)
    assert (error, result["storage_checked"], check.calls) == (None, False, [])
    assert result["storage_check_reason"] == (
        "storage_check is host: the training host checks storage")
    run_checks(params(check_storage=False, **S3), s3_check=check)
    assert check.calls == []
    # check_storage true is storage_check controller: unreachable fails.
    _result, error = run_checks(params(check_storage=True, **S3), environ={},
                                s3_check=FakeCheck(error=UNREACHABLE_ERROR))
    assert "cannot reach the S3 endpoint" in error


@pytest.mark.parametrize("name", ["connect_timeout", "read_timeout"])
def test_timeouts_must_be_positive(name):
    _result, error = run_checks(params(**{name: 0.0}, **S3), s3_check=FakeCheck())
    assert error == f"{name} must be more than 0 seconds, got 0.0"
