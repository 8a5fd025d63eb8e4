"""The trainer role's preflight inputs (vars/main.yml __trainer_preflight_inputs) for a good
new session, shared by the tests of rlops.fleet.trainer_preflight's decisions
(module_utils) and of its action plugin; each test overrides what it is about."""

DEFAULTS = {"trainer_torch_requirement": "torch==2.13.0", "trainer_requirements": [],
            "trainer_runtime_extras": ["sb3", "s3"], "trainer_requirements_file": ""}


def trainer_inputs(**overrides):
    base = dict(session_id="cartpole-1", mode="new", state="started", data_root="/data",
                venv_root="/data/venvs", source="builtin", source_path="", source_repo="",
                source_version="", entrypoint=[], requirements=[], requirements_file="",
                torch_requirement="torch==2.13.0", runtime_extras=["sb3", "s3"], runtime_lock="",
                runtime_source_path="/src/runtime", wheelhouse="", start_timeout=120, algo=None,
                env_id=None, hyperparameters=None, env=None, storage_uri="file:///data/storage",
                storage_credentials={}, storage_check="auto", user="", group="",
                python="python3", service_manager="auto", settings={}, defaults=DEFAULTS,
                record="/data/sessions/cartpole-1/config/requirements.lock",
                checkpoints="/data/sessions/cartpole-1/checkpoints", read_paths=["/data/sessions"])
    base.update(overrides)
    return base
