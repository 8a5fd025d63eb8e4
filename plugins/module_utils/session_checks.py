# -*- coding: utf-8 -*-
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""The session contract in the (value, error) form the collection's modules use, and the
checks of session_preflight in order (run_checks).

Every rule is the runtime's own: module_utils/session_contract.py is a link to
runtime/rlops_runtime/session_contract.py. Nothing about a session is decided here, so that
the controller refuses bad input before a host is touched, in the runtime's words.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import sys

from ansible_collections.rlops.fleet.plugins.module_utils import session_contract as contract
from ansible_collections.rlops.fleet.plugins.module_utils.s3_probe import (
    UNREACHABLE,
    CheckError,
    check_storage,
)
from ansible_collections.rlops.fleet.plugins.module_utils.storage_module import (
    STORAGE_ARGUMENT_SPEC,
    timeout_error,
)

# session_preflight's arguments (plugins/modules/session_preflight.py documents them; its
# action plugin validates them).
ARGUMENT_SPEC = dict(
    STORAGE_ARGUMENT_SPEC,
    session=dict(type="str"),
    name=dict(type="str", default="session"),
    env_id=dict(type="str"),
    algo=dict(type="str", choices=list(contract.ALGOS), default="ppo"),
    source=dict(type="str", choices=["builtin", "local", "git"], default="builtin"),
    backend=dict(type="str", choices=list(contract.BACKEND_NAMES),
                 default=contract.DEFAULT_BACKEND),
    hyperparameters=dict(type="raw"),
    storage_check=dict(type="str", choices=["auto", "controller", "host"], default="auto"),
    check_storage=dict(type="bool", removed_in_version="1.0.0",
                       removed_from_collection="rlops.fleet"),
)

# Taken as they are by the modules.
session_id_error = contract.session_id_error
make_session_id = contract.make_session_id
env_id_error = contract.env_id_error


def gymnasium_registry():
    """Registered env ids when gymnasium is importable here (the controller), else None."""
    try:
        import gymnasium
    except ImportError:
        return None
    return set(gymnasium.registry.keys())


def parse_hyperparameters(raw):
    """Return (dict, error). Accepts a mapping, a JSON object string, or nothing."""
    try:
        return contract.parse_hyperparameters(raw), None
    except contract.ContractError as exc:
        return None, str(exc)


def hyperparameter_errors(algo, hyperparameters, backend=contract.DEFAULT_BACKEND):
    """Keys the backend's builtin agent does not take, in one message; None when every key
    is taken."""
    problems = contract.hyperparameter_key_problems(algo, hyperparameters, backend)
    return "hyperparameters rejected: " + "; ".join(problems) if problems else None


def parse_storage_uri(uri):
    """Return ((scheme, location, prefix), error)."""
    try:
        parsed = contract.parse_storage_uri(uri)
    except contract.ContractError as exc:
        return None, str(exc)
    return (parsed.scheme, parsed.location, parsed.prefix), None


HOST_CHECKS = "the training host checks storage"
# az:// storage is checked by the runtime's own Blob client: on the controller
# (`rlops-run check-storage` of the collection's runtime/, in the controller's Python, which
# has azure-storage-blob) when the credentials are a key, a SAS or a connection string, and
# always on the training host in `rlops-run session prepare`, before the session is written.
AZ_CHECKED_BY_RUNTIME = ("az:// storage is checked by the runtime on the training host "
                         "(rlops-run session prepare) before the session is written")
AZ_SECRETS = ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN")
AZ_UNREACHABLE = ("cannot reach the Blob endpoint", "sent no answer within",
                  "needs azure-storage-blob")
RUNTIME = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "runtime")


def az_check_outcome(rc, stderr, mode):
    """(checked, reason, error) of `rlops-run check-storage` on the controller: refused
    storage is an error; an endpoint the controller cannot reach (or a controller without
    the Blob SDK) is left to the host unless the mode is controller."""
    if rc == 0:
        return True, "", None
    message = (stderr or "").strip().splitlines()[-1] if (stderr or "").strip() else (
        "rlops-run check-storage exited %s" % rc)
    message = message.replace("rlops-run: error: ", "", 1)
    if mode == "auto" and any(mark in message for mark in AZ_UNREACHABLE):
        return False, "the controller cannot check az:// storage: %s; %s" % (
            message, HOST_CHECKS), None
    return False, "", message


def az_storage_check(uri, credentials, python=None, timeout=120):
    """(rc, stderr) of the collection's runtime checking `uri` with `credentials` (on
    stdin, never on a command line), in this Python."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [RUNTIME] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    proc = subprocess.run(  # nosec - an argv list, no shell
        [python or sys.executable, "-m", "rlops_runtime.cli", "check-storage", uri,
         "--storage-env-stdin"], input=json.dumps(dict(credentials or {})),
        capture_output=True, text=True, env=env, timeout=timeout, check=False)
    return proc.returncode, proc.stderr


def storage_mode(params):
    """auto, controller or host; the deprecated check_storage bool wins when given."""
    if params.get("check_storage") is not None:
        return "controller" if params["check_storage"] else "host"
    return params.get("storage_check") or "auto"


def az_read_config(uri, credentials, session, name, python=None, timeout=120):
    """(rc, stdout, stderr) of the collection's runtime printing config/<name> of `session`
    from az:// storage (empty: storage has none), credentials on stdin."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [RUNTIME] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    proc = subprocess.run(  # nosec - an argv list, no shell
        [python or sys.executable, "-m", "rlops_runtime.cli", "show-config", "--storage-uri", uri,
         "--session", session, "--storage-env-stdin", name],
        input=json.dumps(dict(credentials or {})), capture_output=True, text=True, env=env,
        timeout=timeout, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def controller_az_check(params, check_mode=False, run=az_storage_check):
    """controller_storage_check for az:// storage."""
    mode = storage_mode(params)
    result = {"storage_checked": False, "storage_check_reason": "",
              "storage_check_permissions": []}
    credentials = params["storage_credentials"] or {}
    problem = contract.az_credentials_problem(dict(credentials))
    if problem:  # the host's runtime gets these same credentials: refused here, before it
        return result, "storage %s: %s" % (params["storage_uri"], problem)
    why = ""
    if mode == "host":
        why = "storage_check is host"
    elif check_mode:
        why = "check mode (the runtime's check writes a probe)"
    elif not any(credentials.get(name) for name in AZ_SECRETS):
        why = "no key, SAS or connection string in storage_credentials (the VM's managed " \
              "identity)"
    if why:
        if mode == "controller":
            return result, "storage %s cannot be checked from the controller: %s" % (
                params["storage_uri"], why)
        result["storage_check_reason"] = "%s: %s" % (why, AZ_CHECKED_BY_RUNTIME)
        return result, None
    rc, stderr = run(params["storage_uri"], credentials)
    checked, reason, error = az_check_outcome(rc, stderr, mode)
    result.update(storage_checked=checked, storage_check_reason=reason)
    if checked:
        result["storage_check_permissions"] = ["list", "write", "read"]
    return result, error


def controller_storage_check(params, scheme, location, prefix, check_mode=False, environ=None,
                             run=check_storage, az_run=az_storage_check):
    """({storage_checked, storage_check_reason, storage_check_permissions}, error):
    what is checked here, what is left to the host, and what fails, per the mode."""
    mode = storage_mode(params)
    result = {"storage_checked": False, "storage_check_reason": "",
              "storage_check_permissions": []}
    if scheme == "az":
        return controller_az_check(params, check_mode, az_run)
    if scheme != "s3":
        result["storage_check_reason"] = (
            "%s:// storage is a folder on the training host: %s" % (scheme, HOST_CHECKS))
        return result, None
    if mode == "host":
        result["storage_check_reason"] = "storage_check is host: %s" % HOST_CHECKS
        return result, None
    try:
        found = run(params["storage_uri"], location, prefix, params["storage_credentials"] or {},
                    environ=dict(os.environ) if environ is None else environ,
                    write=not check_mode, connect_timeout=params["connect_timeout"],
                    read_timeout=params["read_timeout"])
    except CheckError as exc:
        if exc.kind == UNREACHABLE and mode == "auto":
            result["storage_check_reason"] = (
                "the controller cannot reach the S3 endpoint: %s; %s" % (exc, HOST_CHECKS))
            return result, None
        return result, str(exc)
    if not found["checked"]:
        if mode == "controller":
            return result, "storage %s cannot be checked from the controller: %s" % (
                params["storage_uri"], found["reason"])
        result["storage_check_reason"] = "%s; %s" % (found["reason"], HOST_CHECKS)
        return result, None
    result["storage_checked"] = True
    result["storage_check_permissions"] = found["permissions"]
    return result, None


def run_checks(params, registry=None, check_mode=False, environ=None, s3_check=check_storage,
               az_check=az_storage_check):
    """All checks in order; returns (result, first error)."""
    result = {"changed": False}
    if params["session"]:
        error = session_id_error(params["session"])
        if error:
            return result, error
        result["session_id"] = params["session"]
    else:
        try:
            result["session_id"] = make_session_id(params["name"])
        except ValueError as exc:
            return result, str(exc)

    if params["env_id"] is not None:
        error = env_id_error(params["env_id"], registry if params["source"] == "builtin" else None)
        if error:
            return result, error

    hyperparameters, error = parse_hyperparameters(params["hyperparameters"])
    if error:
        return result, error
    if params["source"] == "builtin":
        error = hyperparameter_errors(params["algo"], hyperparameters,
                                      params.get("backend") or contract.DEFAULT_BACKEND)
        if error:
            return result, error
    result["hyperparameters"] = hyperparameters

    if params["storage_uri"] is not None:
        parsed, error = parse_storage_uri(params["storage_uri"])
        if error:
            return result, error
        scheme, location, prefix = parsed
        result["storage"] = {"scheme": scheme, "location": location, "prefix": prefix}
        error = timeout_error(params)
        if error:
            return result, error
        checked, error = controller_storage_check(params, scheme, location, prefix, check_mode,
                                                  environ, s3_check, az_check)
        result.update(checked)
        if error:
            return result, error
    return result, None
