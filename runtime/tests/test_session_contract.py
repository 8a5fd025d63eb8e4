"""The session contract's pure rules (rlops_runtime.session_contract)."""

from __future__ import annotations

import ast
import sys
from dataclasses import fields
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from rlops_runtime import session_contract as contract
from rlops_runtime.session_contract import ContractError
from rlops_runtime.supervisor import RunConfig

NOW = datetime(2026, 11, 22, 5, 15, 0, tzinfo=timezone.utc)
SOURCE = Path(contract.__file__)


def test_standard_library_only_and_no_package_imports() -> None:
    """The controller runs a byte-identical copy: nothing of the package may be imported."""
    tree = ast.parse(SOURCE.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"relative import of {node.module}"
            imported.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported


@pytest.mark.parametrize("value", ["a", "cartpole-20261122t051500z", "0-x", "a" * 63])
def test_valid_session_ids(value) -> None:
    assert contract.validate_session_id(value) == value
    assert contract.session_id_error(value) is None


@pytest.mark.parametrize("value", ["", "-a", "A", "a_b", "a" * 64, "a/b", "a\n", None, 3])
def test_invalid_session_ids_say_why(value) -> None:
    with pytest.raises(ContractError, match="use 1-63 lowercase letters"):
        contract.validate_session_id(value)


def test_make_session_id() -> None:
    assert contract.make_session_id("  My Run_v2!!  ", NOW) == "my-run-v2-20261122t051500z"
    plus_two = NOW.astimezone(timezone(timedelta(hours=2)))
    assert contract.make_session_id("x", plus_two) == "x-20261122t051500z"
    assert contract.make_session_id("x", NOW.replace(tzinfo=None)) == "x-20261122t051500z"
    long_id = contract.make_session_id("a" * 45 + "-" + "b" * 40, NOW)
    assert len(long_id) <= 63 and contract.session_id_error(long_id) is None
    with pytest.raises(ContractError, match="at least one letter or digit"):
        contract.make_session_id("___", NOW)


def test_host_session_id() -> None:
    base = "cartpole-20261122t051500z"
    assert contract.host_session_id(base, "Trainer_1", 1) == base
    assert contract.host_session_id(base, "Trainer_1", 3) == base + "-trainer-1"
    long_host = contract.host_session_id(base, "h" * 60 + ".example", 2)
    assert len(long_host) == 63 and contract.session_id_error(long_host) is None
    assert contract.host_session_id(base, "x" * 37 + "--y", 2) == base + "-" + "x" * 37
    with pytest.raises(ContractError):
        contract.host_session_id("Bad", "h", 2)


@pytest.mark.parametrize("uri, parsed", [
    ("file:///data/store/", ("file", "/data/store", "")),
    ("file:///", ("file", "/", "")),
    ("s3://my-bucket", ("s3", "my-bucket", "")),
    ("s3://my-bucket/rl/runs/", ("s3", "my-bucket", "rl/runs")),
    ("az://models/rl/runs/", ("az", "models", "rl/runs")),
    ("az://m0d-els", ("az", "m0d-els", "")),
])
def test_storage_uris(uri, parsed) -> None:
    result = contract.parse_storage_uri(uri)
    assert (result.scheme, result.location, result.prefix) == parsed
    assert result.as_dict() == dict(zip(("scheme", "location", "prefix"), parsed))


@pytest.mark.parametrize("uri, message", [
    ("/data", "storage URI '/data' is not a URI: use file:///path, s3://bucket/prefix or "
              "az://container/prefix"),
    (None, "storage URI None is not a URI"),
    ("ftp://host/x", "unsupported storage URI 'ftp://host/x': use file:///path, s3://"),
    ("file://relative/x", "a file:// path must be absolute (file:///abs/path)"),
    ("s3://", "storage URI 's3://' has no bucket"),
    ("s3://Bad_Bucket/x", "'Bad_Bucket' is not a valid S3 bucket name"),
    ("s3://b/x?versionId=1", "'?' and '#' have no meaning"),
    ("az://mo--dels/x", "storage URI 'az://mo--dels/x': 'mo--dels' is not a valid Azure Blob "
                        "container name (3-63 lowercase letters, digits and single hyphens)"),
    ("az://", "storage URI 'az://': '' is not a valid Azure Blob container name"),
])
def test_bad_storage_uris(uri, message) -> None:
    with pytest.raises(ContractError) as err:
        contract.parse_storage_uri(uri)
    assert message in str(err.value)
    assert contract.storage_uri_error(uri) == str(err.value)


def test_storage_keys() -> None:
    sid = "s-20261122t051500z"
    assert contract.latest_key(sid) == f"{sid}/checkpoints/LATEST"
    assert contract.manifest_key(sid, 4096) == f"{sid}/checkpoints/000000004096/manifest.json"
    assert contract.config_key(sid, "run.json") == f"{sid}/config/run.json"
    with pytest.raises(ContractError, match="not a session config file"):
        contract.config_key(sid, "storage.env")  # credentials never go to storage
    assert contract.parse_step("000000004096") == 4096
    assert contract.parse_step(".tmp-4096-1") is None


@pytest.mark.parametrize("data, step", [
    (b"4096\n", 4096), (None, None), (b"x", None), (b"-1", None), (b"\xff", None)])
def test_parse_latest(data, step) -> None:
    assert contract.parse_latest(data) == step


def test_fetch_candidates_are_latest_then_earlier_never_above() -> None:
    assert contract.fetch_candidates(300, [100, 200, 300, 400]) == [300, 200, 100]
    # LATEST names a step whose manifest is missing: it is still tried first (and fails).
    assert contract.fetch_candidates(500, [100, 200]) == [500, 200, 100]
    assert contract.fetch_candidates(None, [100, 300, 200]) == [300, 200, 100]
    assert contract.fetch_candidates(None, []) == []


def test_manifest_problems() -> None:
    good = {"format": 1, "step": 5, "files": [{"path": "a/b", "size": 1, "sha256": "x"}]}
    assert contract.manifest_problems(good) == []
    bad = {**good, "files": [{"path": "../x", "size": 1, "sha256": "x"}]}
    assert contract.manifest_problems(bad) == [f"manifest entry {bad['files'][0]!r} is malformed"]
    assert contract.manifest_problems([]) == ["manifest is not a JSON object"]


def test_run_defaults_are_runconfigs() -> None:
    defaults = RunConfig(session_id="x", storage_uri="file:///x")
    assert {f.name for f in fields(RunConfig)} == set(contract.RUN_KEYS)
    assert {k: getattr(defaults, k) for k in contract.RUN_DEFAULTS} == contract.RUN_DEFAULTS
    assert defaults.command[1:] == list(contract.AGENT_ARGS)
    assert set(contract.RESUME_POLICY) == set(contract.RUN_KEYS)


@pytest.mark.parametrize("data, message", [
    ([], "run.json must be a JSON object"),
    ({"session_id": "s", "storage_uri": "file:///x", "bogus": 1}, "unknown keys bogus"),
    ({"session_id": "s"}, "missing storage_uri"),
    ({"session_id": "S", "storage_uri": "file:///x"}, "session id 'S' is invalid"),
    ({"session_id": "s", "storage_uri": "file:///x", "command": []}, "command must be"),
    ({"session_id": "s", "storage_uri": "file:///x", "notices": "x"}, "notices must be one of"),
    ({"session_id": "s", "storage_uri": "file:///x", "final_sync_timeout": True}, "final_sync"),
    ({"session_id": "s", "storage_uri": "file:///x", "imds_endpoint": "x"}, "http:// URL"),
    ({"session_id": "s", "storage_uri": "file:///x", "backend": "racer"},
     "backend must be one of supervisor, ray, deepracer, got 'racer'"),
])
def test_check_run_json(data, message) -> None:
    with pytest.raises(ContractError, match=message):
        contract.check_run_json(data)


def test_backend_is_run_jsons_with_the_supervisor_by_default() -> None:
    assert contract.RUN_DEFAULTS[contract.BACKEND_KEY] == contract.DEFAULT_BACKEND == "supervisor"
    assert contract.DEFAULT_BACKEND in contract.BACKEND_NAMES
    assert contract.backend_name({"session_id": "s"}) == "supervisor"  # an older runtime's
    assert contract.backend_name({"backend": ""}) == "supervisor"
    assert contract.backend_name(None) == "supervisor"
    assert contract.backend_name({"backend": "ray"}) == "ray"
    run = {"session_id": "s", "storage_uri": "file:///x", "backend": "supervisor"}
    assert contract.check_run_json(run) is run
    assert contract.RESUME_POLICY["backend"] == contract.REFUSE


def test_each_backend_has_a_reference_agent_and_its_algorithms() -> None:
    assert set(contract.BACKEND_AGENT_ARGS) == set(contract.BACKEND_NAMES)
    assert set(contract.BACKEND_ALGOS) == set(contract.BACKEND_NAMES)
    assert contract.requested_setting_problems({"backend": "ray"}) == []
    assert contract.requested_setting_problems({"backend": "ray", "algo": "dqn"}) == [
        "trainer_algo dqn is not one the ray backend's reference agent trains (ppo)"]
    assert contract.requested_setting_problems({"algo": "dqn"}) == []


def test_settings_coerced_and_ranged() -> None:
    assert contract.coerce_setting("total_timesteps", "300") == 300
    assert contract.coerce_setting("stop_grace", "2.5") == 2.5
    assert contract.coerce_setting("seed", "") is None
    with pytest.raises(ContractError, match="trainer_total_timesteps must be a number"):
        contract.coerce_setting("total_timesteps", "lots")
    config = {**contract.RUN_DEFAULTS, "device": "tpu", "total_timesteps": 0, "stop_grace": -1}
    assert contract.setting_problems(config) == [
        "trainer_device must be one of auto, cpu, cuda, got 'tpu'",
        "trainer_total_timesteps must be greater than 0, got 0",
        "trainer_stop_grace must not be negative, got -1",
    ]


def test_requested_setting_problems() -> None:
    assert contract.requested_setting_problems(
        {"total_timesteps": "300", "seed": None, "device": "cpu", "env": {"A": 1}}) == []
    assert contract.requested_setting_problems({"total_timesteps": "0", "seed": "-1"}) == [
        "trainer_total_timesteps must be greater than 0, got 0",
        "trainer_seed must not be negative, got -1",
    ]
    assert contract.requested_setting_problems({"stop_grace": "soon"}) == [
        "trainer_stop_grace must be a number, got 'soon'"]
    assert contract.requested_setting_problems({"speed": 1}) == ["unknown settings: speed"]


def test_hyperparameter_keys() -> None:
    assert contract.hyperparameter_key_problems("ppo", {"n_steps": 8, "verbose": 1,
                                                        "n_envs": 2}) == []
    assert contract.hyperparameter_key_problems("ppo", {"n_step": 8, "seed": 3}) == [
        "'n_step' is not a PPO hyperparameter (did you mean 'n_steps'?)",
        "'seed' is set by the session, not by hyperparameters",
    ]
    assert contract.hyperparameter_key_problems("a2c", {}) == [
        "unknown algo 'a2c'; choose one of ppo, dqn"]
    # The Ray backend's agent takes its own set, in the session's names.
    assert contract.hyperparameter_key_problems(
        "ppo", {"n_steps": 8, "learning_rate": 1e-3, "policy_kwargs": {}}, "ray") == []
    assert contract.hyperparameter_key_problems(
        "ppo", {"use_sde": True, "learning_rat": 1, "env": 1}, "ray") == [
        "'env' is set by the session, not by hyperparameters",
        "'learning_rat' is not a PPO hyperparameter of the ray backend's agent "
        "(did you mean 'learning_rate'?)",
        "'use_sde' is not a PPO hyperparameter of the ray backend's agent",
    ]
    assert contract.hyperparameter_key_problems("dqn", {}, "ray") == [
        "the ray backend's agent does not train DQN; it trains PPO"]
    assert contract.hyperparameter_key_problems("ppo", {}, "slurm") == [
        "unknown backend 'slurm'; choose one of supervisor, ray, deepracer"]
    assert contract.BACKEND_ALGOS == {"supervisor": ("ppo", "dqn"), "ray": ("ppo",),
                                      "deepracer": ("ppo",)}
    assert contract.parse_hyperparameters('{"n_steps": 8}') == {"n_steps": 8}
    assert contract.parse_hyperparameters(None) == {}
    with pytest.raises(ContractError, match="not valid JSON"):
        contract.parse_hyperparameters("{n_steps")
    with pytest.raises(ContractError, match="must be a JSON object, got list"):
        contract.parse_hyperparameters("[1]")


@pytest.mark.parametrize("algo", contract.ALGOS)
def test_algo_keys_are_the_installed_sb3s(algo) -> None:
    import inspect

    sb3 = pytest.importorskip("stable_baselines3")
    signature = set(inspect.signature(getattr(sb3, algo.upper()).__init__).parameters) - {"self"}
    assert set(contract.ALGO_KEYS[algo]) | set(contract.SESSION_OWNED) | {"policy"} == signature
