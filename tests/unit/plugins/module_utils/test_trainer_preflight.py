"""The trainer role's preflight decisions: each rule's message as the role said it in Jinja,
the first problem wins, the set, the owner and the supervisor."""

import pytest
from ansible_collections.rlops.fleet.plugins.module_utils import trainer_preflight as tp
from trainer_inputs import DEFAULTS, trainer_inputs

inputs = trainer_inputs


def who(**overrides):
    base = {"user": {"name": "ada", "uid": 1000, "gid": 1000, "home": "/home/ada"},
            "group": {"name": "ada", "gid": 1000},
            "python": {"version": "3.11", "executable": "/usr/bin/python3.11", "venv": True},
            "systemd_booted": False, "service_mgr": "tini",
            "runner": {"name": "ada", "uid": 1000, "sudo_user": ""},
            "files": {}, "paths": {}, "checkpoints": 0}
    base.update(overrides)
    return base


def controller(dirs=(), files=("/src/runtime/pyproject.toml",)):
    return {"isdir": lambda path: path in dirs, "isfile": lambda path: path in files}


def problem(fs=None, **overrides):
    return tp.input_problem(inputs(**overrides), **(fs or controller()))


def test_good_inputs_have_no_problem():
    assert problem() is None
    assert problem(controller(dirs=["/job"], files=["/job/req.txt", "/src/runtime/pyproject.toml"]),
                   source="local", source_path="/job", entrypoint=["python", "train.py"],
                   requirements_file="req.txt", hyperparameters='{"n_steps": 64}') is None
    assert problem(hyperparameters={}) is None  # an empty mapping is a mapping


@pytest.mark.parametrize("overrides, message", [
    ({"state": "stopped"}, "trainer_state=stopped is gone: the trainer role only starts sessions;"
     " stop one with playbooks/stop.yml (the session layer, rlops.fleet.session tasks_from: stop)"),
    ({"session_id": "Bad_Id"}, "trainer_session_id 'Bad_Id' is invalid: use 1-63 lowercase"
     " letters, digits and '-', starting with a letter or digit"),
    ({"venv_root": "venvs"}, "trainer_data_root (/data) and trainer_venv_root (venvs) must be"
     " absolute paths"),
    ({"source": "local", "entrypoint": ["x"]},
     "trainer_source_path is required with trainer_source=local (a folder on the controller)"),
    ({"source": "git", "entrypoint": ["x"]},
     "trainer_source_repo is required with trainer_source=git"),
    ({"source": "git", "source_repo": "https://example.invalid/x.git", "entrypoint": ["x"]},
     "trainer_source_version is required with trainer_source=git: give a commit, tag or branch of"
     " https://example.invalid/x.git (no floating default)"),
    ({"source": "git", "source_repo": "r", "source_version": "v1"},
     "trainer_entrypoint is required with trainer_source=git: the job's argv, e.g."
     " [python, train.py] (relative to the source folder)"),
    ({"entrypoint": ["python", ""]}, "trainer_entrypoint has an empty argument"),
    ({"requirements_file": "req.txt"}, "trainer_requirements_file is a path inside the job's"
     " source: use it with trainer_source local or git"),
    ({"source": "git", "source_repo": "r", "source_version": "v1", "entrypoint": ["x"],
      "requirements_file": "../req.txt"},
     "trainer_requirements_file (../req.txt) must be relative to the source folder"),
    ({"storage_uri": "ftp://x/y"}, "trainer_storage_uri: unsupported storage URI 'ftp://x/y'"),
    ({"env": {"BAD-NAME": "1"}},
     "trainer_storage_credentials and trainer_env keys must be environment variable names"),
    ({"settings": {"total_timesteps": 0, "seed": None}},
     "trainer_total_timesteps must be greater than 0"),
    ({"source": "local", "source_path": "/nonexistent/job", "entrypoint": ["x"]},
     "trainer_source_path /nonexistent/job is not a folder on the controller"),
    ({"runtime_source_path": "/elsewhere"}, "trainer_runtime_source_path /elsewhere is not the"
     " rlops_runtime package source (no pyproject.toml) on the controller"),
    ({"wheelhouse": "/wheels"}, "trainer_wheelhouse /wheels is not a folder on the controller"),
    ({"start_timeout": 0}, "trainer_start_timeout must be greater than 0"),
    ({"hyperparameters": "[1, 2]"},
     "trainer_hyperparameters must be a mapping (or a JSON object as a string)"),
    ({"hyperparameters": "not json"},
     "trainer_hyperparameters must be a mapping (or a JSON object as a string)"),
    ({"hyperparameters": []},
     "trainer_hyperparameters must be a mapping (or a JSON object as a string)"),
])
def test_each_input_rule_says_what_and_why(overrides, message):
    assert problem(**overrides).startswith(message)


def test_the_first_problem_is_reported():
    assert problem(state="stopped", session_id="Bad_Id").startswith("trainer_state=stopped")
    assert problem(session_id="Bad_Id", start_timeout=0).startswith("trainer_session_id 'Bad_Id'")


def test_a_local_requirements_file_must_be_in_the_source():
    fs = controller(dirs=["/job"])
    assert problem(fs, source="local", source_path="/job", entrypoint=["x"],
                   requirements_file="req.txt", runtime_source_path="/src/runtime") == (
        "trainer_requirements_file req.txt is not a file in /job on the controller")


def test_the_set_of_a_new_session():
    assert tp.env_extra(inputs(env_id="LunarLander-v3"), {"LunarLander-v3": "box2d"}) == "box2d"
    assert tp.env_extra(inputs(env_id="CartPole-v1"), {"LunarLander-v3": "box2d"}) == ""
    assert tp.env_extra(inputs(source="local", env_id="LunarLander-v3"),
                        {"LunarLander-v3": "box2d"}) == ""
    assert tp.wanted_requirements(inputs(requirements=["gymnasium"]), "box2d") == [
        "rlops-runtime[box2d,s3,sb3]", "torch==2.13.0", "gymnasium"]
    assert tp.wanted_requirements(inputs(runtime_extras=[], torch_requirement=""), "") == [
        "rlops-runtime"]


def test_each_backend_has_its_reference_set_and_locks():
    assert tp.wanted_requirements(inputs(runtime_extras=None), "") == [
        "rlops-runtime[s3,sb3]", "torch==2.13.0"]
    assert tp.wanted_requirements(inputs(runtime_extras=None, backend="ray"), "") == [
        "rlops-runtime[ray,s3]", "torch==2.13.0"]
    # Extras the user gives are the set, whatever the backend.
    assert tp.wanted_requirements(inputs(runtime_extras=["ray"], backend="ray"), "") == [
        "rlops-runtime[ray]", "torch==2.13.0"]
    # az:// storage adds the Blob SDK to the reference set (both sets' locks hold it).
    assert tp.wanted_requirements(inputs(runtime_extras=None, storage_uri="az://models/rl"),
                                  "") == ["rlops-runtime[azure,s3,sb3]", "torch==2.13.0"]
    assert tp.wanted_requirements(inputs(runtime_extras=None, backend="ray",
                                         storage_uri="az://models/rl"), "") == [
        "rlops-runtime[azure,ray,s3]", "torch==2.13.0"]
    assert tp.locks_folder(inputs()) == "locks"
    assert tp.locks_folder(inputs(backend=None)) == "locks"
    assert tp.locks_folder(inputs(backend="ray")) == "locks/ray"
    assert set(tp.BACKEND_SETS) == set(tp.contract.BACKEND_NAMES)
    # DeepRacer's driver reads S3 and runs docker compose: the s3 extra, no torch.
    assert tp.wanted_requirements(inputs(runtime_extras=None, backend="deepracer"), "") == [
        "rlops-runtime[s3]"]
    assert tp.locks_folder(inputs(backend="deepracer")) == "locks"


def test_what_a_requirements_file_adds_to_the_venv_identity():
    assert tp.requirements_file_key(inputs()) == []
    assert tp.requirements_file_key(inputs(source="local", requirements_file="req.txt"),
                                    "ab12") == ["-r req.txt sha256:ab12"]
    assert tp.requirements_file_key(inputs(source="git", source_repo="https://h/r.git",
                                           source_version="v1", requirements_file="req.txt")) == [
        "-r req.txt https://h/r.git@v1"]


def test_the_owner_is_the_user_given_else_who_ran_sudo_else_who_connects():
    assert tp.owner(inputs(user="bob"), who()) == "bob"
    assert tp.owner(inputs(), who(runner={"name": "root", "uid": 0, "sudo_user": "ada"})) == "ada"
    assert tp.owner(inputs(), who()) == "ada"


def test_host_problems_user_group_and_python():
    assert tp.host_problems(inputs(), who(), "h1") == []
    found = tp.host_problems(inputs(user="nobody-here", group="nogroup"),
                             who(user=None, group=None, python={"version": "3.8"}), "h1")
    assert found == ["trainer_user nobody-here does not exist on h1",
                     "trainer_group nogroup does not exist on h1",
                     "trainer_python python3 must be Python 3.9 or newer on h1: it is 3.8"]
    assert tp.host_problems(inputs(python="python9"),
                            who(python={"error": "python9 is not on PATH"}), "h1") == [
        "trainer_python python9 must be Python 3.9 or newer on h1: python9 is not on PATH"]
    assert tp.host_problems(inputs(), who(python={"version": "3.10"}), "h1") == []


def test_a_lock_is_needed_for_a_new_session_or_a_record_not_on_the_host():
    record = inputs()["record"]
    assert tp.needs_lock(inputs(), who(files={record: "x"}))
    assert tp.needs_lock(inputs(mode="resume"), who(files={record: None}))
    assert not tp.needs_lock(inputs(mode="resume"), who(files={record: "x"}))


def test_lock_problems():
    assert tp.lock_problem(inputs(), who(), "h1", "/l/python3.11.txt", True, ["3.11"]) is None
    assert tp.lock_problem(inputs(runtime_lock="/own.lock"), who(), "h1", "/own.lock", False,
                           []) == "trainer_runtime_lock /own.lock is not a file on the controller"
    assert tp.lock_problem(inputs(), who(python={"version": "3.9"}), "h1", "", False,
                           ["3.10", "3.11"]) == (
        "trainer_python python3 on h1 is Python 3.9, for which the collection locks no versions"
        " of the venv (it has one for Python 3.10, 3.11 in /src/runtime/locks): set"
        " trainer_python to one of those, or trainer_runtime_lock to a lock made for 3.9"
        ' (pip-compile under that Python, README "Upgrading a dependency")')


def test_the_supervisor():
    root = {"name": "root", "uid": 0, "sudo_user": ""}
    assert tp.manager(inputs(), who()) == "process"
    assert tp.manager(inputs(), who(systemd_booted=True)) == "process"
    assert tp.manager(inputs(), who(systemd_booted=True, runner=root)) == "systemd"
    assert tp.manager(inputs(service_manager="process"), who(systemd_booted=True,
                                                             runner=root)) == "process"
    assert tp.systemd_problem(inputs(service_manager="systemd"),
                              who(systemd_booted=True, runner=root), "h1") is None
    assert tp.systemd_problem(inputs(service_manager="systemd"), who(), "h1") == (
        "trainer_service_manager=systemd needs a host booted with systemd and root (become:"
        " true); h1 has service manager tini and runs the role as ada: use"
        " trainer_service_manager=process or auto")


def test_a_new_session_must_be_new():
    assert tp.exists_problem(inputs(), 0, "h1") is None
    assert tp.exists_problem(inputs(mode="resume"), 3, "h1") is None
    assert tp.exists_problem(inputs(), 2, "h1") == (
        "session cartpole-1 already exists on h1: run resume.yml (2 checkpoints in"
        " /data/sessions/cartpole-1/checkpoints)")


def test_the_set_inputs_given_differ_from_the_defaults():
    assert tp.set_inputs_given(inputs(), DEFAULTS) == []
    assert tp.set_inputs_given(inputs(requirements=["x"], torch_requirement=""), DEFAULTS) == [
        "trainer_torch_requirement", "trainer_requirements"]


RECORDED = {"python": "3.11", "requirements": ["rlops-runtime[s3,sb3]", "torch==2.13.0"],
            "files": []}
WANTED = ["rlops-runtime[s3,sb3]", "torch==2.13.0"]


def test_a_recorded_set_for_another_python_is_refused():
    assert tp.record_problem(inputs(mode="resume"), DEFAULTS, RECORDED, "3.11", "h1", WANTED,
                             []) is None
    assert tp.record_problem(inputs(mode="resume"), DEFAULTS, RECORDED, "3.12", "h1", WANTED,
                             []) == (
        "session cartpole-1 was installed with Python 3.11 (its config/requirements.lock);"
        " trainer_python python3 on h1 is 3.12: set trainer_python to a Python 3.11 interpreter"
        " to resume it")
    assert tp.record_problem(inputs(mode="resume"), DEFAULTS, None, "3.12", "h1", WANTED,
                             []) is None


def test_a_resume_may_not_ask_for_another_set():
    asked = inputs(mode="resume", requirements=["gymnasium==1.0"])
    wanted = WANTED + ["gymnasium==1.0"]
    assert tp.record_problem(asked, DEFAULTS, RECORDED, "3.11", "h1", wanted, []) == (
        "trainer_requirements cannot change on resume: session cartpole-1 installs the set it"
        " recorded (config/requirements.lock: rlops-runtime[s3,sb3], torch==2.13.0), so that it"
        " runs the code it was trained with; resume without them, or start a new session"
        " (train_new) for another set")
    # Given, but what the record has: taken.
    same = inputs(mode="resume", torch_requirement="torch==2.13.0", requirements=[])
    assert tp.record_problem(same, dict(DEFAULTS, trainer_torch_requirement="torch==2.12"),
                             RECORDED, "3.11", "h1", WANTED, []) is None
    # A new session's own set is never "another" one.
    assert tp.record_problem(inputs(requirements=["x"]), DEFAULTS, RECORDED, "3.11", "h1",
                             WANTED + ["x"], []) is None


def test_where_storage_keeps_a_sessions_recorded_set():
    assert tp.stored_record(inputs()) == {
        "scheme": "file", "key": "cartpole-1/config/requirements.lock",
        "path": "/data/storage/cartpole-1/config/requirements.lock"}
    assert tp.stored_record(inputs(storage_uri="s3://bucket/runs/rl")) == {
        "scheme": "s3", "key": "cartpole-1/config/requirements.lock", "path": ""}


def test_the_set_to_install():
    resume = inputs(mode="resume")
    assert tp.set_to_install(inputs(), "ignored", "ignored", "new") == ("new", "new")
    assert tp.set_to_install(resume, "on host", "stored", "new") == ("on host", "host")
    assert tp.set_to_install(resume, None, "stored", "new") == ("stored", "storage")
    # None recorded (storage has none, or an empty file): a new session's set.
    assert tp.set_to_install(resume, None, None, "new") == ("new", "none recorded")
    assert tp.set_to_install(resume, None, "\n", "new") == ("new", "none recorded")


def test_which_stage_reads_a_set_that_only_storage_has():
    s3 = inputs(mode="resume", storage_uri="s3://bucket/rl")
    for stage in ("preflight", "again"):
        assert tp.reads_stored_set(inputs(mode="resume"), stage, False)
    # Before the host roles: only s3:// storage that the controller reached.
    assert tp.reads_stored_set(s3, "check", True)
    assert not tp.reads_stored_set(s3, "check", False)
    assert not tp.reads_stored_set(inputs(mode="resume"), "check", False)


def test_storage_that_cannot_be_read_is_one_message():
    assert tp.stored_record_problem(inputs(mode="resume"), "h1", "storage s3://b/p: why") == (
        "session cartpole-1: h1 has no config/requirements.lock, and its recorded set could not"
        " be read from storage: storage s3://b/p: why")


def test_what_is_read_on_the_host():
    first = tp.host_info_args(inputs(mode="resume", source="git", user="ada"))
    assert first == {"stat": ["/data/sessions"], "checkpoints": inputs()["checkpoints"],
                     "commands": ["git"], "python_modules": ["packaging"], "user": "ada",
                     "default_user": True, "group": "", "python": "python3",
                     "read": [inputs()["record"],
                              "/data/storage/cartpole-1/config/requirements.lock"]}
    assert tp.host_info_args(inputs())["read"] == []
    # s3:// storage is not read as a file.
    assert tp.host_info_args(inputs(mode="resume", storage_uri="s3://bucket/p"))["read"] == [
        inputs()["record"]]
    # Again: AGAIN's arguments only, with the same values.
    assert tp.host_info_args(inputs(mode="resume"), again=True) == {
        "stat": ["/data/sessions"], "checkpoints": inputs()["checkpoints"], "commands": [],
        "python_modules": ["packaging"],
        "read": [inputs()["record"], "/data/storage/cartpole-1/config/requirements.lock"]}


def test_the_read_again_goes_over_the_first_host_read():
    first = {"host": {"python": {"version": "3.11"}, "paths": {"/a": {"isdir": False}},
                      "checkpoints": 0, "files": {"r": "set"}},
             "spec": "set", "manager": "direct", "changed": False, "failed": False,
             "_ansible_no_log": False}
    # trainer_host_info's whole answer to host_info_args(again=True): what it was not asked
    # for comes back empty and must not replace the first read's.
    read = {"paths": {"/a": {"isdir": True}}, "checkpoints": 0, "commands": {},
            "user": None, "group": None, "python": {}, "files": {"r": "mounted set"},
            "changed": False}
    assert tp.again_result(first, read) == {
        "host": {"python": {"version": "3.11"}, "paths": {"/a": {"isdir": True}},
                 "checkpoints": 0, "files": {"r": "mounted set"}, "commands": {}},
        "spec": "set", "manager": "direct"}
    assert first["host"]["paths"] == {"/a": {"isdir": False}}  # the first result is kept
