# -*- coding: utf-8 -*-
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""The session contract in the (value, error) form the collection's modules use.

Every rule is the runtime's own: module_utils/session_contract.py is a link to
runtime/rlops_runtime/session_contract.py. Nothing is decided here, so that the controller
refuses bad input before a host is touched, in the runtime's words.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.rlops.fleet.plugins.module_utils import session_contract as contract

# Taken as they are by the modules.
session_id_error = contract.session_id_error
make_session_id = contract.make_session_id
env_id_error = contract.env_id_error


def parse_hyperparameters(raw):
    """Return (dict, error). Accepts a mapping, a JSON object string, or nothing."""
    try:
        return contract.parse_hyperparameters(raw), None
    except contract.ContractError as exc:
        return None, str(exc)


def hyperparameter_errors(algo, hyperparameters):
    """Keys the builtin agent does not take, in one message; None when every key is taken."""
    problems = contract.hyperparameter_key_problems(algo, hyperparameters)
    return "hyperparameters rejected: " + "; ".join(problems) if problems else None


def parse_storage_uri(uri):
    """Return ((scheme, location, prefix), error)."""
    try:
        parsed = contract.parse_storage_uri(uri)
    except contract.ContractError as exc:
        return None, str(exc)
    return (parsed.scheme, parsed.location, parsed.prefix), None
