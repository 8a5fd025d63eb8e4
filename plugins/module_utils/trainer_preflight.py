# -*- coding: utf-8 -*-
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""The trainer role's preflight decisions (rlops.fleet.trainer_preflight): what is wrong with
the inputs, the host, the lock and a resumed session's recorded set - the first problem in one
message - and the set, the owner's group and the supervisor a session gets.

Pure functions of the role's inputs (a mapping of the role's variables without their
`trainer_` prefix: tasks/preflight.yml, vars/main.yml __trainer_preflight_inputs) and of what
trainer_host_info read on the host; the action plugin does the reading.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.rlops.fleet.plugins.module_utils import session_contract as contract

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# The inputs that make a venv's set: given on resume with another value than the role's
# default, they must ask for the recorded set (another set is refused, not ignored).
SET_INPUTS = ("torch_requirement", "requirements", "runtime_extras", "requirements_file")
OLDEST_PYTHON = (3, 9)
# Each backend's reference set: the runtime's extras when trainer_runtime_extras is unset, and
# the folder of the runtime's source holding that set's locks (python<X.Y>.txt). Ray pins its
# own gymnasium, so its set has locks of its own.
BACKEND_SETS = {
    contract.DEFAULT_BACKEND: (("sb3", "s3"), "locks"),
    contract.RAY_BACKEND: (("ray", "s3"), "locks/ray"),
    # The DeepRacer driver reads S3 and runs docker compose: no agent of its own to install.
    contract.DEEPRACER_BACKEND: (("s3",), "locks"),
}


# Backends whose job trains no model in the venv: no torch there, whatever
# trainer_torch_requirement says (its default is the reference agents').
NO_TORCH_BACKENDS = (contract.DEEPRACER_BACKEND,)


def backend(inputs):
    """The session's backend as the inputs name it (unset: the contract's default)."""
    return inputs.get("backend") or contract.DEFAULT_BACKEND


def storage_extras(inputs):
    """The runtime's extra that the session's storage needs beyond the reference set: azure
    for az:// storage (its locks hold it); none otherwise, or for a URI that is none."""
    uri = inputs.get("storage_uri")
    return ["azure"] if isinstance(uri, str) and uri.startswith("az://") else []


def runtime_extras(inputs):
    """trainer_runtime_extras, or the backend's reference extras (and the storage's) when it
    is unset."""
    given = inputs.get("runtime_extras")
    if given is not None:
        return list(given)
    return list(BACKEND_SETS[backend(inputs)][0]) + storage_extras(inputs)


def locks_folder(inputs):
    """The folder of the runtime's source with the locks of the backend's set."""
    return BACKEND_SETS[backend(inputs)][1]


def _text(value):
    return "" if value is None else str(value)


def _hyperparameters_ok(raw):
    """A mapping, a JSON object as a string (-e gives one), or unset: the session contract's
    rule (parse_hyperparameters)."""
    try:
        contract.parse_hyperparameters(raw)
    except contract.ContractError:
        return False
    return True


def input_checks(inputs, isdir=os.path.isdir, isfile=os.path.isfile):
    """(ok, message) of every rule on the inputs that the argument spec cannot say, in order;
    isdir/isfile look at the controller's paths."""
    source = inputs["source"]
    entrypoint = inputs.get("entrypoint") or []
    requirements_file = inputs.get("requirements_file") or ""
    source_path = inputs.get("source_path") or ""
    runtime_source = _text(inputs["runtime_source_path"])
    wheelhouse = inputs.get("wheelhouse") or ""
    storage_error = contract.storage_uri_error(inputs["storage_uri"])
    settings = dict((k, v) for k, v in (inputs.get("settings") or {}).items() if v is not None)
    job_problems = contract.requested_setting_problems(settings)
    names = list((inputs.get("storage_credentials") or {}).keys()) + list(
        (inputs.get("env") or {}).keys())
    try:
        timeout_ok = int(inputs["start_timeout"]) > 0
    except (TypeError, ValueError):
        timeout_ok = False
    yield (inputs.get("state") in (None, "started"),
           "trainer_state=%s is gone: the trainer role only starts sessions; stop one with"
           " playbooks/stop.yml (the session layer, rlops.fleet.session tasks_from: stop)"
           % _text(inputs.get("state")))
    yield (contract.SESSION_ID_RE.fullmatch(_text(inputs["session_id"])) is not None,
           "trainer_session_id '%s' is invalid: use 1-63 lowercase letters, digits and '-',"
           " starting with a letter or digit" % _text(inputs["session_id"]))
    yield (all(_text(inputs[name]).startswith("/") for name in ("data_root", "venv_root")),
           "trainer_data_root (%s) and trainer_venv_root (%s) must be absolute paths"
           % (inputs["data_root"], inputs["venv_root"]))
    yield (source != "local" or len(source_path) > 0,
           "trainer_source_path is required with trainer_source=local (a folder on the controller)")
    yield (source != "git" or len(inputs.get("source_repo") or "") > 0,
           "trainer_source_repo is required with trainer_source=git")
    yield (source != "git" or len(inputs.get("source_version") or "") > 0,
           "trainer_source_version is required with trainer_source=git: give a commit, tag or"
           " branch of %s (no floating default)" % _text(inputs.get("source_repo")))
    yield (source == "builtin" or len(entrypoint) > 0,
           "trainer_entrypoint is required with trainer_source=%s: the job's argv, e.g."
           " [python, train.py] (relative to the source folder)" % source)
    yield (all(_text(arg) != "" for arg in entrypoint), "trainer_entrypoint has an empty argument")
    yield (not requirements_file or source in ("local", "git"),
           "trainer_requirements_file is a path inside the job's source: use it with"
           " trainer_source local or git")
    yield (not requirements_file or (not requirements_file.startswith("/")
                                     and ".." not in requirements_file.split("/")),
           "trainer_requirements_file (%s) must be relative to the source folder"
           % requirements_file)
    yield (storage_error is None, "trainer_storage_uri: %s" % storage_error)
    yield (all(ENV_NAME.fullmatch(_text(name)) for name in names),
           "trainer_storage_credentials and trainer_env keys must be environment variable names")
    # The job's settings, where set, by the session contract's rules (the runtime applies the
    # same ones when it writes run.json).
    yield (not job_problems, "; ".join(job_problems))
    # The controller's folders and files the job needs.
    yield (source != "local" or isdir(source_path),
           "trainer_source_path %s is not a folder on the controller" % source_path)
    yield (source != "local" or not requirements_file
           or isfile(source_path + "/" + requirements_file),
           "trainer_requirements_file %s is not a file in %s on the controller"
           % (requirements_file, source_path))
    yield (isfile(runtime_source + "/pyproject.toml"),
           "trainer_runtime_source_path %s is not the rlops_runtime package source (no"
           " pyproject.toml) on the controller" % runtime_source)
    yield (not wheelhouse or isdir(wheelhouse),
           "trainer_wheelhouse %s is not a folder on the controller" % wheelhouse)
    yield (timeout_ok, "trainer_start_timeout must be greater than 0")
    yield (_hyperparameters_ok(inputs.get("hyperparameters")),
           "trainer_hyperparameters must be a mapping (or a JSON object as a string)")


def input_problem(inputs, isdir=os.path.isdir, isfile=os.path.isfile):
    """The first rule the inputs break, or None."""
    for ok, msg in input_checks(inputs, isdir, isfile):
        if not ok:
            return msg
    return None


# --- The venv's set ----------------------------------------------------------------------


def env_extra(inputs, table):
    """The gymnasium extra the reference agent's env needs (LunarLander-v3: box2d), from the
    runtime's table (rlops_runtime/agents/env_extras.json); '' for none."""
    env_id = inputs.get("env_id")
    if inputs["source"] != "builtin" or not isinstance(env_id, str):
        return ""
    return table.get(env_id) or ""


def wanted_requirements(inputs, extra):
    """The runtime with its extras (the env's too), torch unless its requirement is empty or
    the backend runs no model here (DeepRacer's driver: the simapp's containers train), and
    the job's requirements."""
    extras = sorted(set(runtime_extras(inputs) + ([extra] if extra else [])))
    runtime = "rlops-runtime" + ("[%s]" % ",".join(extras) if extras else "")
    torch = "" if backend(inputs) in NO_TORCH_BACKENDS else inputs.get("torch_requirement") or ""
    return [runtime] + ([torch] if torch else []) + list(inputs.get("requirements") or [])


def requirements_file_key(inputs, digest=""):
    """What the job's requirements file contributes to the venv's identity: its content's
    sha256 (digest) for a local source, the pinned repository version for git."""
    name = inputs.get("requirements_file") or ""
    if not name:
        return []
    if inputs["source"] == "local":
        return ["-r %s sha256:%s" % (name, digest)]
    return ["-r %s %s@%s" % (name, _text(inputs.get("source_repo")),
                             _text(inputs.get("source_version")))]


# --- The host ------------------------------------------------------------------------------


def owner(inputs, who):
    """The job's user: trainer_user, else who ran sudo, else the connecting user."""
    runner = who.get("runner") or {}
    return inputs.get("user") or runner.get("sudo_user") or runner.get("name") or ""


def _version(text):
    try:
        return tuple(int(part) for part in _text(text).split(".")[:2])
    except ValueError:
        return ()


def host_problems(inputs, who, host):
    """What trainer_host_info says is wrong with the user, the group or the interpreter."""
    problems = []
    if who.get("user") is None:
        problems.append("trainer_user %s does not exist on %s" % (owner(inputs, who), host))
    if who.get("group") is None:
        problems.append("trainer_group %s does not exist on %s"
                        % (_text(inputs.get("group")), host))
    probe = who.get("python") or {}
    if "error" in probe or len(_version(probe.get("version"))) < 2 \
            or _version(probe.get("version")) < OLDEST_PYTHON:
        problems.append("trainer_python %s must be Python 3.9 or newer on %s: %s" % (
            inputs["python"], host,
            probe["error"] if "error" in probe else "it is %s" % (probe.get("version") or "?")))
    return problems


def needs_lock(inputs, who):
    """A new session, or one whose recorded set is not on the host, installs under a lock."""
    return inputs["mode"] == "new" or (who.get("files") or {}).get(inputs["record"]) is None


def lock_problem(inputs, who, host, lock_file, lock_is_file, versions):
    """Why the venv's versions cannot be locked for the interpreter; None when they can."""
    if lock_file and lock_is_file:
        return None
    if inputs.get("runtime_lock"):
        return "trainer_runtime_lock %s is not a file on the controller" % inputs["runtime_lock"]
    python = who["python"]["version"]
    return ("trainer_python %s on %s is Python %s, for which the collection locks no versions of"
            " the venv (it has one for Python %s in %s/%s): set trainer_python to one of those,"
            " or trainer_runtime_lock to a lock made for %s (pip-compile under that Python, README"
            ' "Upgrading a dependency")' % (inputs["python"], host, python, ", ".join(versions),
                                            inputs["runtime_source_path"], locks_folder(inputs),
                                            python))


def manager(inputs, who):
    """The supervisor: trainer_service_manager, auto -> systemd when systemd runs the host and
    the role runs as root."""
    asked = inputs.get("service_manager") or "auto"
    if asked != "auto":
        return asked
    return "systemd" if _can_systemd(who) else "process"


def _can_systemd(who):
    return bool(who.get("systemd_booted")) and (who.get("runner") or {}).get("uid") == 0


def systemd_problem(inputs, who, host):
    if manager(inputs, who) != "systemd" or _can_systemd(who):
        return None
    return ("trainer_service_manager=systemd needs a host booted with systemd and root (become:"
            " true); %s has service manager %s and runs the role as %s: use"
            " trainer_service_manager=process or auto"
            % (host, who.get("service_mgr"), (who.get("runner") or {}).get("name")))


def exists_problem(inputs, checkpoints, host):
    """A new session must be new: its folder on the host holds no complete checkpoint."""
    if inputs["mode"] != "new" or not checkpoints:
        return None
    return ("session %s already exists on %s: run resume.yml (%s checkpoints in %s)"
            % (inputs["session_id"], host, checkpoints, inputs["checkpoints"]))


# --- A resumed session's recorded set ------------------------------------------------------


def set_inputs_given(inputs, defaults):
    """The set's inputs given with another value than the role's default, by their names."""
    return ["trainer_" + name for name in SET_INPUTS
            if inputs.get(name) != defaults.get("trainer_" + name)]


def record_problem(inputs, defaults, info, python, host, wanted, files_key):
    """What is wrong with a set to install (info: trainer_venv_spec_info of it, None for no
    set): made for another interpreter, or the set's inputs ask for another set on resume."""
    info = info or {"python": "", "requirements": [], "files": []}
    if info["python"] not in ("", python):
        return ("session %s was installed with Python %s (its config/requirements.lock);"
                " trainer_python %s on %s is %s: set trainer_python to a Python %s interpreter"
                " to resume it" % (inputs["session_id"], info["python"], inputs["python"], host,
                                   python, info["python"]))
    given = set_inputs_given(inputs, defaults)
    if inputs["mode"] != "resume" or not given or not info["python"]:
        return None
    if (sorted(info["requirements"]), sorted(info["files"])) == (sorted(wanted), sorted(files_key)):
        return None
    return ("%s cannot change on resume: session %s installs the set it recorded"
            " (config/requirements.lock: %s), so that it runs the code it was trained with;"
            " resume without them, or start a new session (train_new) for another set"
            % (" and ".join(given), inputs["session_id"], ", ".join(info["requirements"])))


def stored_record(inputs):
    """Where a session's recorded set is in storage: {"scheme", "key" (under the storage's
    prefix, the runtime's layout), "path" (file:// storage: the file on the host, else '')}."""
    uri = contract.parse_storage_uri(inputs["storage_uri"])
    key = contract.config_key(inputs["session_id"], "requirements.lock")
    path = uri.location.rstrip("/") + "/" + key if uri.scheme == "file" else ""
    return {"scheme": uri.scheme, "key": key, "path": path}


def set_to_install(inputs, on_host, in_storage, new_spec):
    """(the set to install, where it comes from): a new session's set; a resumed session's
    recorded set, from the host (on_host, None when it has none) or else from storage
    (in_storage, None when storage has none); none recorded anywhere: a new session's set."""
    if inputs["mode"] == "new":
        return new_spec, "new"
    if on_host is not None:
        return on_host, "host"
    if in_storage is not None and in_storage.strip():
        return in_storage, "storage"
    return new_spec, "none recorded"


def reads_stored_set(inputs, stage, storage_checked):
    """Whether this stage reads a set that only storage has: every stage but check (before the
    host roles), which reads only s3:// storage that the controller reached (the host roles
    cannot change its answer, and a failure is said before anything changes); file:// storage
    may be on a volume they mount, and an endpoint only the host reaches may not be up yet."""
    if stage != "check":
        return True
    return bool(storage_checked) and stored_record(inputs)["scheme"] in ("s3", "az")


def stored_record_problem(inputs, host, why):
    """One message when storage could not say what set a resumed session recorded."""
    return ("session %s: %s has no config/requirements.lock, and its recorded set could not be"
            " read from storage: %s" % (inputs["session_id"], host, why))


# --- trainer_host_info's arguments ----------------------------------------------------------


# What the read again after the host roles asks trainer_host_info (its argument) and takes
# from its answer (the answer's key): what they may have changed (a data volume's sessions,
# venvs and storage folder). The answer's other keys are for what it was not asked (user
# None, python {}) and must not replace the first read's.
AGAIN = (("stat", "paths"), ("checkpoints", "checkpoints"), ("commands", "commands"),
         ("python_modules", "python_modules"), ("read", "files"))


def host_info_args(inputs, again=False):
    """What preflight reads on the host in one call (a resumed session's recorded set on the
    host, and in file:// storage); `again` (after the host roles) only AGAIN's arguments."""
    read = []
    if inputs["mode"] == "resume":
        stored = stored_record(inputs)["path"]
        read = [inputs["record"]] + ([stored] if stored else [])
    args = {"stat": list(inputs.get("read_paths") or []), "checkpoints": inputs["checkpoints"],
            "commands": ["git"] if inputs["source"] == "git" else [],
            "python_modules": ["packaging"], "user": inputs.get("user") or "",
            "default_user": True, "group": inputs.get("group") or "", "python": inputs["python"],
            "read": read}
    if again:
        return dict((name, args[name]) for name, _key in AGAIN)
    return args


def again_result(first, read):
    """Stage again's result: the first result (as registered) with the host's new read
    (AGAIN's keys) over its `host`; the user, group and interpreter stay the first read's."""
    kept = dict((key, value) for key, value in first.items()
                if key not in ("changed", "failed", "msg", "invocation")
                and not key.startswith("_ansible"))
    kept["host"] = dict(first.get("host") or {})
    kept["host"].update((key, read[key]) for _name, key in AGAIN if key in read)
    return kept
