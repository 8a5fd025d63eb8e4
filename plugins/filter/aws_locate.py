# -*- coding: utf-8 -*-
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""Filter that turns what the AWS provider found of a session into the provider contract's
facts, the hosts to add, and the one refusal."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
name: aws_locate
short_description: The provider contract's facts after the AWS provider's locate
version_added: 0.1.0
description:
  - Takes what rlops.fleet.aws_session_info found and answers with C(running) (the running
    instances), C(hosts) (those to add to the hosts group - none when retrieve takes the
    session from storage), C(session_provided), C(retrieve_from_storage), C(report) (the
    lines status shows - the instance table, the volumes, and for a session with rollout
    workers its cost so far over head and workers) and C(problem). Each instance record
    says its C(role) (C(head) or C(rollout)) and C(slot).
  - Refused - hosts already listed in the group the instances go to, a session that AWS
    does not know (naming the sessions it knows), evaluate without a running instance.
positional: _input
options:
  _input:
    description: The result of rlops.fleet.aws_session_info.
    type: dict
    required: true
  session:
    description: The session id; empty for every session.
    type: str
    required: true
  purpose:
    description: The playbook that locates (status, stop, retrieve, evaluate).
    type: str
    required: true
  region:
    description: The region, for the messages.
    type: str
    required: true
  retrieve_from:
    description: rlops_aws_retrieve_from (auto, host or storage).
    type: str
    default: auto
  hosts_group:
    description: The group the instances are added to (rlops_hosts).
    type: str
    default: trainers
  hosts_listed:
    description: The hosts the inventory already lists in that group.
    type: list
    elements: str
    default: []
  region_sessions:
    description: The sessions with resources in the region (read when none of the session's
      are found).
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Decide the contract's facts
  ansible.builtin.set_fact:
    located: >-
      {{ found | rlops.fleet.aws_locate(session='', purpose='status', region='us-east-1') }}
"""

RETURN = r"""
_value:
  description: C(problem), C(running), C(hosts), C(session_provided), C(retrieve_from_storage)
    and C(report).
  type: dict
"""

from ansible_collections.rlops.fleet.plugins.module_utils.aws_provision import (  # noqa: E402
    locate_facts,
)


def aws_locate(found, session, purpose, region, retrieve_from="auto", hosts_group="trainers",
               hosts_listed=None, region_sessions=None):
    return locate_facts(found, session or "", purpose, region, retrieve_from, hosts_group,
                        list(hosts_listed or []), list(region_sessions or []))


class FilterModule(object):
    def filters(self):
        return {"aws_locate": aws_locate}
