# -*- coding: utf-8 -*-
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""Filter that says what is wrong with rlops.fleet.gpu_host's inputs, and with what detection
found against them, before anything changes: the role's preflight asserts on its answer."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
name: gpu_host_problems
short_description: What is wrong with the gpu_host role's inputs and what it found (a list)
version_added: 0.1.0
description:
  - Takes the answer of C(rlops.fleet.gpu_host_detect) and the role's gpu_host_* settings, and
    answers with one message per problem, each saying what and why; empty when there is none.
  - Checked, the inputs - a driver branch that is empty or three digits (no C(latest)), an
    http(s) URL for the Debian mirror. The driver installation's own settings (reboot timeout,
    CUDA repository) are checked by rlops.fleet.nvidia_driver's preflight.
  - Checked, against what was found - a host without a GPU when one is required, a driver to
    install on a distribution without a recipe, Debian's driver path without a source of the
    release's C(main) to take the missing components from, a plan that cannot be carried out
    (a pinned branch the system's packages do not have), a torch build the driver cannot run.
positional: _input
options:
  _input:
    description: What C(rlops.fleet.gpu_host_detect) answered (C(gpus), C(scanned),
      C(driver_plan), C(torch_check), C(debian_sources)).
    type: dict
    required: true
  settings:
    description: 'The settings, C({name: value}) of the gpu_host_* variables.'
    type: dict
    required: true
  host:
    description: The host's name, for the messages.
    type: str
    required: true
  distribution:
    description: The host's distribution and version (C(Debian 12)), for the messages.
    type: str
    required: true
  release:
    description: The host's release (C(bookworm)), for the messages.
    type: str
    default: ""
  recipe:
    description: The driver recipe's package source - C(debian), C(redhat), C(none) or
      C(unsupported) (no recipe for the distribution).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Check the inputs, and what was found against them
  ansible.builtin.assert:
    that: __problems | length == 0
    fail_msg: "{{ __problems | join('; ') }}"
  vars:
    __problems: >-
      {{ __gpu_host_detected | rlops.fleet.gpu_host_problems(__gpu_host_settings,
      host=inventory_hostname, distribution='Debian 12', release='bookworm', recipe='debian') }}
"""

RETURN = r"""
_value:
  description: The messages, inputs first; empty when everything is right.
  type: list
  elements: str
"""

import re  # noqa: E402

from ansible_collections.rlops.fleet.plugins.module_utils.jinja_values import (  # noqa: E402
    as_bool,
    failed,
    setting_text,
)

_BRANCH = re.compile(r"([0-9]{3})?$")
_URL = re.compile(r"https?://")


def gpu_host_problems(detected, settings, host, distribution, recipe, release=""):
    """Every problem of `settings` (gpu_host_* name -> value) and of what gpu_host_detect
    found (`detected`) against them, or []."""
    text = setting_text(settings, "gpu_host_")
    plan = detected.get("driver_plan") or {}
    torch = detected.get("torch_check") or {}
    debian = detected.get("debian_sources") or {}
    install = as_bool(settings.get("gpu_host_install_driver"))
    wanted = plan.get("action") == "install"
    # As the role passes it to gpu_host_detect (`| string`): a null is 'None', not empty.
    branch = str(settings.get("gpu_host_driver_branch"))
    return failed([
        (_BRANCH.match(branch),
         "gpu_host_driver_branch '%s' must be a driver branch such as '580' (pinned; no"
         " 'latest'), or empty to keep a working driver" % branch),
        (not text("debian_mirror") or _URL.match(text("debian_mirror")),
         "gpu_host_debian_mirror (%s) must be an http(s) URL" % text("debian_mirror")),
        (detected.get("gpus") or not as_bool(settings.get("gpu_host_required")),
         "gpu_host_required is true but %s has no NVIDIA GPU: none of its %s PCI devices is a"
         " display controller of vendor 0x10de (/sys/bus/pci/devices/*/vendor, class). Run it"
         " on a GPU instance, or set gpu_host_required false to use the host in CPU mode."
         % (host, detected.get("scanned", 0))),
        (recipe != "unsupported" or not (wanted and install),
         "gpu_host has no driver recipe for %s (Debian 12, Ubuntu 22.04/24.04, RHEL/Rocky/Alma"
         " 8 and 9 are supported), and %s has no working driver (%s): install one (gpu_host"
         " keeps a working driver), or set gpu_host_install_driver false to detect only"
         % (distribution, host, plan.get("reason", ""))),
        (recipe != "debian" or not wanted or not debian.get("missing") or debian.get("mirror"),
         "no apt source for %s main on %s: set gpu_host_debian_mirror" % (release, host)),
        (not plan.get("error") or not install, "%s: %s" % (host, plan.get("error"))),
        (torch.get("status") != "incompatible",
         "%s: %s (gpu_host_check_torch false skips this check)" % (host, torch.get("message"))),
    ])


class FilterModule(object):
    def filters(self):
        return {"gpu_host_problems": gpu_host_problems}
