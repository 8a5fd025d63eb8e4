"""rlops.fleet.trainer_preflight's action plugin: the controller's checks in the worker, what
it asks the host (trainer_host_info once; storage_check only when the controller could not
check s3:// storage), the facts it returns, and nothing asked of the host on bad input."""

import json
from types import SimpleNamespace

import pytest
from ansible_collections.rlops.fleet.plugins.action.trainer_preflight import ActionModule
from ansible_collections.rlops.fleet.plugins.filter.trainer_venv import venv_spec

DEFAULTS = {"trainer_torch_requirement": "torch==2.13.0", "trainer_requirements": [],
            "trainer_runtime_extras": ["sb3", "s3"], "trainer_requirements_file": ""}
LOCK = "six==1.17.0\n"


@pytest.fixture(name="runtime")
def runtime_source(tmp_path):
    src = tmp_path / "runtime"
    (src / "rlops_runtime" / "agents").mkdir(parents=True)
    (src / "locks").mkdir()
    (src / "pyproject.toml").write_text("[project]\n")
    (src / "rlops_runtime" / "agents" / "env_extras.json").write_text(
        json.dumps({"LunarLander-v3": "box2d"}))
    (src / "locks" / "python3.11.txt").write_text(LOCK)
    (src / "locks" / "python3.12.txt").write_text(LOCK)
    return str(src)


def inputs(runtime, **overrides):
    base = dict(session_id="cartpole-1", mode="new", state="started", data_root="/data",
                venv_root="/data/venvs", source="builtin", source_path="", source_repo="",
                source_version="", entrypoint=[], requirements=[], requirements_file="",
                torch_requirement="torch==2.13.0", runtime_extras=["sb3", "s3"], runtime_lock="",
                runtime_source_path=runtime, wheelhouse="", start_timeout=120, algo=None,
                env_id="CartPole-v1", hyperparameters=None, env=None,
                storage_uri="file:///data/storage", storage_credentials={},
                storage_check="auto", user="", group="", python="python3",
                service_manager="auto", settings={"total_timesteps": 2048}, defaults=DEFAULTS,
                record="/data/sessions/cartpole-1/config/requirements.lock",
                checkpoints="/data/sessions/cartpole-1/checkpoints", read_paths=["/data/sessions"])
    base.update(overrides)
    return base


def host_info(**overrides):
    base = {"user": {"name": "ada", "uid": 1000, "gid": 1000, "home": "/home/ada"},
            "group": {"name": "ada", "gid": 1000},
            "python": {"version": "3.11", "executable": "/usr/bin/python3.11", "venv": True},
            "systemd_booted": True, "service_mgr": "systemd",
            "runner": {"name": "root", "uid": 0, "sudo_user": "ada"},
            "files": {}, "paths": {}, "checkpoints": 0, "commands": {},
            "python_modules": {"packaging": True}}
    base.update(overrides)
    return base


class Action(ActionModule):
    """The plugin with the host's answers given: each module run is recorded."""

    def __init__(self, args, answers, check_mode=False):
        task = SimpleNamespace(args=args, async_val=0, check_mode=check_mode, diff=False,
                               action="rlops.fleet.trainer_preflight")
        connection = SimpleNamespace(_shell=SimpleNamespace(tmpdir=None))
        super().__init__(task, connection, None, None, None)
        self.answers, self.calls = answers, []

    def _execute_module(self, module_name=None, module_args=None, task_vars=None, **_kwargs):
        self.calls.append((module_name, module_args))
        return dict(self.answers[module_name])


def run(args, answers, check_mode=False):
    action = Action(args, answers, check_mode)
    return action.run(task_vars={"inventory_hostname": "h1"}), action.calls


def test_a_new_session_reads_the_host_once_and_decides(runtime):
    result, calls = run({"inputs": inputs(runtime)},
                        {"rlops.fleet.trainer_host_info": host_info()})
    assert not result.get("failed"), result
    assert [name for name, _args in calls] == ["rlops.fleet.trainer_host_info"]
    assert calls[0][1]["default_user"] is True and calls[0][1]["read"] == []
    spec = venv_spec(["rlops-runtime[s3,sb3]", "torch==2.13.0"], LOCK.rstrip(), "3.11", [])
    assert result["spec"] == result["new_spec"] == spec
    assert result["manager"] == "systemd" and result["owner_group"] == "ada"
    assert result["record_from_storage"] is False and result["changed"] is False
    assert result["host"]["python"]["version"] == "3.11"
    assert result["storage_checked"] is False and "folder on the training host" in \
        result["storage_check_reason"]


def test_the_env_extra_joins_the_runtime_requirement(runtime):
    result, _calls = run({"inputs": inputs(runtime, env_id="LunarLander-v3")},
                         {"rlops.fleet.trainer_host_info": host_info()})
    assert result["env_extra"] == "box2d"
    assert "# requirement: rlops-runtime[box2d,s3,sb3]" in result["spec"]


def test_bad_input_is_refused_before_the_host_is_asked(runtime):
    for bad, said in [({"hyperparameters": '{"n_stepz": 1}'}, "hyperparameters rejected"),
                      ({"env_id": "NoSuchEnv-v0"}, "NoSuchEnv-v0"),
                      ({"state": "stopped"}, "trainer_state=stopped is gone"),
                      ({"runtime_source_path": "/nowhere"}, "is not the rlops_runtime package")]:
        result, calls = run({"inputs": inputs(runtime, **bad)},
                            {"rlops.fleet.trainer_host_info": host_info()})
        assert result["failed"] and said in result["msg"], (bad, result)
        assert calls == []


def test_the_host_checks_s3_storage_the_controller_cannot_reach_and_secrets_stay_hidden(runtime):
    credentials = {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "s3cr3t-value",
                   "RLOPS_S3_ENDPOINT_URL": "http://127.0.0.1:9"}
    args = {"inputs": inputs(runtime, storage_uri="s3://bucket/rl",
                             storage_credentials=credentials)}
    refusal = {"failed": True, "msg": "storage s3://bucket/rl: rejected key s3cr3t-value"}
    result, calls = run(args, {"rlops.fleet.storage_check": refusal,
                               "rlops.fleet.trainer_host_info": host_info()}, check_mode=True)
    assert [name for name, _args in calls] == ["rlops.fleet.storage_check"]
    assert calls[0][1] == {"storage_uri": "s3://bucket/rl", "storage_credentials": credentials}
    assert result["failed"] and "s3cr3t-value" not in result["msg"]
    assert result["msg"].startswith("storage s3://bucket/rl: rejected key ")
    result, calls = run(args, {"rlops.fleet.storage_check": {"checked": True},
                               "rlops.fleet.trainer_host_info": host_info()}, check_mode=True)
    assert not result.get("failed") and len(calls) == 2
    assert "cannot reach the S3 endpoint" in result["storage_check_reason"]


@pytest.mark.parametrize("host, said", [
    ({"user": None}, "trainer_user ada does not exist on h1"),
    ({"python": {"version": "3.8"}}, "must be Python 3.9 or newer on h1: it is 3.8"),
    ({"python": {"version": "3.10"}}, "is Python 3.10, for which the collection locks no versions"
     " of the venv (it has one for Python 3.11, 3.12 in "),
    ({"checkpoints": 2}, "session cartpole-1 already exists on h1: run resume.yml (2 checkpoints"),
    ({"systemd_booted": False, "service_mgr": "tini"}, None),
])
def test_what_the_host_has_is_checked_in_order(runtime, host, said):
    result, _calls = run({"inputs": inputs(runtime, service_manager="auto")},
                         {"rlops.fleet.trainer_host_info": host_info(**host)})
    if said is None:
        assert not result.get("failed") and result["manager"] == "process"
    else:
        assert result["failed"] and said in result["msg"], result


def test_systemd_asked_where_it_cannot_supervise_is_refused(runtime):
    result, _calls = run({"inputs": inputs(runtime, service_manager="systemd")},
                         {"rlops.fleet.trainer_host_info": host_info(
                             runner={"name": "ada", "uid": 1000, "sudo_user": ""})})
    assert result["msg"].startswith("trainer_service_manager=systemd needs a host booted")


def test_a_resume_takes_the_set_it_recorded_on_the_host_or_reads_it_from_storage(runtime):
    record = inputs(runtime)["record"]
    recorded = venv_spec(["rlops-runtime[s3,sb3]", "torch==2.13.0"], "old==1\n", "3.11", [])
    result, calls = run({"inputs": inputs(runtime, mode="resume", env_id=None)},
                        {"rlops.fleet.trainer_host_info": host_info(files={record: recorded})})
    assert calls[0][1]["read"] == [record]
    assert result["spec"] == recorded and "new_spec" not in result
    assert result["record_from_storage"] is False
    result, _calls = run({"inputs": inputs(runtime, mode="resume", env_id=None)},
                         {"rlops.fleet.trainer_host_info": host_info(files={record: None})})
    assert result["record_from_storage"] is True and result["spec"] == ""
    assert "# requirement: rlops-runtime[s3]" in result["boot_spec"]
    assert result["new_spec"].endswith("six==1.17.0\n")
    moved = dict(host_info(files={record: recorded}), python={"version": "3.12"})
    result, _calls = run({"inputs": inputs(runtime, mode="resume", env_id=None)},
                         {"rlops.fleet.trainer_host_info": moved})
    assert "was installed with Python 3.11" in result["msg"]


def test_the_read_after_the_host_roles_refuses_a_new_session_that_exists(runtime):
    first, _calls = run({"inputs": inputs(runtime)},
                        {"rlops.fleet.trainer_host_info": host_info()})
    again = {"inputs": inputs(runtime), "stage": "again", "preflight": first}
    result, calls = run(again, {"rlops.fleet.trainer_host_info": host_info(checkpoints=1)})
    assert calls == [("rlops.fleet.trainer_host_info", {
        "stat": ["/data/sessions"], "checkpoints": "/data/sessions/cartpole-1/checkpoints",
        "commands": [], "python_modules": ["packaging"]})]
    assert "already exists on h1" in result["msg"]
    first, _calls = run({"inputs": inputs(runtime, mode="resume")},
                        {"rlops.fleet.trainer_host_info": host_info(files={"x": "y"})})
    again = {"inputs": inputs(runtime, mode="resume"), "stage": "again", "preflight": first}
    result, _calls = run(again, {"rlops.fleet.trainer_host_info": {
        "paths": {"/data/sessions": {"isdir": True}}, "checkpoints": 1, "commands": {},
        "python_modules": {"packaging": True}}})
    assert not result.get("failed"), result
    # The first result, with the new read over its host read: one result for later tasks.
    assert result["host"]["checkpoints"] == 1 and result["host"]["files"] == {"x": "y"}
    assert result["host"]["paths"] == {"/data/sessions": {"isdir": True}}
    assert result["host"]["python"]["version"] == "3.11" and result["spec"] == first["spec"]
    assert result["manager"] == "systemd" and result["boot_spec"] == first["boot_spec"]


def test_the_read_after_the_host_roles_needs_the_first_result(runtime):
    result, calls = run({"inputs": inputs(runtime), "stage": "again"},
                        {"rlops.fleet.trainer_host_info": host_info()})
    assert result["failed"] and "stage again needs preflight" in result["msg"] and calls == []


def test_the_recorded_set_read_from_storage(runtime):
    collections = venv_spec(["rlops-runtime[s3,sb3]", "torch==2.13.0"], LOCK, "3.11", [])
    preflight = {"host": host_info(), "new_spec": collections}
    recorded = venv_spec(["rlops-runtime[s3,sb3]", "torch==2.13.0"], "old==1\n", "3.11", [])
    args = {"inputs": inputs(runtime, mode="resume", env_id=None), "stage": "record",
            "preflight": preflight}
    result, calls = run(dict(args, read={"rc": 0, "stdout": recorded}), {})
    assert result["spec"] == recorded and calls == []
    result, _calls = run(dict(args, read={"rc": 0, "stdout": "\n"}), {})
    assert result["spec"] == collections
    result, _calls = run(dict(args, read={"skipped": True}), {})
    assert result["spec"] == collections
    result, _calls = run(dict(args, read={"rc": 2, "stderr_lines": [
        "rlops-run: error: no bucket"]}), {})
    assert result["msg"] == "storage file:///data/storage from h1: no bucket"
    other = dict(args, inputs=inputs(runtime, mode="resume", env_id=None, requirements=["x"]))
    result, _calls = run(dict(other, read={"rc": 0, "stdout": recorded}), {})
    assert result["msg"].startswith("trainer_requirements cannot change on resume")
    result, _calls = run(dict(args, read={"rc": 0, "stdout": "pip freeze output\n"}), {})
    assert result["failed"] and "not a venv set written by the trainer role" in result["msg"]
