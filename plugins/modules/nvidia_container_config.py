#!/usr/bin/python
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""Internal module of the nvidia_docker role: the engine's GPU configuration from nvidia-ctk."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nvidia_container_config
short_description: Give Docker the nvidia runtime, or write podman's CDI spec, from nvidia-ctk
version_added: 0.1.0
extends_documentation_fragment:
  - rlops.fleet.attributes
description:
  - Internal module of the rlops.fleet.nvidia_docker role. Writes O(path) only when its
    content would change (root-owned, mode C(0644)), creating its folder (C(0755)) when
    missing.
  - O(engine=docker) - O(path) is Docker's C(daemon.json), which belongs to the user as much
    as to the role. C(nvidia-ctk runtime configure --runtime=docker --dry-run) (writes
    nothing) says what the runtime entry is; without O(nvidia_ctk) the entry is the one it
    writes (C(runtimes.nvidia.path=nvidia-container-runtime), and C(default-runtime=nvidia)
    with O(default_runtime)). The entry is combined recursively into the file's keys, and the
    file is written only when that changes them - every other key stays as the user had it,
    and a file that already has the entry is not even reformatted. A file that is not a JSON
    object is refused, never overwritten.
  - O(engine=podman) - O(path) is the CDI spec of the host's GPUs and driver files,
    C(nvidia-ctk cdi generate --format=yaml) (to standard output), regenerated on each run so
    that a driver upgrade is picked up.
  - The decisions are pure functions in C(plugins/module_utils/nvidia_container.py).
author:
  - rlops.fleet developers (!UNKNOWN)
attributes:
  check_mode:
    details: nvidia-ctk runs in check mode too (it writes nothing); the file is not written.
options:
  engine:
    description: The container engine whose configuration is written.
    type: str
    required: true
    choices: [docker, podman]
  path:
    description: Docker's C(daemon.json), or the CDI spec for podman.
    type: path
    required: true
  nvidia_ctk:
    description:
      - The nvidia-ctk program, a name looked up on C(PATH) or a path. Needed for podman;
        for Docker, without it the module writes the entry nvidia-ctk writes.
    type: str
    default: nvidia-ctk
  default_runtime:
    description: Docker - make nvidia the default runtime (C(--set-as-default)).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Give Docker the nvidia runtime
  rlops.fleet.nvidia_container_config:
    engine: docker
    path: /etc/docker/daemon.json

- name: Write podman's CDI spec of the GPUs
  rlops.fleet.nvidia_container_config:
    engine: podman
    path: /etc/cdi/nvidia.yaml
"""

RETURN = r"""
path:
  description: The file.
  returned: always
  type: str
  sample: /etc/docker/daemon.json
config:
  description: Docker - daemon.json's content as it is after the run (or would be, in check mode).
  returned: when O(engine=docker)
  type: dict
  sample: {"runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}}}
"""

import os  # noqa: E402
import tempfile  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.common.text.converters import to_text  # noqa: E402
from ansible_collections.rlops.fleet.plugins.module_utils.nvidia_container import (  # noqa: E402
    ConfigProblem,
    daemon_config,
    daemon_text,
    runtime_entry,
)


def read_text(path):
    try:
        with open(path, "rb") as handle:
            return to_text(handle.read(), errors="surrogate_or_strict")
    except FileNotFoundError:
        return None


def ctk(module, program, *args):
    """nvidia-ctk's standard output; a failure is a problem that says why."""
    if program is None:
        raise ConfigProblem("%s is not on this host: install the NVIDIA Container Toolkit"
                            % module.params["nvidia_ctk"])
    argv = [program, *args]
    rc, out, err = module.run_command(argv)
    if rc != 0:
        raise ConfigProblem("%s exited %s: %s" % (" ".join(argv), rc, (err or out).strip()[-500:]))
    return out


def write(module, path, text):
    """Write `text` to `path` atomically, root's (when run as root) and mode 0644, its folder
    created when missing."""
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        os.makedirs(folder, 0o755)
    handle, tmp = tempfile.mkstemp(dir=folder, prefix=".%s." % os.path.basename(path))
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(tmp, 0o644)
    module.atomic_move(tmp, path)
    os.chmod(path, 0o644)
    if os.geteuid() == 0:
        os.chown(path, 0, 0)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            engine=dict(type="str", required=True, choices=["docker", "podman"]),
            path=dict(type="path", required=True),
            nvidia_ctk=dict(type="str", default="nvidia-ctk"),
            default_runtime=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    params = module.params
    path = params["path"]
    result = {"path": path}
    before = read_text(path)
    program = module.get_bin_path(params["nvidia_ctk"])
    try:
        if params["engine"] == "docker":
            output = None
            if program is not None:
                default = ["--set-as-default"] if params["default_runtime"] else []
                output = ctk(module, program, "runtime", "configure", "--runtime=docker",
                             "--dry-run", *default)
            entry = runtime_entry(output, params["default_runtime"])
            current, wanted = daemon_config(before, entry, path)
            result["config"] = wanted
            after = before if wanted == current else daemon_text(wanted)
        else:
            after = ctk(module, program, "cdi", "generate", "--format=yaml").rstrip("\r\n") + "\n"
    except ConfigProblem as problem:
        module.fail_json(msg=str(problem), **result)
    result["changed"] = after != before
    if module._diff:
        result["diff"] = {"before": before or "", "after": after, "before_header": path,
                          "after_header": path}
    if result["changed"] and not module.check_mode:
        write(module, path, after)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
