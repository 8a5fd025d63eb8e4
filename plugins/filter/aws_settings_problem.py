# -*- coding: utf-8 -*-
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""Filter that says what is wrong with the rlops_aws_* settings, before anything changes."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
name: aws_settings_problem
short_description: The first problem of the AWS provider's settings (empty when there is none)
version_added: 0.1.0
description:
  - Takes the rlops_aws_* settings as a mapping and answers with one message that names the
    setting and says why, or an empty string. The AWS provider's provision entry point
    (rlops.fleet.provider_aws) asks it before any AWS call.
  - Checked, in this order - the hosts group is empty (the provider adds the instance
    there), a region, at least one instance type, an AMI id, a list of zones, mappings for
    tags, connect and subnet ids, only known keys in rlops_aws_connect, subnet ids with a VPC
    id, public or private address, an IPv4 CIDR, a volume id, positive size and timeout, an
    existing public key file; rollout workers (rlops_aws_rollout_workers, 0 to 64) only with
    the Ray backend, with instance types and a price in USD per hour.
positional: _input
options:
  _input:
    description: 'The settings, C({name: value}) of every rlops_aws_* variable.'
    type: dict
    required: true
  hosts_group:
    description: The group the instances are added to (rlops_hosts).
    type: str
    required: true
  hosts_listed:
    description: The hosts the inventory already lists in that group.
    type: list
    elements: str
    default: []
  key_file_exists:
    description: Whether rlops_aws_public_key_file is a file on the controller.
    type: bool
    default: false
  backend:
    description: What runs the session (rlops_backend); rollout workers need C(ray).
    type: str
    default: supervisor
"""

EXAMPLES = r"""
- name: Check the AWS settings
  ansible.builtin.assert:
    that: __problem | length == 0
    fail_msg: "{{ __problem }}"
  vars:
    __names: "{{ query('ansible.builtin.varnames', '^rlops_aws_') }}"
    __problem: >-
      {{ dict(__names | zip(query('ansible.builtin.vars', *__names)))
      | rlops.fleet.aws_settings_problem(hosts_group=rlops_hosts,
      hosts_listed=groups[rlops_hosts] | default([]),
      key_file_exists=rlops_aws_public_key_file is file, backend=rlops_backend) }}
"""

RETURN = r"""
_value:
  description: The message, or an empty string.
  type: str
"""

import re  # noqa: E402
from collections.abc import Mapping  # noqa: E402

from ansible_collections.rlops.fleet.plugins.module_utils.aws_rollout import rollout_problem  # noqa: E402
from ansible_collections.rlops.fleet.plugins.module_utils.jinja_values import as_int, is_list  # noqa: E402

# What the provider's add_hosts.yml takes from rlops_aws_connect.
CONNECT_KEYS = ("ansible_host", "ansible_port", "ansible_user", "ansible_ssh_private_key_file",
                "ansible_ssh_common_args", "ansible_connection")
_CIDR = re.compile(r"^([0-9]{1,3}[.]){3}[0-9]{1,3}/[0-9]{1,2}$")


def settings_problem(settings, hosts_group, hosts_listed=(), key_file_exists=False,
                     backend="supervisor"):
    """The first problem of `settings` (rlops_aws_* name -> value), or ''."""
    def text(name):
        value = settings.get("rlops_aws_" + name)
        return "" if value is None else str(value)

    def value(name):
        return settings.get("rlops_aws_" + name)

    rollout = rollout_problem(settings, str(backend))
    connect = value("connect") if isinstance(value("connect"), Mapping) else {}
    unknown = [key for key in connect if key not in CONNECT_KEYS]
    checks = [
        (not hosts_listed,
         "rlops_provider aws adds the session's instance to the group %s, but the inventory"
         " already lists hosts there (%s): use an inventory whose %s group is empty"
         " (inventories/aws)" % (hosts_group, ", ".join(hosts_listed), hosts_group)),
        (text("region").strip(), "rlops_aws_region is empty (set it, or AWS_REGION)"),
        (is_list(value("instance_types")) and len(value("instance_types")) > 0,
         "rlops_aws_instance_types must list at least one instance type, e.g. [g4dn.xlarge]"),
        (re.match(r"ami-[0-9a-f]+$", text("image_id")),
         "rlops_aws_image_id '%s' is not an AMI id (ami-0123...): name the image to boot"
         % text("image_id")),
        (is_list(value("availability_zones")),
         "rlops_aws_availability_zones must be a list of zones (empty: every zone of the region)"),
        (all(isinstance(value(n), Mapping) for n in ("tags", "connect", "subnet_ids")),
         "rlops_aws_tags, rlops_aws_connect and rlops_aws_subnet_ids must be mappings"),
        (not unknown, "rlops_aws_connect knows only %s; got %s"
         % (", ".join(CONNECT_KEYS), ", ".join(unknown))),
        (not text("vpc_id") or value("subnet_ids"),
         "rlops_aws_vpc_id %s needs rlops_aws_subnet_ids ({zone: subnet id} of that VPC): without"
         " them instances land in the default VPC, away from the security group" % text("vpc_id")),
        (value("address") in ("public", "private"),
         "rlops_aws_address must be public or private, got %s" % text("address")),
        (not text("ssh_cidr") or _CIDR.match(text("ssh_cidr")),
         "rlops_aws_ssh_cidr '%s' is not an IPv4 CIDR such as 203.0.113.7/32" % text("ssh_cidr")),
        (not text("volume_id") or re.match(r"vol-[0-9a-f]+$", text("volume_id")),
         "rlops_aws_volume_id '%s' is not a volume id (vol-0123...)" % text("volume_id")),
        (as_int(value("volume_size")) > 0 and as_int(value("wait_timeout")) > 0,
         "rlops_aws_volume_size and rlops_aws_wait_timeout must be positive numbers"),
        (not text("public_key_file") or key_file_exists,
         "rlops_aws_public_key_file %s is not a file on the controller (set it to your SSH public"
         " key, or to '' to use the existing key pair %s)"
         % (text("public_key_file"), text("key_name"))),
        (not rollout, rollout),
    ]
    return next((message for ok, message in checks if not ok), "")


def aws_settings_problem(settings, hosts_group, hosts_listed=None, key_file_exists=False,
                         backend="supervisor"):
    return settings_problem(settings, hosts_group, list(hosts_listed or []), bool(key_file_exists),
                            backend)


class FilterModule(object):
    def filters(self):
        return {"aws_settings_problem": aws_settings_problem}
