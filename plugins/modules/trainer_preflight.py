#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: trainer_preflight
short_description: Check a trainer session's inputs and read its host, before anything changes
version_added: 0.1.0
description:
  - Internal module of the rlops.fleet.trainer role (its C(tasks/preflight.yml) and
    C(tasks/main.yml)). An action plugin only - this file is its documentation.
  - O(stage=preflight) - on the controller, in Ansible's worker - the checks of
    M(rlops.fleet.session_preflight) (env id, hyperparameters, storage URI, C(s3://) storage
    reached from the controller), then the role's own rules on its inputs and on the
    controller's files (the job's source, the runtime's source, the wheelhouse). On the host
    M(rlops.fleet.storage_check) when the controller could not check C(s3://) storage, and
    one M(rlops.fleet.trainer_host_info) read - the job's user and group, the interpreter,
    the paths the role and the runtime role look at, a resumed session's recorded set, the
    checkpoints. Then the user, group and interpreter, the lock of the venv's versions for
    that interpreter, a resumed session's recorded set (made for the interpreter, and the
    set the inputs ask for), that a new session is new and that C(systemd) can supervise.
  - O(stage=again) - the host read again after the roles that prepare it (a mounted data
    volume brings its own sessions and venvs), and that a new session is still new. Returns
    the first result (O(preflight)) with the new read over its RV(host).
  - O(stage=record) - the recorded set of a resumed session that only storage has
    (O(read), C(rlops-run show-config)'s result) checked as above.
  - Fails with the first problem in one message, before anything changes. Reads only,
    but for the probe object that the storage checks write in storage (not in check mode).
author:
  - rlops.fleet developers (!UNKNOWN)
extends_documentation_fragment:
  - rlops.fleet.attributes.info_module
options:
  inputs:
    description:
      - The trainer role's inputs, named without their C(trainer_) prefix (C(session_id),
        C(mode), C(state), C(data_root), C(venv_root), C(source), C(source_path),
        C(source_repo), C(source_version), C(entrypoint), C(requirements),
        C(requirements_file), C(torch_requirement), C(runtime_extras), C(runtime_lock),
        C(runtime_source_path), C(wheelhouse), C(start_timeout), C(algo), C(env_id),
        C(hyperparameters), C(env), C(storage_uri), C(storage_credentials), C(storage_check),
        C(user), C(group), C(python), C(service_manager)), the job's settings
        (C(settings)), the role's defaults (C(defaults)), and the session's paths on the
        host (C(record), its C(config/requirements.lock); C(checkpoints); C(read_paths)).
      - The role's C(vars/main.yml) builds it (C(__trainer_preflight_inputs)).
    type: dict
    required: true
  stage:
    description: What to check.
    type: str
    choices: [preflight, again, record]
    default: preflight
  read:
    description: With O(stage=record), the registered result of C(rlops-run show-config).
    type: dict
  preflight:
    description: With O(stage=again) or O(stage=record), the registered result of
      O(stage=preflight) (or of O(stage=again)).
    type: dict
seealso:
  - module: rlops.fleet.session_preflight
  - module: rlops.fleet.storage_check
  - module: rlops.fleet.trainer_host_info
"""

EXAMPLES = r"""
- name: Check the inputs and read what the host has for the session
  rlops.fleet.trainer_preflight:
    inputs: "{{ __trainer_preflight_inputs }}"
  register: __trainer_preflight

- name: Read the host again after the host roles, over the first result
  rlops.fleet.trainer_preflight:
    inputs: "{{ __trainer_preflight_inputs }}"
    stage: again
    preflight: "{{ __trainer_preflight }}"
  register: __trainer_preflight
"""

RETURN = r"""
host:
  description:
    - What M(rlops.fleet.trainer_host_info) read on the host; with O(stage=again) the new
      read (paths, checkpoints, commands, Python modules) over the first.
  type: dict
  returned: O(stage=preflight) or O(stage=again)
spec:
  description:
    - The set the session's venv is installed with - a new session's, the one a resumed
      session recorded on the host (O(stage=preflight)) or in storage (O(stage=record)); empty
      when a resumed session's set is still to be read from storage.
  type: str
  returned: always
record_from_storage:
  description: Whether a resumed session's recorded set is read from storage (not on the host).
  type: bool
  returned: O(stage=preflight) or O(stage=again)
new_spec:
  description: A new session's set, for a new session or one whose record is not on the host.
  type: str
  returned: O(stage=preflight) or O(stage=again)
boot_spec:
  description: The storage client's set, to read a recorded set that only storage has.
  type: str
  returned: O(stage=preflight) or O(stage=again), when the record is read from storage
owner_group:
  description: The job's group.
  type: str
  returned: O(stage=preflight) or O(stage=again)
  sample: trainer
manager:
  description: The session's supervisor - C(systemd) or C(process).
  type: str
  returned: O(stage=preflight) or O(stage=again)
  sample: process
env_extra:
  description: The gymnasium extra the reference agent's env needs; empty for none.
  type: str
  returned: O(stage=preflight) or O(stage=again)
  sample: box2d
storage_checked:
  description: Whether storage was reached from the controller and passed the check.
  type: bool
  returned: O(stage=preflight) or O(stage=again)
storage_check_reason:
  description: Why storage was not checked from the controller; empty when it was.
  type: str
  returned: O(stage=preflight) or O(stage=again)
"""
