# -*- coding: utf-8 -*-
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""Filter that says what the AWS provider's launch did or would do, and which host trains."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
name: aws_launch_report
short_description: What provision's launch did or would do, and the host that trains
version_added: 0.1.0
description:
  - Takes the result of rlops.fleet.ec2_spot_request and the other results of the AWS
    provider's launch, and answers with C(hosts) (the instance to add to the hosts that
    train, as rlops.fleet.aws_session_info records it, with its C(data_volume)), C(to_create)
    (in check mode, the instance that would first be launched or started - it cannot be
    reached, so it is named instead of added) and C(lines) (what to show).
positional: _input
options:
  _input:
    description: The result of rlops.fleet.ec2_spot_request.
    type: dict
    required: true
  attached:
    description: The result of rlops.fleet.ebs_volume_attachment.
    type: dict
    required: true
  session:
    description: The session id.
    type: str
    required: true
  settings:
    description: The rlops_aws_* settings by name (key_name, public_key_file, volume_size,
      volume_type, volume_device are read).
    type: dict
    required: true
  key_changed:
    description: Whether the key pair was (or would be) imported.
    type: bool
    default: false
  group:
    description: The result of amazon.aws.ec2_security_group.
    type: dict
    default: {}
  ssh_cidr:
    description: Who may SSH in.
    type: str
    default: ''
  check_mode:
    description: Whether the play runs in check mode.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Show what was done
  ansible.builtin.debug:
    msg: >-
      {{ (spot | rlops.fleet.aws_launch_report(attached=volume, session=rlops_session,
      settings={})).lines }}
"""

RETURN = r"""
_value:
  description: C(hosts), C(to_create) and C(lines).
  type: dict
"""

from ansible_collections.rlops.fleet.plugins.module_utils.aws_provision import (  # noqa: E402
    launch_report,
)


def aws_launch_report(spot, attached, session, settings, key_changed=False, group=None,
                      ssh_cidr="", check_mode=False):
    return launch_report(spot, attached, session, settings, bool(key_changed), group or {},
                         ssh_cidr, bool(check_mode))


class FilterModule(object):
    def filters(self):
        return {"aws_launch_report": aws_launch_report}
