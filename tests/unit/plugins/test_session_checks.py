import inspect
from datetime import datetime, timezone

import pytest
from ansible_collections.rlops.fleet.plugins.module_utils import session_checks as sc
from ansible_collections.rlops.fleet.plugins.modules.session_preflight import run_checks

NOW = datetime(2026, 11, 22, 5, 15, 0, tzinfo=timezone.utc)


def params(**overrides):
    base = dict(session=None, name="cartpole", env_id="CartPole-v1", algo="ppo",
                source="builtin", hyperparameters=None, storage_uri="file:///tmp/s",
                storage_credentials={}, check_storage=False)
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
    with pytest.raises(ValueError, match="no letters or digits"):
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


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_known_keys_match_installed_sb3(algo):
    sb3 = pytest.importorskip("stable_baselines3")
    cls = {"ppo": sb3.PPO, "dqn": sb3.DQN}[algo]
    signature = set(inspect.signature(cls.__init__).parameters) - {"self"}
    assert set(sc.ALGO_KEYS[algo]) | set(sc._SESSION_OWNED) | {"policy"} == signature


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
    ("az://models/x", ("az", "models", "x")),
])
def test_storage_uris(uri, expected):
    assert sc.parse_storage_uri(uri) == (expected, None)


@pytest.mark.parametrize("uri,fragment", [
    ("ftp://host/x", "unsupported storage URI"),
    ("/data", "is not a URI"),
    ("file://relative/x", "must be absolute"),
    ("s3://Bad_Bucket/x", "not a valid S3 bucket name"),
])
def test_bad_storage_uris(uri, fragment):
    parsed, error = sc.parse_storage_uri(uri)
    assert parsed is None and fragment in error


def test_run_checks_stops_at_first_problem_and_never_touches_storage_for_file():
    calls = []
    result, error = run_checks(params(), s3_check=lambda *a: calls.append(a))
    assert error is None and result["session_id"].startswith("cartpole-")
    assert result["storage"] == {"scheme": "file", "location": "/tmp/s", "prefix": ""}
    assert not calls
    _result, error = run_checks(params(session="Bad"))
    assert "session id 'Bad' is invalid" in error
    _result, error = run_checks(params(env_id="Nope-v0"), registry={"CartPole-v1"})
    assert "not registered" in error
    _result, error = run_checks(params(env_id="Nope-v0", source="local"), registry={"CartPole-v1"})
    assert error is None


def test_run_checks_reports_s3_problem():
    seen = []

    def s3_check(bucket, credentials):
        seen.append((bucket, credentials))
        return "storage s3://b: the bucket does not exist"

    _result, error = run_checks(params(storage_uri="s3://bbb/p", check_storage=True,
                                       storage_credentials={"AWS_ACCESS_KEY_ID": "k"}),
                                s3_check=s3_check)
    assert error == "storage s3://b: the bucket does not exist"
    assert seen == [("bbb", {"AWS_ACCESS_KEY_ID": "k"})]
