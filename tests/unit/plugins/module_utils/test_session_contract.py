"""The controller runs the runtime's session contract, not a second implementation.

- plugins/module_utils/session_contract.py is a byte-identical copy of
  runtime/rlops_runtime/session_contract.py (`make contract-sync` refreshes it);
- for a table of inputs, the controller (session_checks, session_preflight) and the runtime
  (rlops_runtime) give the same verdict, in the same words.
"""

from __future__ import annotations

import filecmp
from pathlib import Path

import pytest
from ansible_collections.rlops.fleet.plugins.module_utils import session_checks as sc
from ansible_collections.rlops.fleet.plugins.module_utils import session_contract
from ansible_collections.rlops.fleet.plugins.modules.session_preflight import run_checks

REPO = Path(__file__).resolve().parents[4]
RUNTIME_COPY = REPO / "runtime/rlops_runtime/session_contract.py"
CONTROLLER_COPY = REPO / "plugins/module_utils/session_contract.py"

runtime_contract = pytest.importorskip("rlops_runtime.session_contract")


def test_the_controller_copy_is_the_runtimes_byte_for_byte():
    assert filecmp.cmp(RUNTIME_COPY, CONTROLLER_COPY, shallow=False), (
        "plugins/module_utils/session_contract.py differs from the runtime's: edit "
        "runtime/rlops_runtime/session_contract.py and run `make contract-sync`")
    assert Path(session_contract.__file__).resolve() == CONTROLLER_COPY


def test_make_contract_sync_is_the_way_to_refresh_it():
    makefile = (REPO / "Makefile").read_text()
    assert "contract-sync:" in makefile
    assert "runtime/rlops_runtime/session_contract.py" in makefile


def _runtime_verdict(check, *args):
    try:
        check(*args)
    except ValueError as exc:
        return str(exc)
    return None


SESSION_IDS = ["cartpole-20261122t051500z", "a", "a" * 63, "a" * 64, "-a", "A", "a_b", "a\n",
               "", None]


@pytest.mark.parametrize("value", SESSION_IDS)
def test_session_ids(value):
    from rlops_runtime.session import validate_session_id

    assert sc.session_id_error(value) == _runtime_verdict(validate_session_id, value)


STORAGE_URIS = ["file:///data/store/", "file:///", "s3://my-bucket", "s3://my-bucket/rl/runs/",
                "/data", "ftp://host/x", "file://relative/x", "s3://", "s3://Bad_Bucket/x",
                "s3://b/x#y", "az://models/x"]


@pytest.mark.parametrize("uri", STORAGE_URIS)
def test_storage_uris(uri):
    from rlops_runtime.storage import StorageError, parse_uri

    controller, error = sc.parse_storage_uri(uri)
    try:
        runtime, runtime_error = parse_uri(uri), None
    except StorageError as exc:
        runtime, runtime_error = None, str(exc)
    assert (controller, error) == (runtime, runtime_error)


HYPERPARAMETERS = [
    ("ppo", {}),
    ("ppo", {"n_steps": 64, "verbose": 1}),  # verbose: once refused here, taken there
    ("dqn", {"buffer_size": 1000, "verbose": 0, "n_envs": 1}),
    ("ppo", {"n_step": 64}),
    ("ppo", {"buffer_size": 10}),  # a DQN key
    ("ppo", {"seed": 3}),
    ("dqn", {"tensorboard_log": "/x", "policy": "MlpPolicy"}),
]


@pytest.mark.parametrize("algo, hyperparameters", HYPERPARAMETERS)
def test_hyperparameters(algo, hyperparameters):
    pytest.importorskip("stable_baselines3")
    from rlops_runtime.agents.hyperparams import validate_hyperparameters

    runtime = validate_hyperparameters(algo, hyperparameters)
    params = dict(session=None, name="x", env_id=None, algo=algo, source="builtin",
                  hyperparameters=hyperparameters, storage_uri=None, storage_credentials={},
                  storage_check="auto", check_storage=None, connect_timeout=5.0,
                  read_timeout=10.0)
    _result, error = run_checks(params)
    if runtime:
        assert error == "hyperparameters rejected: " + "; ".join(runtime)
    else:
        assert error is None


@pytest.mark.parametrize("env_id", ["CartPole-v1", "CartPol-v1", "CartPole", "zzzz-v0"])
def test_env_ids(env_id):
    gymnasium = pytest.importorskip("gymnasium")
    from rlops_runtime.agents.hyperparams import validate_env_id

    assert sc.env_id_error(env_id, set(gymnasium.registry)) == validate_env_id(env_id)
