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

import os

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


def storage_mode(params):
    """auto, controller or host; the deprecated check_storage bool wins when given."""
    if params.get("check_storage") is not None:
        return "controller" if params["check_storage"] else "host"
    return params.get("storage_check") or "auto"


def controller_storage_check(params, scheme, location, prefix, check_mode=False, environ=None,
                             run=check_storage):
    """({storage_checked, storage_check_reason, storage_check_permissions}, error):
    what is checked here, what is left to the host, and what fails, per the mode."""
    mode = storage_mode(params)
    result = {"storage_checked": False, "storage_check_reason": "",
              "storage_check_permissions": []}
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


def run_checks(params, registry=None, check_mode=False, environ=None, s3_check=check_storage):
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
                                                  environ, s3_check)
        result.update(checked)
        if error:
            return result, error
    return result, None
