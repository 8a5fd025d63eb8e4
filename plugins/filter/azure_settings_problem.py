# -*- coding: utf-8 -*-
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""Filters of the Azure provider's checks before anything is created (azure_settings.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
name: azure_settings_problem
short_description: The first problem of the Azure provider's settings (empty when there is none)
version_added: 0.1.0
description:
  - Takes the rlops_azure_* settings as a mapping and answers with one message that names the
    setting and says why, or an empty string. rlops.fleet.provider_azure's provision asks it
    before any call reaches Azure.
  - Checked - the hosts group is empty, a known region, a known VM size, spot true or false,
    a max price of -1 or above 0 (spot only), managed disk types, the data disk's size and
    LUN, the image, the admin user, the public key file, an IPv4 CIDR for SSH, the connect
    keys, the auth source, the managed identity and the storage scope of its role, the tags
    by Azure's rules, and the names of the session's resources by Azure's naming rules.
  - The same file holds C(azure_credentials_problem) (no credentials the modules would find),
    C(azure_disk_problem) (a data disk in another region, attached to another VM or of
    another session), C(azure_request_problem) (what new or resume cannot go on with),
    C(azure_names) (the session's resource names), C(azure_cost) (USD so far and the
    price's source), C(azure_locate) (the provider contract's facts from the
    session's VMs, disks and addresses), C(azure_stopped_tags) (a deallocated VM's run
    time kept in its tags), C(azure_principal_id) (a VM's system-assigned identity),
    C(azure_role_assignment) (the Storage Blob Data Contributor assignment of that identity
    on rlops_azure_identity_scope) and C(azure_identity_problem) (an existing VM without
    the identity asked for).
positional: _input
options:
  _input:
    description: 'The settings, C({name: value}) of every rlops_azure_* variable.'
    type: dict
    required: true
  session:
    description: The session id (it is part of the resources' names).
    type: str
    required: true
  hosts_group:
    description: The group the VM is added to (rlops_hosts).
    type: str
    required: true
  hosts_listed:
    description: The hosts the inventory already lists in that group.
    type: list
    elements: str
    default: []
  key_file_exists:
    description: Whether rlops_azure_public_key_file is a file on the controller.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Check the Azure settings
  ansible.builtin.assert:
    that: __problem | length == 0
    fail_msg: "{{ __problem }}"
  vars:
    __names: "{{ query('ansible.builtin.varnames', '^rlops_azure_') }}"
    __problem: >-
      {{ dict(__names | zip(query('ansible.builtin.vars', *__names)))
      | rlops.fleet.azure_settings_problem(session=rlops_session, hosts_group=rlops_hosts,
      key_file_exists=rlops_azure_public_key_file is file) }}
"""

RETURN = r"""
_value:
  description: The message, or an empty string.
  type: str
"""

from ansible_collections.rlops.fleet.plugins.module_utils import azure_settings as az  # noqa: E402


def azure_settings_problem(settings, session, hosts_group, hosts_listed=None,
                           key_file_exists=False):
    return az.settings_problem(dict(settings), str(session), hosts_group, list(hosts_listed or []),
                               bool(key_file_exists))


def azure_credentials_problem(env, profile_has_subscription=False, auth_source="auto",
                              cloud_environment="AzureCloud"):
    return az.credentials_problem(dict(env or {}), bool(profile_has_subscription), str(auth_source),
                                  cloud_environment)


def azure_disk_problem(disks, location, vm_name, session):
    """`disks`: azure_rm_manageddisk_info's ansible_info.azure_managed_disk (0 or 1 record)."""
    disks = list(disks or [])
    return az.disk_problem(disks[0] if disks else None, str(location), str(vm_name), str(session))


def azure_request_problem(mode, session, vm, disk, settings, location):
    names = az.resource_names(str(session), dict(settings or {}))
    return az.request_problem(str(mode), str(session), dict(vm or {}), dict(disk or {}), names,
                              str(location))


def azure_names(session, settings=None):
    names = az.resource_names(str(session), dict(settings or {}))
    return dict((key.replace(" ", "_").replace("IP_", "ip_"), value)
                for key, value in names.items())


def azure_cost(settings, seconds):
    price, source = az.hourly_price(dict(settings))
    return {"usd": az.cost_so_far(price, seconds), "usd_per_hour": price, "source": source}


def azure_locate(found, session, purpose, settings, now, hosts_group="trainers",
                 hosts_listed=None):
    """`found`: {vms, disks, addresses} as tasks/locate.yml reads them."""
    return az.locate(found.get("vms"), found.get("disks"), found.get("addresses"), str(session),
                     str(purpose), dict(settings), float(now), hosts_group,
                     list(hosts_listed or []))


def azure_stopped_tags(tags, now):
    return az.stopped_tags(dict(tags or {}), float(now))


def azure_principal_id(vm):
    return az.principal_id(dict(vm or {}))


def azure_role_assignment(scope, vm):
    """`vm`: a VM record with its identity; the role assignment azure_rm_roleassignment makes."""
    return az.role_assignment(str(scope), az.principal_id(dict(vm or {})))


def azure_identity_problem(vm, wanted):
    return az.identity_problem(dict(vm or {}), bool(wanted))


class FilterModule(object):
    def filters(self):
        return {
            "azure_settings_problem": azure_settings_problem,
            "azure_credentials_problem": azure_credentials_problem,
            "azure_disk_problem": azure_disk_problem,
            "azure_request_problem": azure_request_problem,
            "azure_names": azure_names,
            "azure_cost": azure_cost,
            "azure_locate": azure_locate,
            "azure_stopped_tags": azure_stopped_tags,
            "azure_principal_id": azure_principal_id,
            "azure_role_assignment": azure_role_assignment,
            "azure_identity_problem": azure_identity_problem,
        }
