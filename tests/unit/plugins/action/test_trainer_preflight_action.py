"""rlops.fleet.trainer_preflight's action plugin: the controller's checks in the worker, what
it asks the host (trainer_host_info once; storage_check only when the controller could not
check s3:// storage), the facts it returns, and nothing asked of the host on bad input."""

import json
from types import SimpleNamespace

import pytest
from ansible_collections.rlops.fleet.plugins.action.trainer_preflight import ActionModule
from ansible_collections.rlops.fleet.plugins.filter.trainer_venv import venv_spec
from trainer_inputs import trainer_inputs

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
    return trainer_inputs(**dict({"runtime_source_path": runtime, "env_id": "CartPole-v1",
                                  "settings": {"total_timesteps": 2048}}, **overrides))


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
                      ({"backend": "ray", "hyperparameters": {"use_sde": True}},
                       "'use_sde' is not a PPO hyperparameter of the ray backend's agent"),
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


STORED = "/data/storage/cartpole-1/config/requirements.lock"
RECORDED = venv_spec(["rlops-runtime[s3,sb3]", "torch==2.13.0"], "old==1\n", "3.11", [])


def resume(runtime, **overrides):
    return inputs(runtime, mode="resume", env_id=None, **overrides)


def test_a_resume_takes_the_set_it_recorded_on_the_host(runtime):
    record = inputs(runtime)["record"]
    result, calls = run({"inputs": resume(runtime)},
                        {"rlops.fleet.trainer_host_info": host_info(files={record: RECORDED})})
    assert calls[0][1]["read"] == [record, STORED]
    assert result["spec"] == RECORDED and "new_spec" not in result
    assert (result["record_from_storage"], result["set_from"]) == (False, "host")
    moved = dict(host_info(files={record: RECORDED}), python={"version": "3.12"})
    result, _calls = run({"inputs": resume(runtime)}, {"rlops.fleet.trainer_host_info": moved})
    assert "was installed with Python 3.11" in result["msg"]


def test_a_resume_without_its_set_on_the_host_reads_file_storage_in_the_same_host_read(runtime):
    record = inputs(runtime)["record"]
    answers = {"rlops.fleet.trainer_host_info": host_info(files={record: None, STORED: RECORDED})}
    result, calls = run({"inputs": resume(runtime)}, answers)
    assert [name for name, _args in calls] == ["rlops.fleet.trainer_host_info"]
    assert (result["spec"], result["set_from"]) == (RECORDED, "storage")
    assert result["record_from_storage"] is True and result["new_spec"].endswith("six==1.17.0\n")
    # Stage check (before the host roles) leaves it to stage again.
    result, _calls = run({"inputs": resume(runtime), "stage": "check"}, answers)
    assert (result["spec"], result["set_from"]) == ("", "storage") and not result.get("failed")
    # None recorded: a new session's set.
    result, _calls = run({"inputs": resume(runtime)}, {
        "rlops.fleet.trainer_host_info": host_info(files={record: None, STORED: None})})
    assert (result["spec"], result["set_from"]) == (result["new_spec"], "none recorded")
    # What storage recorded is checked as a record on the host is.
    result, _calls = run({"inputs": resume(runtime, requirements=["x"])}, answers)
    assert result["msg"].startswith("trainer_requirements cannot change on resume")
    moved = {"rlops.fleet.trainer_host_info": dict(answers["rlops.fleet.trainer_host_info"],
                                                   python={"version": "3.12"})}
    result, _calls = run({"inputs": resume(runtime)}, moved)
    assert "session cartpole-1 was installed with Python 3.11" in result["msg"], result
    bad = {"rlops.fleet.trainer_host_info": host_info(files={record: None, STORED: "pip\n"})}
    result, _calls = run({"inputs": resume(runtime)}, bad)
    assert result["msg"].startswith("the recorded set of session cartpole-1 in storage: ")


S3 = {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "s3cr3t-value",
      "RLOPS_S3_ENDPOINT_URL": "http://127.0.0.1:9"}


def test_s3_storage_the_controller_cannot_reach_is_read_from_the_host(runtime):
    record = inputs(runtime)["record"]
    args = {"inputs": resume(runtime, storage_uri="s3://bucket/rl", storage_credentials=S3)}
    host = {"rlops.fleet.trainer_host_info": host_info(files={record: None}),
            "rlops.fleet.storage_check": {"checked": True, "content": RECORDED}}
    result, calls = run(args, host)
    assert [name for name, _args in calls] == [
        "rlops.fleet.storage_check", "rlops.fleet.trainer_host_info", "rlops.fleet.storage_check"]
    assert calls[1][1]["read"] == [record]
    assert calls[2][1] == {"storage_uri": "s3://bucket/rl", "storage_credentials": S3,
                           "read": "cartpole-1/config/requirements.lock"}
    assert (result["spec"], result["set_from"]) == (RECORDED, "storage")
    # The check passes, the read is refused.
    refused = {"failed": True, "msg": "storage s3://bucket/rl: reading k failed: access denied"}
    action = Action(args, host)
    original = action._execute_module

    def execute(module_name=None, module_args=None, task_vars=None, **kwargs):
        if module_name == "rlops.fleet.storage_check" and "read" in module_args:
            action.calls.append((module_name, module_args))
            return dict(refused)
        return original(module_name, module_args, task_vars, **kwargs)

    action._execute_module = execute
    result = action.run(task_vars={"inventory_hostname": "h1"})
    assert result["failed"] and result["msg"] == (
        "session cartpole-1: h1 has no config/requirements.lock, and its recorded set could not"
        " be read from storage: storage s3://bucket/rl: reading k failed: access denied")
    assert "s3cr3t-value" not in json.dumps(result)


def test_s3_storage_the_controller_checked_is_read_from_the_controller(runtime, monkeypatch):
    import ansible_collections.rlops.fleet.plugins.action.trainer_preflight as plugin

    record = inputs(runtime)["record"]
    reads = []

    def checks(params, registry=None, check_mode=False):
        return {"storage_checked": True, "storage_check_reason": ""}, None

    def read(uri, bucket, prefix, key, given, environ=None, **timeouts):
        reads.append((uri, bucket, prefix, key, given, environ is not None))
        if bucket == "gone":
            raise plugin.CheckError(f"storage s3://gone/rl: reading {key} failed: why", "bucket")
        return {"content": RECORDED}

    monkeypatch.setattr(plugin, "run_checks", checks)
    monkeypatch.setattr(plugin, "read_storage", read)
    args = {"inputs": resume(runtime, storage_uri="s3://bucket/rl", storage_credentials=S3)}
    result, calls = run(args, {"rlops.fleet.trainer_host_info": host_info(files={record: None})})
    assert [name for name, _args in calls] == ["rlops.fleet.trainer_host_info"]
    assert reads == [("s3://bucket/rl", "bucket", "rl", "cartpole-1/config/requirements.lock",
                      S3, True)]
    assert (result["spec"], result["set_from"]) == (RECORDED, "storage")
    # Stage check reads it too (storage the controller reached): a failure before the host roles.
    result, _calls = run(dict(args, stage="check"),
                         {"rlops.fleet.trainer_host_info": host_info(files={record: None})})
    assert (result["spec"], result["set_from"]) == (RECORDED, "storage") and len(reads) == 2
    gone = {"inputs": resume(runtime, storage_uri="s3://gone/rl", storage_credentials=S3)}
    result, _calls = run(gone, {"rlops.fleet.trainer_host_info": host_info(files={record: None})})
    assert result["msg"].endswith("could not be read from storage: storage s3://gone/rl:"
                                  " reading cartpole-1/config/requirements.lock failed: why")


def test_the_read_after_the_host_roles_refuses_a_new_session_that_exists(runtime):
    first, _calls = run({"inputs": inputs(runtime)},
                        {"rlops.fleet.trainer_host_info": host_info()})
    again = {"inputs": inputs(runtime), "stage": "again", "preflight": first}
    result, calls = run(again, {"rlops.fleet.trainer_host_info": host_info(checkpoints=1)})
    assert calls == [("rlops.fleet.trainer_host_info", {
        "stat": ["/data/sessions"], "checkpoints": "/data/sessions/cartpole-1/checkpoints",
        "commands": [], "python_modules": ["packaging"], "read": []})]
    assert "already exists on h1" in result["msg"]
    record = inputs(runtime)["record"]
    first, _calls = run({"inputs": resume(runtime), "stage": "check"},
                        {"rlops.fleet.trainer_host_info": host_info(files={record: None})})
    assert first["spec"] == "" and first["record_from_storage"] is True
    again = {"inputs": resume(runtime), "stage": "again", "preflight": first}
    # The host roles mounted the data volume that holds storage's folder.
    result, calls = run(again, {"rlops.fleet.trainer_host_info": {
        "paths": {"/data/sessions": {"isdir": True}}, "checkpoints": 1, "commands": {},
        "python_modules": {"packaging": True}, "user": None, "python": {},
        "files": {record: None, STORED: RECORDED}}})
    assert not result.get("failed"), result
    assert calls[0][1]["read"] == [record, STORED]
    # The first result, with the new read over its host read, and the set: one result.
    assert result["host"]["checkpoints"] == 1 and result["host"]["files"][STORED] == RECORDED
    assert result["host"]["paths"] == {"/data/sessions": {"isdir": True}}
    assert result["host"]["python"]["version"] == "3.11" and result["host"]["user"]["name"]
    assert (result["spec"], result["set_from"]) == (RECORDED, "storage")
    assert result["manager"] == "systemd" and result["owner_group"] == first["owner_group"]


def test_the_read_after_the_host_roles_needs_the_first_result(runtime):
    result, calls = run({"inputs": inputs(runtime), "stage": "again"},
                        {"rlops.fleet.trainer_host_info": host_info()})
    assert result["failed"] and "stage again needs preflight" in result["msg"] and calls == []
