# -*- coding: utf-8 -*-
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""Filters that put the session contract (module_utils/session_contract.py, the runtime's own
rules) within reach of roles and playbooks: one storage URI parser, one session id rule."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
name: storage_uri
short_description: A storage URI parsed by the session contract, or why it is refused
version_added: 0.1.0
description:
  - Parses C(file:///abs/path), C(s3://bucket/prefix) and C(az://container/prefix) as the
    runtime does (the collection runs the runtime's own session contract).
  - Never fails on a bad URI, so that a role's preflight can refuse it in one message
    (RV(_value.error)).
  - The same file has C(rlops.fleet.host_session_id), the session id of one host of a
    train_new run over several hosts (C(<id>-<host name>), made valid), and
    C(rlops.fleet.run_settings_problems), what is wrong with a job's settings (a mapping of
    run.json names, null for unset) as the runtime's C(configure) would say it, as a list;
    and C(rlops.fleet.agent_args), a backend's reference agent after its interpreter
    (C([-m, rlops_runtime.agents.sb3, train]); C(ray) - C(rlops_runtime.agents.rllib)).
positional: _input
options:
  _input:
    description: The storage URI.
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Refuse a storage URI the runtime would refuse
  ansible.builtin.assert:
    that: (rlops_storage_uri | rlops.fleet.storage_uri).error is none
    fail_msg: "{{ (rlops_storage_uri | rlops.fleet.storage_uri).error }}"

- name: Name one host's session
  ansible.builtin.set_fact:
    session_id: >-
      {{ 'cartpole-20261122t051500z'
      | rlops.fleet.host_session_id(inventory_hostname, ansible_play_hosts_all | length) }}
"""

RETURN = r"""
_value:
  description: The parts of the URI, and the refusal.
  type: dict
  contains:
    scheme:
      description: C(file) or C(s3); empty when refused.
      type: str
    location:
      description: The bucket (s3), or the absolute folder (file); empty when refused.
      type: str
    prefix:
      description: The key prefix inside the bucket, without slashes (empty for none).
      type: str
    error:
      description: Why the URI is refused, in the runtime's words; null when it is not.
      type: str
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.rlops.fleet.plugins.module_utils import session_contract as contract


def storage_uri(uri):
    try:
        parsed = contract.parse_storage_uri(uri)
    except contract.ContractError as exc:
        return {"scheme": "", "location": "", "prefix": "", "error": str(exc)}
    return dict(parsed.as_dict(), error=None)


def host_session_id(base, host, hosts):
    try:
        return contract.host_session_id(base, host, hosts)
    except (contract.ContractError, TypeError, ValueError) as exc:
        raise AnsibleFilterError("host_session_id: %s" % exc) from None


def run_settings_problems(settings):
    if not isinstance(settings, dict):
        raise AnsibleFilterError("run_settings_problems: expected a mapping of settings")
    return contract.requested_setting_problems(settings)


def agent_args(backend):
    name = backend or contract.DEFAULT_BACKEND
    if name not in contract.BACKEND_AGENT_ARGS:
        raise AnsibleFilterError("agent_args: backend must be one of %s, got %r" % (
            ", ".join(contract.BACKEND_NAMES), backend))
    return list(contract.BACKEND_AGENT_ARGS[name])


class FilterModule(object):
    def filters(self):
        return {"storage_uri": storage_uri, "host_session_id": host_session_id,
                "run_settings_problems": run_settings_problems, "agent_args": agent_args}
