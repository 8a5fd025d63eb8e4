# -*- coding: utf-8 -*-
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""Filter that says why a volume cannot be a session's data volume, before anything changes."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
name: aws_volume_problem
short_description: Why an EBS volume cannot be a session's data volume (empty when it can)
version_added: 0.1.0
description:
  - Takes a volume record of rlops.fleet.aws_session_info and answers with one message, or
    an empty string when the volume can be used.
  - Refused - a volume that is not usable (error, deleting), a root volume, a volume of
    another session, a volume outside the allowed zones, and a volume attached to another
    instance that runs or is stopped (unless O(force_detach)). A volume still attached to a
    terminated or shutting-down instance is fine - EC2 releases it.
positional: _input
options:
  _input:
    description: A volume record (the C(volume) or one of the C(volumes) of aws_session_info).
    type: dict
    required: true
  session:
    description: The session the volume is for.
    type: str
    required: true
  zones:
    description: Zones the volume may be in; empty allows any.
    type: list
    elements: str
    default: []
  force_detach:
    description: Whether detaching it from another running instance is allowed.
    type: bool
    default: false
  own_instances:
    description: The session's own instances, to which the volume may stay attached.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Refuse a volume the session cannot use
  ansible.builtin.assert:
    that: __problem | length == 0
    fail_msg: "{{ __problem }}"
  vars:
    __problem: "{{ found.volume | rlops.fleet.aws_volume_problem(session=rlops_session) }}"
"""

RETURN = r"""
_value:
  description: The reason, or an empty string.
  type: str
"""

from ansible_collections.rlops.fleet.plugins.module_utils.aws_session import (  # noqa: E402
    volume_problem,
)


def aws_volume_problem(volume, session, zones=None, force_detach=False, own_instances=None):
    return volume_problem(volume, session, zones or [], bool(force_detach),
                          own_instances or []) or ""


class FilterModule(object):
    def filters(self):
        return {"aws_volume_problem": aws_volume_problem}
