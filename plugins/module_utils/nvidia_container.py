# -*- coding: utf-8 -*-
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""Pure decisions of rlops.fleet.nvidia_container_config: what Docker's daemon.json becomes
with the nvidia runtime (the user's keys kept), and whether a file must be written."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

# What `nvidia-ctk runtime configure --runtime=docker` writes, for a host without nvidia-ctk.
FALLBACK_RUNTIME = {"runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}}}


class ConfigProblem(Exception):
    """A file or an nvidia-ctk answer the module will not act on; the message says why."""


def combine(base, extra):
    """Ansible's combine(recursive=True): mappings merged key by key, anything else replaced."""
    result = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = combine(result[key], value)
        else:
            result[key] = value
    return result


def runtime_entry(ctk_output, default_runtime):
    """Docker's runtime entry: the JSON object nvidia-ctk's --dry-run printed (None: it did not
    run), else the entry it writes, with `default-runtime: nvidia` when asked."""
    if ctk_output is None:
        extra = {"default-runtime": "nvidia"} if default_runtime else {}
        return combine(FALLBACK_RUNTIME, extra)
    found = re.search(r"(?s)\{.*\}", ctk_output)
    try:
        entry = json.loads(found.group(0)) if found else None
    except ValueError:
        entry = None
    if not isinstance(entry, dict):
        raise ConfigProblem("nvidia-ctk printed no Docker configuration: %s"
                            % ctk_output.strip()[-300:])
    return entry


def daemon_config(text, entry, where):
    """(current, wanted) of daemon.json from its text ('' or None when missing): the entry
    combined into every key the user had. A file that is not a JSON object is refused."""
    try:
        current = json.loads(text) if text and text.strip() else {}
    except ValueError:
        current = None
    if not isinstance(current, dict):
        raise ConfigProblem("%s is not a JSON object: fix it by hand, the role does not"
                            " overwrite it" % where)
    return current, combine(current, entry)


def daemon_text(config):
    """daemon.json as Ansible's to_nice_json(indent=2) wrote it, with a final newline."""
    return json.dumps(config, indent=2, sort_keys=True, separators=(",", ": ")) + "\n"
