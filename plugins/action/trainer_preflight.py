# -*- coding: utf-8 -*-
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""rlops.fleet.trainer_preflight: the trainer role's preflight in one task. The controller's
checks run here, in the worker (what session_preflight checks, and the role's own rules on
its inputs and the controller's files); the host is read by one trainer_host_info run (and
storage_check when the controller could not reach s3:// storage). A resumed session whose
recorded set the host lacks reads it from storage: file:// storage in that same host read,
s3:// storage from the controller when it checked storage, else from the host (storage_check
with `read`). The decisions are the pure functions of module_utils/trainer_preflight.py; this
is the I/O around them."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import hashlib
import json
import os

from ansible.errors import AnsibleFilterError
from ansible.module_utils.basic import remove_values
from ansible.plugins.action import ActionBase
from ansible_collections.rlops.fleet.plugins.filter.trainer_venv import (
    lock_for,
    lock_versions,
    venv_spec,
    venv_spec_info,
)
from ansible_collections.rlops.fleet.plugins.module_utils import trainer_preflight as decide
from ansible_collections.rlops.fleet.plugins.module_utils.s3_probe import (
    CONNECT_TIMEOUT,
    READ_TIMEOUT,
    CheckError,
    read_storage,
    secret_values,
)
from ansible_collections.rlops.fleet.plugins.module_utils.session_checks import (
    az_read_config,
    gymnasium_registry,
    run_checks,
)
from ansible_collections.rlops.fleet.plugins.module_utils.session_contract import (
    parse_storage_uri,
)

# preflight: everything; check: the same before the host roles (prepare_host.yml), leaving a
# set that only storage has to stage again (a host-only endpoint may not be up yet) unless the
# controller reads it; again: the host read again after them, and the set.
STAGES = ("preflight", "check", "again")


class Refused(Exception):
    """One message: what is wrong and why."""


def controller_text(path):
    """A controller file as ansible.builtin.file's lookup gives it (trailing space stripped)."""
    with open(path, encoding="utf-8") as handle:
        return handle.read().rstrip()


def controller_params(inputs):
    """session_preflight's arguments, as the role gave them to it."""
    return {"session": inputs["session_id"], "name": "session",
            "env_id": inputs.get("env_id") or None, "algo": inputs.get("algo") or "ppo",
            "source": inputs["source"], "hyperparameters": inputs.get("hyperparameters") or None,
            "backend": decide.backend(inputs),
            "storage_uri": inputs["storage_uri"],
            "storage_credentials": inputs.get("storage_credentials") or {},
            "storage_check": inputs.get("storage_check") or "auto", "check_storage": None,
            "connect_timeout": CONNECT_TIMEOUT, "read_timeout": READ_TIMEOUT}


def the_set(inputs):
    """(env extra, requirements, requirements file key) of the inputs: the controller's
    env table and requirements file read (after input_problem said they are there)."""
    table_path = os.path.join(inputs["runtime_source_path"], "rlops_runtime/agents/env_extras.json")
    extra = decide.env_extra(inputs, json.loads(controller_text(table_path)))
    digest = ""
    if inputs["source"] == "local" and inputs.get("requirements_file"):
        text = controller_text(inputs["source_path"] + "/" + inputs["requirements_file"])
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return (extra, decide.wanted_requirements(inputs, extra),
            decide.requirements_file_key(inputs, digest))


def lock_of(inputs, python):
    """(lock file, is a file, the versions the collection's locks cover)."""
    locks = [path for path in glob.glob(os.path.realpath(inputs["runtime_source_path"]) + "/"
                                        + decide.locks_folder(inputs) + "/python*.txt")
             if os.path.isfile(path)]
    lock = inputs.get("runtime_lock") or lock_for(locks, python)
    return lock, bool(lock) and os.path.isfile(lock), lock_versions(locks)


def spec_info(spec, what):
    if not spec:
        return None
    try:
        return venv_spec_info(spec)
    except AnsibleFilterError as exc:  # not a set the role wrote
        raise Refused("%s: %s" % (what, exc)) from None


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _supports_check_mode = True
    _VALID_ARGS = frozenset(("inputs", "stage", "preflight"))

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        args = self._task.args
        inputs, stage = args.get("inputs") or {}, args.get("stage") or "preflight"
        host = task_vars.get("inventory_hostname", "")
        secrets = secret_values(inputs.get("storage_credentials"))
        try:
            if not inputs:
                raise Refused("missing required arguments: inputs")
            if stage not in STAGES:
                raise Refused("stage must be one of %s, got %s" % (", ".join(STAGES), stage))
            if stage == "again":
                result.update(self._again(inputs, args.get("preflight") or {}, host, task_vars))
            else:
                result.update(self._host(inputs, host, task_vars, stage))
        except Refused as exc:
            result.update(failed=True, msg=str(exc))
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        result["changed"] = False
        return remove_values(result, secrets) if secrets else result

    def _module(self, name, module_args, task_vars):
        found = self._execute_module(module_name=name, module_args=module_args,
                                     task_vars=task_vars)
        found.pop("invocation", None)
        if found.get("failed"):
            raise Refused(found.get("msg") or "%s failed on the host" % name)
        return found

    def _again(self, inputs, first, host, task_vars):
        """After the host roles: what they may have brought (a data volume's sessions, venvs
        and storage folder), over the first result (stage check's: `preflight`), and the set."""
        if not first.get("host"):
            raise Refused("stage again needs preflight: the registered result of stage check")
        who = self._module("rlops.fleet.trainer_host_info",
                           decide.host_info_args(inputs, again=True), task_vars)
        self._refuse(decide.exists_problem(inputs, who["checkpoints"], host))
        again = decide.again_result(first, who)
        again.update(self._the_set(inputs, again["host"], host, task_vars,
                                   bool(first.get("storage_checked"))))
        return again

    def _host(self, inputs, host, task_vars, stage):
        params = controller_params(inputs)
        registry = gymnasium_registry() if params["env_id"] else None
        found, error = run_checks(params, registry=registry, check_mode=bool(self._task.check_mode))
        self._refuse(error)
        self._refuse(decide.input_problem(inputs))
        if not found.get("storage_checked") and inputs["storage_uri"].startswith("s3://"):
            # An endpoint only the hosts see, an instance profile: the same client, from the host.
            self._module("rlops.fleet.storage_check", {
                "storage_uri": inputs["storage_uri"],
                "storage_credentials": inputs.get("storage_credentials") or {}}, task_vars)

        who = self._module("rlops.fleet.trainer_host_info", decide.host_info_args(inputs),
                           task_vars)
        problems = decide.host_problems(inputs, who, host)
        self._refuse(problems[0] if problems else None)
        decided = {"host": who, "owner_group": who["group"]["name"],
                   "manager": decide.manager(inputs, who),
                   "storage_checked": bool(found.get("storage_checked")),
                   "storage_check_reason": found.get("storage_check_reason", "")}
        decided.update(self._the_set(
            inputs, who, host, task_vars, decided["storage_checked"],
            from_storage=decide.reads_stored_set(inputs, stage, decided["storage_checked"])))
        self._refuse(decide.exists_problem(inputs, who["checkpoints"], host))
        self._refuse(decide.systemd_problem(inputs, who, host))
        return decided

    def _the_set(self, inputs, who, host, task_vars, storage_checked, from_storage=True):
        """The set to install (`spec`, from `set_from`) checked for the interpreter and the
        inputs; a new session's set (`new_spec`) when one may be needed. Without from_storage
        (stage check, but for s3:// storage the controller reached) a set only storage has is
        left to stage again (`spec` '')."""
        python = who["python"]["version"]
        extra, wanted, files_key = the_set(inputs)
        decided = {"env_extra": extra}
        if decide.needs_lock(inputs, who):
            lock, is_file, versions = lock_of(inputs, python)
            self._refuse(decide.lock_problem(inputs, who, host, lock, is_file, versions))
            decided["new_spec"] = venv_spec(wanted, controller_text(lock), python, files_key)
        on_host = (who.get("files") or {}).get(inputs["record"])
        decided["record_from_storage"] = inputs["mode"] == "resume" and on_host is None
        if decided["record_from_storage"] and not from_storage:
            decided.update(spec="", set_from="storage")
            return decided
        in_storage = None
        if decided["record_from_storage"]:
            in_storage = self._stored_set(inputs, who, host, task_vars, storage_checked)
        spec, where = decide.set_to_install(inputs, on_host, in_storage,
                                            decided.get("new_spec", ""))
        decided.update(spec=spec, set_from=where)
        what = ("the recorded set of session %s in storage" % inputs["session_id"]
                if where == "storage" else "%s on %s" % (inputs["record"], host))
        info = spec_info(spec, what)
        self._refuse(decide.record_problem(inputs, inputs.get("defaults") or {}, info, python,
                                           host, wanted, files_key))
        return decided

    def _stored_set(self, inputs, who, host, task_vars, storage_checked):
        """A resumed session's recorded set in storage (None: none recorded). file://: the
        host read it with the rest; s3://: the controller reads it where it checked storage,
        else the host (storage_check `read`, its credentials, its instance role)."""
        stored = decide.stored_record(inputs)
        if stored["scheme"] == "file":
            return (who.get("files") or {}).get(stored["path"])
        uri = inputs["storage_uri"]
        credentials = inputs.get("storage_credentials") or {}
        if stored["scheme"] == "az":
            # The controller's runtime reads it where it checked storage; a host without the
            # runtime cannot (the VM's identity): its data disk keeps the session's record.
            if not storage_checked:
                return None
            rc, out, err = az_read_config(uri, credentials, inputs["session_id"],
                                          stored["key"].rsplit("/", 1)[-1])
            if rc != 0:
                raise Refused(decide.stored_record_problem(
                    inputs, host, (err.strip().splitlines() or ["rc %s" % rc])[-1]))
            return out or None
        if storage_checked:
            parsed = parse_storage_uri(uri)
            try:
                return read_storage(uri, parsed.location, parsed.prefix, stored["key"],
                                    credentials, environ=dict(os.environ),
                                    connect_timeout=CONNECT_TIMEOUT,
                                    read_timeout=READ_TIMEOUT)["content"]
            except CheckError as exc:
                raise Refused(decide.stored_record_problem(inputs, host, exc)) from None
        found = self._execute_module(
            module_name="rlops.fleet.storage_check", task_vars=task_vars,
            module_args={"storage_uri": uri, "storage_credentials": credentials,
                         "read": stored["key"]})
        if found.get("failed"):
            raise Refused(decide.stored_record_problem(
                inputs, host, found.get("msg") or "rlops.fleet.storage_check failed"))
        return found.get("content")

    @staticmethod
    def _refuse(problem):
        if problem:
            raise Refused(problem)
