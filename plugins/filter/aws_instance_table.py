# -*- coding: utf-8 -*-
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""Filter that prints a session's EC2 instances with what they cost so far."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
name: aws_instance_table
short_description: Format the instances found by aws_session_info as a table
version_added: 0.1.0
description:
  - Turns the C(instances) records of rlops.fleet.aws_session_info into aligned lines - session,
    instance, type, zone, market, state, hours of the current run, latest spot price (USD
    per hour) and cost so far (USD); then one line per data volume when O(volumes) are given.
positional: _input
options:
  _input:
    description: The C(instances) list returned by rlops.fleet.aws_session_info.
    type: list
    elements: dict
    required: true
  volumes:
    description: The C(volumes) list returned by rlops.fleet.aws_session_info.
    type: list
    elements: dict
"""

EXAMPLES = r"""
- name: Show the instances and their cost so far
  ansible.builtin.debug:
    msg: "{{ found.instances | rlops.fleet.aws_instance_table(volumes=found.volumes) }}"
"""

RETURN = r"""
_value:
  description: Lines of the table, header first, then the volume lines.
  type: list
  elements: str
"""

from ansible_collections.rlops.fleet.plugins.module_utils.aws_session import (  # noqa: E402
    instance_table,
)


class FilterModule(object):
    def filters(self):
        return {"aws_instance_table": instance_table}
