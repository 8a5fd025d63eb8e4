# -*- coding: utf-8 -*-
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""Filters that decide for rlops.fleet.nvidia_docker: what is wrong with its inputs, and what
its verification found wrong."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
name: nvidia_docker_problems
short_description: What is wrong with the nvidia_docker role's inputs (a list)
version_added: 0.1.0
description:
  - Takes the role's nvidia_docker_* settings as a mapping and answers with one message per
    problem, each naming the setting and saying why; empty when there is none. The role's
    preflight asserts on it before anything changes.
  - Checked - Docker from the distribution where the distribution has a Docker package, a
    toolkit version that is a package version (or empty), an http(s) toolkit repository URL
    (or empty), an absolute CDI spec path.
  - The filter C(nvidia_docker_verify_problems) of the same file says what the role's
    verification found wrong - Docker's runtimes (C(docker info)) without C(nvidia), a
    container that failed or saw fewer GPUs than the host has.
positional: _input
options:
  _input:
    description: 'The settings, C({name: value}) of the nvidia_docker_* variables.'
    type: dict
    required: true
  distribution:
    description: The host's distribution (the fact C(distribution)), for the messages.
    type: str
    required: true
  distro_docker_packages:
    description: The distribution's own Docker packages (empty where it has none).
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Check the inputs
  ansible.builtin.assert:
    that: __problems | length == 0
    fail_msg: "{{ __problems | join('; ') }}"
  vars:
    __problems: >-
      {{ __nvidia_docker_settings | rlops.fleet.nvidia_docker_problems(
      distribution=ansible_facts['distribution'], distro_docker_packages=['docker.io']) }}
"""

RETURN = r"""
_value:
  description: The messages, in the order above; empty when everything is right.
  type: list
  elements: str
"""

import json  # noqa: E402
import re  # noqa: E402

from ansible_collections.rlops.fleet.plugins.module_utils.jinja_values import (  # noqa: E402
    failed,
    setting_text,
)

_VERSION = re.compile(r"^$|[0-9][0-9A-Za-z.~+-]*$")


def nvidia_docker_problems(settings, distribution, distro_docker_packages=()):
    """Every problem of `settings` (nvidia_docker_* name -> value), or []."""
    text = setting_text(settings, "nvidia_docker_")

    checks = [
        (text("engine") != "docker" or text("docker_source") != "distro"
         or len(distro_docker_packages or []) > 0,
         "%s has no Docker package of its own: set nvidia_docker_docker_source docker (Docker's"
         " repository) or nvidia_docker_engine podman" % distribution),
        (_VERSION.match(text("toolkit_version")),
         "nvidia_docker_toolkit_version '%s' is not a package version (1.17.8-1)"
         % text("toolkit_version")),
        (not text("toolkit_repo_url") or re.match(r"https?://", text("toolkit_repo_url")),
         "nvidia_docker_toolkit_repo_url (%s) must be an http(s) URL or empty"
         % text("toolkit_repo_url")),
        (text("cdi_spec").startswith("/"),
         "nvidia_docker_cdi_spec (%s) must be an absolute path" % text("cdi_spec")),
    ]
    return failed(checks)


def nvidia_docker_verify_problems(runtimes, smi, gpu_count, host, daemon_json):
    """What the verification found wrong: Docker's runtimes (`docker info`'s JSON, None when
    not asked) without nvidia, a container (`smi`: the command's result, None when not run)
    that failed or saw fewer GPUs than `gpu_count`."""
    problems = []
    if runtimes is not None:
        try:
            listed = json.loads(runtimes)
        except ValueError:
            listed = {}
        if "nvidia" not in (listed if isinstance(listed, dict) else {}):
            problems.append("Docker on %s does not list the nvidia runtime (%s): see %s"
                            % (host, runtimes, daemon_json))
    if smi is not None:
        lines = str(smi.get("stdout", "")).splitlines()
        seen = len([line for line in lines if re.match(r"GPU [0-9]+:", line)])
        if smi.get("rc") != 0 or seen != int(gpu_count):
            problems.append("a container on %s sees %s of %s GPUs: %s"
                            % (host, seen, gpu_count,
                               str(smi.get("stdout", "")) + str(smi.get("stderr", ""))))
    return problems


class FilterModule(object):
    def filters(self):
        return {"nvidia_docker_problems": nvidia_docker_problems,
                "nvidia_docker_verify_problems": nvidia_docker_verify_problems}
