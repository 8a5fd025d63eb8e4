# -*- coding: utf-8 -*-
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""Filter that says what is wrong with rlops.fleet.volume_mount's inputs, before anything
changes: the role's preflight asserts on its answer."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
name: volume_mount_problems
short_description: What is wrong with the volume_mount role's inputs (a list)
version_added: 0.1.0
description:
  - Takes the role's volume_mount_* settings as a mapping and answers with one message per
    problem, each naming the setting and saying why; empty when there is none.
  - Checked - what the argument spec cannot say - an absolute mount point other than C(/)
    without a trailing C(/), an absolute device path with C(source=path), an EBS volume id
    with C(source=ebs), an EBS device name like C(/dev/sdf), a LUN and a wait that are not
    negative, instance-store models with C(source=instance_store), a label the file system
    allows, an octal mode, one mount option per item, the container data folder under the
    mount point.
positional: _input
options:
  _input:
    description: 'The settings, C({name: value}) of the volume_mount_* variables.'
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Check the inputs
  ansible.builtin.assert:
    that: __problems | length == 0
    fail_msg: "{{ __problems | join('; ') }}"
  vars:
    __problems: "{{ {'volume_mount_path': '/mnt/rlops/'} | rlops.fleet.volume_mount_problems }}"
"""

RETURN = r"""
_value:
  description: The messages, in the order above; empty when everything is right.
  type: list
  elements: str
"""

import re  # noqa: E402

from ansible_collections.rlops.fleet.plugins.module_utils.jinja_values import (  # noqa: E402
    as_bool,
    as_int,
    failed,
    setting_text,
)

# The longest label each file system takes (mkfs refuses longer ones, after the role began).
LABEL_MAX = {"ext4": 16, "xfs": 12}


def volume_mount_problems(settings):
    """Every problem of `settings` (volume_mount_* name -> value), or []."""
    text = setting_text(settings, "volume_mount_")
    source, path, fstype = text("source"), text("path"), text("fstype")
    label, label_max = text("fs_label"), LABEL_MAX.get(fstype, 16)
    data_dir = text("container_data_dir")
    options = settings.get("volume_mount_options") or []
    models = settings.get("volume_mount_instance_store_models") or []
    checks = [
        (re.match(r"/.", path) and not re.match(r".*/$", path),
         "volume_mount_path (%s) must be an absolute path other than /, without a trailing /"
         % path),
        (source != "path" or re.match("/", text("device")),
         "volume_mount_device (%s) must be an absolute device path with volume_mount_source=path"
         % text("device")),
        (source != "ebs" or re.match(r"vol-[0-9a-f]{8,17}$", text("ebs_volume_id")),
         "volume_mount_ebs_volume_id '%s' is not an EBS volume id (vol-0123456789abcdef0) and"
         " volume_mount_source=ebs needs one" % text("ebs_volume_id")),
        (not text("ebs_device_name")
         or re.match(r"(/dev/)?(sd|xvd)[a-z]+$", text("ebs_device_name")),
         "volume_mount_ebs_device_name (%s) must look like /dev/sdf or /dev/xvdf"
         % text("ebs_device_name")),
        (as_int(settings.get("volume_mount_azure_lun")) >= 0,
         "volume_mount_azure_lun must not be negative"),
        (source != "instance_store" or len(models) > 0,
         "volume_mount_instance_store_models must name at least one model with"
         " volume_mount_source=instance_store"),
        (as_int(settings.get("volume_mount_wait_timeout")) >= 0,
         "volume_mount_wait_timeout must not be negative"),
        (len(label) <= label_max,
         "volume_mount_fs_label '%s' is longer than %s allows (%s characters)"
         % (label, fstype, label_max)),
        (re.match(r"[0-7]?[0-7]{3}$", text("mode")),
         "volume_mount_mode (%s) must be an octal mode such as '0755'" % text("mode")),
        (not [option for option in options if re.search(r"[,\s]", str(option))],
         "volume_mount_options must list one option per item (no commas or spaces)"),
        (not as_bool(settings.get("volume_mount_container_data_root"))
         or re.match(re.escape(path) + "/.", data_dir),
         "volume_mount_container_data_dir (%s) must be under volume_mount_path (%s)"
         % (data_dir, path)),
    ]
    return failed(checks)


class FilterModule(object):
    def filters(self):
        return {"volume_mount_problems": volume_mount_problems}
