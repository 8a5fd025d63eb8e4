"""The controller runs the runtime's session contract, not a second implementation.

- plugins/module_utils/session_contract.py is a link to runtime/rlops_runtime/session_contract.py
  (so it is the same file), and what Ansible loads by that name is that file;
- for a table of inputs, the controller (session_checks, session_preflight) and the runtime
  (rlops_runtime) give the same verdict, in the same words.
"""

from __future__ import annotations

import filecmp
import os
from pathlib import Path

import pytest
from ansible_collections.rlops.fleet.plugins.module_utils import session_checks as sc
from ansible_collections.rlops.fleet.plugins.module_utils import session_contract
from ansible_collections.rlops.fleet.plugins.module_utils.session_checks import run_checks

REPO = Path(__file__).resolve().parents[4]
RUNTIME_FILE = REPO / "runtime/rlops_runtime/session_contract.py"
CONTROLLER_NAME = REPO / "plugins/module_utils/session_contract.py"

pytest.importorskip("rlops_runtime.session_contract")


def test_the_controller_runs_the_runtimes_file():
    assert CONTROLLER_NAME.is_symlink(), (
        "plugins/module_utils/session_contract.py must be a link to the runtime's file, "
        "not a copy: ln -sfn ../../runtime/rlops_runtime/session_contract.py "
        "plugins/module_utils/session_contract.py")
    # Relative, inside the collection: it survives a clone, a build and an install.
    assert os.readlink(CONTROLLER_NAME) == "../../runtime/rlops_runtime/session_contract.py"
    assert CONTROLLER_NAME.resolve() == RUNTIME_FILE
    assert Path(session_contract.__file__).resolve() == RUNTIME_FILE
    assert filecmp.cmp(CONTROLLER_NAME, RUNTIME_FILE, shallow=False)


@pytest.mark.parametrize("name", ["ray_layout"])
def test_the_controller_runs_the_runtimes_other_shared_files(name):
    # The Ray backend's layout decisions (ray_cluster's filters), shared the same way.
    import importlib

    link = REPO / f"plugins/module_utils/{name}.py"
    assert link.is_symlink(), (
        f"plugins/module_utils/{name}.py must be a link to the runtime's file, not a copy: "
        f"ln -sfn ../../runtime/rlops_runtime/{name}.py plugins/module_utils/{name}.py")
    assert os.readlink(link) == f"../../runtime/rlops_runtime/{name}.py"
    loaded = importlib.import_module(
        f"ansible_collections.rlops.fleet.plugins.module_utils.{name}")
    assert Path(loaded.__file__).resolve() == REPO / f"runtime/rlops_runtime/{name}.py"


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
