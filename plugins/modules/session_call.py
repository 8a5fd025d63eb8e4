#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: session_call
short_description: Ask a training host's runtime about one session (the session layer's one call)
version_added: 0.1.0
description:
  - Runs C(<cli> session <verb> --data-root <data_root> [--session <session>] <args>) on the
    training host, the runtime's CLI C(rlops-run), which answers in JSON, and returns that
    answer as RV(answer).
  - Fails with one message - the runtime's last error line; that the runtime predates the
    session layer when it does not know O(verb) (a C(train_new) or C(resume) on the host
    installs the current one); for C(stop), the runtime's message and the last lines of
    the job's log.
  - A host without the runtime (no O(cli), or a CLI that exits without a word) has no
    sessions - for C(locate) and C(status) that is nothing to do, RV(answer) is empty.
  - C(changed) is the answer's C(changed) (C(stop) without one - true); C(locate) only
    reads; C(evaluate) always runs episodes.
author:
  - rlops.fleet developers (!UNKNOWN)
extends_documentation_fragment:
  - rlops.fleet.attributes
attributes:
  check_mode:
    details:
      - Runs the call with C(--check) for the verbs that take it (all but C(locate), which
        only reads) - the runtime then says what it would do and changes nothing.
  diff_mode:
    support: none
    details:
      - The answer says what changed.
  idempotent:
    support: partial
    details:
      - C(evaluate) runs the episodes again on every call.
options:
  cli:
    description: The runtime's CLI on the host (the session role's C(__rlops_cli)).
    type: path
    required: true
  verb:
    description: The session layer's verb.
    type: str
    required: true
    choices: [locate, status, stop, pack, evaluate]
  data_root:
    description: The host's data root (C(rlops_data_root)).
    type: path
    required: true
  session:
    description: The session id. C(status) without it answers for every session of the host.
    type: str
  args:
    description: More arguments of the verb, e.g. C([--manager, auto]) for C(stop).
    type: list
    elements: str
    default: []
  stdin:
    description:
      - What the call reads on stdin - a mapping (sent as JSON) or text. It may hold
        credentials (C(locate --storage-env-stdin)) and is never logged.
    type: raw
  host:
    description: The host's name in the failure messages (C(inventory_hostname)).
    type: str
    default: ""
seealso:
  - module: rlops.fleet.trainer_host_info
"""

EXAMPLES = r"""
- name: Look for the session on this host
  rlops.fleet.session_call:
    cli: "{{ rlops_data_root }}/bin/rlops-run"
    verb: locate
    data_root: "{{ rlops_data_root }}"
    session: "{{ rlops_session }}"
    args: [--storage-uri, "{{ rlops_storage_uri }}", --storage-env-stdin]
    stdin: "{{ rlops_storage_credentials }}"
    host: "{{ inventory_hostname }}"
  register: found

- name: Stop it, as root under systemd
  rlops.fleet.session_call:
    cli: "{{ rlops_data_root }}/bin/rlops-run"
    verb: stop
    data_root: "{{ rlops_data_root }}"
    session: "{{ rlops_session }}"
    args: [--manager, auto]
    host: "{{ inventory_hostname }}"
  become: true
  when: found.answer.here | default(false)
"""

RETURN = r"""
answer:
  description: The runtime's JSON answer; empty when the host has no runtime.
  returned: always
  type: dict
  sample: {"session_id": "cartpole-20261122T051500Z", "here": true, "owner": "rl", "changed": false}
runtime:
  description: Whether the host has the runtime and it answered.
  returned: always
  type: bool
  sample: true
cmd:
  description: The call's argv (stdin is not in it).
  returned: always
  type: list
  elements: str
  sample: ["/srv/rlops/bin/rlops-run", "session", "status", "--data-root", "/srv/rlops"]
rc:
  description:
    - The CLI's exit code when the call failed. Not returned otherwise (Ansible fails a task
      whose result has a C(rc) other than 0, and a host without the runtime is not a failure).
  returned: failure
  type: int
  sample: 2
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.rlops.fleet.plugins.module_utils.session_call import (
    build_argv,
    changed,
    failure,
    no_runtime,
    parse_answer,
    stdin_text,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            cli=dict(type="path", required=True),
            verb=dict(type="str", required=True,
                      choices=["locate", "status", "stop", "pack", "evaluate"]),
            data_root=dict(type="path", required=True),
            session=dict(type="str"),
            args=dict(type="list", elements="str", default=[]),
            stdin=dict(type="raw", no_log=True),
            host=dict(type="str", default=""),
        ),
        supports_check_mode=True,
    )
    p = module.params
    argv = build_argv(p["cli"], p["verb"], p["data_root"], p["session"], p["args"],
                      module.check_mode)
    if no_runtime(p["verb"], os.path.exists(p["cli"])):
        module.exit_json(changed=False, answer={}, runtime=False, cmd=argv)
    data = stdin_text(p["stdin"])
    rc, stdout, stderr = module.run_command(argv, data=data)
    if no_runtime(p["verb"], True, rc, stdout, stderr):
        module.exit_json(changed=False, answer={}, runtime=False, cmd=argv)
    answer = parse_answer(stdout)
    msg = failure(p["verb"], p["cli"], rc, stdout, stderr, answer, p["host"])
    if msg is not None:
        module.fail_json(msg=msg, answer=answer or {}, cmd=argv, rc=rc, stderr=stderr)
    module.exit_json(changed=changed(p["verb"], answer), answer=answer,
                     runtime=True, cmd=argv)


if __name__ == "__main__":
    main()
