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
    answer as RV(answer). An action plugin only - this file is its documentation. The call
    goes through the connection as one shell command (become as the task says, the task's
    C(environment), O(stdin) on its stdin) - no module process runs on the host around it.
  - Fails with one message - the runtime's last error line; that the runtime predates the
    session layer when it does not know O(verb) (a C(train_new) or C(resume) on the host
    installs the current one); for C(prepare), the runtime's message; for C(stop) and
    C(start), the runtime's message and the last lines of the job's log.
  - A host without the runtime (no O(cli), or a CLI that exits without a word) has no
    sessions - for C(locate) and C(status) that is nothing to do, RV(answer) is empty.
  - C(changed) is the answer's C(changed) (C(stop) without one - true); C(locate) only
    reads; C(evaluate) always runs episodes.
  - On the controller, around that call, it sets the session layer's
    facts (C(locate) - C(rlops_session_here), C(rlops_session_owner),
    C(rlops_session_manager), C(rlops_session_backend), C(rlops_known_sessions),
    C(rlops_session_in_storage); C(status) - C(rlops_status), C(rlops_publish), each item
    with its C(host); C(evaluate) - C(rlops_eval)) and shows what
    was done (C(stop), C(pack), C(evaluate), C(fetch); in check mode what would be).
  - With O(dest), C(pack) brings the session home - the controller's checksums of O(dest) on
    stdin, so the pack holds only the files the controller lacks or has with other content;
    the pack is fetched, unpacked into O(dest) and removed on both sides - and C(evaluate)
    brings the evaluation's files into O(dest)/eval.
  - C(fetch) runs on the controller only - the collection's runtime (C(rlops-run fetch)) with
    the controller's Python brings the session from O(storage_uri) into O(dest), its newest
    complete checkpoint verified against its manifest with the same fallback as a resume.
author:
  - rlops.fleet developers (!UNKNOWN)
extends_documentation_fragment:
  - rlops.fleet.attributes
attributes:
  action:
    description: An action plugin only; the host runs the runtime's CLI (see the description).
    support: full
  check_mode:
    details:
      - Runs the call with C(--check) for the verbs that take it (all but C(locate), which
        only reads) - the runtime then says what it would do and changes nothing; nothing is
        fetched, unpacked or removed.
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
    description:
      - The runtime's CLI on the host (the session role's C(__rlops_cli)); required but for
        C(fetch).
      - Empty for C(prepare) and C(start) - the session's venv is not installed yet (check mode
        before the install) - nothing is asked, RV(answer) is empty; C(start) in check mode
        says it would start the session.
    type: str
  verb:
    description: The session layer's verb (C(fetch) - on the controller, from storage).
    type: str
    required: true
    choices: [locate, status, stop, pack, evaluate, prepare, start, fetch]
  data_root:
    description:
      - The host's data root (C(rlops_data_root)); required but for C(fetch) and with
        O(session_dir).
    type: str
  session_dir:
    description:
      - The session's folder on the host, instead of O(data_root) and O(session) - required
        for C(prepare) (check the settings and storage, write the session's config; O(stdin)
        is the request) and C(start) (start the session's supervisor and wait), the trainer
        role's calls. A failed C(start) fails with the end of its C(logs/job.log).
    type: str
  mode:
    description: C(prepare) - a C(new) session or a C(resume).
    type: str
    choices: [new, resume]
  manager:
    description: C(start) - the service manager (C(systemd), C(detached), C(auto)).
    type: str
  timeout:
    description: C(start) - seconds to wait for the job to be running.
    type: int
  restart:
    description: C(start) - restart a running session (its settings changed).
    type: bool
    default: false
  enable:
    description: C(start) - enable the unit at boot (systemd); false passes C(--no-enable).
    type: bool
    default: true
  user:
    description: C(start) - the job's user (the unit's C(User=), systemd).
    type: str
  group:
    description: C(start) - the job's group (the unit's C(Group=), systemd).
    type: str
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
    description: The host's name in the messages; the action plugin gives C(inventory_hostname).
    type: str
    default: ""
  dest:
    description:
      - A folder on the controller - C(pack) and C(fetch) bring the session into it,
        C(evaluate) its evaluation into its C(eval/). Without it, only the answer.
    type: path
  storage_uri:
    description:
      - C(fetch) - the session's storage (C(rlops_storage_uri)); O(stdin) is the storage
        client's environment.
    type: str
  region:
    description: C(fetch) - the region for the storage client unless O(stdin) names one.
    type: str
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

- name: Stop it, as root under systemd
  rlops.fleet.session_call:
    cli: "{{ rlops_data_root }}/bin/rlops-run"
    verb: stop
    data_root: "{{ rlops_data_root }}"
    session: "{{ rlops_session }}"
    args: [--manager, auto]
  become: true
  when: rlops_session_here

- name: Bring the session's new and changed files into results/<session>
  rlops.fleet.session_call:
    cli: "{{ rlops_data_root }}/bin/rlops-run"
    verb: pack
    data_root: "{{ rlops_data_root }}"
    session: "{{ rlops_session }}"
    dest: "{{ playbook_dir }}/results/{{ rlops_session }}"

- name: Bring a session home from S3 storage (on the controller)
  rlops.fleet.session_call:
    verb: fetch
    session: "{{ rlops_session }}"
    storage_uri: s3://bucket/sessions
    stdin: "{{ rlops_storage_credentials }}"
    region: us-east-1
    dest: "{{ playbook_dir }}/results/{{ rlops_session }}"
  delegate_to: localhost
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
msg:
  description:
    - What was done (in check mode - would be), for C(stop), C(pack), C(evaluate), C(fetch);
      for C(start) in check mode, what would be.
  returned: success
  type: list
  elements: str
  sample: ["session cartpole-20261122T051500Z on trainer1: stopped; resume with: ..."]
ansible_facts:
  description:
    - The session layer's facts (see the description), for C(locate), C(status), C(evaluate).
  returned: success
  type: dict
  sample: {"rlops_session_here": true, "rlops_session_owner": "rl"}
rc:
  description:
    - The CLI's exit code when the call failed. Not returned otherwise (Ansible fails a task
      whose result has a C(rc) other than 0, and a host without the runtime is not a failure).
  returned: failure
  type: int
  sample: 2
"""
