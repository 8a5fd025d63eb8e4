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
  - A resumed session whose recorded set (C(config/requirements.lock)) the host lacks (a
    fresh data disk) reads it from storage, C(<storage>/<session>/config/requirements.lock) -
    C(file://) storage in the same host read; C(s3://) storage from the controller when the
    controller checked storage, else from the host (M(rlops.fleet.storage_check) with
    C(read), with the storage credentials or the host's instance role). None recorded - a new
    session's set. Storage that cannot be read fails with one message saying why.
  - O(stage=check) - the same before the host roles (C(playbooks/tasks/prepare_host.yml)),
    leaving a set that only storage has to O(stage=again) (an endpoint the host roles serve
    may not be up yet, file storage may be on a volume they mount; RV(spec) is empty then),
    but for C(s3://) storage that the controller checked, read from the controller there too
    (a failure is said before anything changes).
  - O(stage=again) - the host read again after the roles that prepare it (a mounted data
    volume brings its own sessions, venvs and storage folder), that a new session is still
    new, and the set as above. Returns the first result (O(preflight)) with the new read
    over its RV(host).
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
    choices: [preflight, check, again]
    default: preflight
  preflight:
    description: With O(stage=again), the registered result of O(stage=check).
    type: dict
seealso:
  - module: rlops.fleet.session_preflight
  - module: rlops.fleet.storage_check
  - module: rlops.fleet.trainer_host_info
"""

EXAMPLES = r"""
- name: Check the inputs and read what the host has for the session, before the host roles
  rlops.fleet.trainer_preflight:
    inputs: "{{ __trainer_preflight_inputs }}"
    stage: check
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
      read (paths, checkpoints, commands, Python modules, files) over the first.
  type: dict
  returned: always
spec:
  description:
    - The set the session's venv is installed with - a new session's, or the one a resumed
      session recorded on the host or in storage; empty after O(stage=check) when only
      storage has it.
  type: str
  returned: always
set_from:
  description: Where RV(spec) comes from - C(new), C(host), C(storage), or C(none recorded)
    (a resumed session that recorded none gets a new session's set).
  type: str
  returned: always
  sample: storage
record_from_storage:
  description: Whether a resumed session's recorded set is read from storage (not on the host).
  type: bool
  returned: always
new_spec:
  description: A new session's set, for a new session or one whose record is not on the host.
  type: str
  returned: when the venv may need a new session's set
owner_group:
  description: The job's group.
  type: str
  returned: always
  sample: trainer
manager:
  description: The session's supervisor - C(systemd) or C(process).
  type: str
  returned: always
  sample: process
env_extra:
  description: The gymnasium extra the reference agent's env needs; empty for none.
  type: str
  returned: always
  sample: box2d
storage_checked:
  description: Whether storage was reached from the controller and passed the check.
  type: bool
  returned: always
storage_check_reason:
  description: Why storage was not checked from the controller; empty when it was.
  type: str
  returned: always
"""
