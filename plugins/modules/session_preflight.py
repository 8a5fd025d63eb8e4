#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: session_preflight
short_description: Check a training request and name its session before anything changes
version_added: 0.1.0
description:
  - Runs on the controller at the start of every rlops.fleet playbook, in Ansible's worker
    (an action plugin only - this file is its documentation).
  - Validates the session id (or builds one as C(<name>-<UTC timestamp>)), the gymnasium
    env id, the hyperparameters (JSON, and for the builtin agent the key names), and the
    storage URI (C(file://), C(s3://) or C(az://); C(az://) storage is checked by the
    runtime on the training host).
  - Reaches C(s3://) storage from the controller as the runtime's storage check does on
    the host (O(storage_check)). It lists under the prefix (C(s3:ListBucket)), writes the
    probe object C(<prefix>/.rlops-check/<controller host name>) (C(s3:PutObject)) and
    reads it back (C(s3:GetObject)). The S3 client is the collection's own (Python
    standard library, AWS Signature Version 4), the same as M(rlops.fleet.storage_check)
    uses on the training host; boto3 is not needed.
  - Fails with one message saying what is wrong and why. Changes nothing but its own
    probe object (overwritten by every check, never deleted), and not even that in check
    mode.
author:
  - rlops.fleet developers (!UNKNOWN)
extends_documentation_fragment:
  - rlops.fleet.s3_client
  - rlops.fleet.s3_client.probe
options:
  session:
    description: An existing or chosen session id. When empty, one is built from O(name).
    type: str
  name:
    description: Name part of a new session id.
    type: str
    default: session
  env_id:
    description:
      - Gymnasium env id. Its form is always checked; its registration too when gymnasium
        is importable on the controller (the training host checks again).
    type: str
  algo:
    description: Algorithm of the builtin agent.
    type: str
    choices: [ppo, dqn]
    default: ppo
  source:
    description: Where the job comes from. Key names are checked only for C(builtin).
    type: str
    choices: [builtin, local, git]
    default: builtin
  backend:
    description:
      - What runs the session (the playbooks' C(rlops_backend)); its reference agent's
        hyperparameter names are the ones checked (C(ray) takes PPO only, in the session's
        names, mapped to RLlib's; C(deepracer) takes none, DeepRacer's are its custom files').
    type: str
    choices: [supervisor, ray, deepracer]
    default: supervisor
  hyperparameters:
    description: A mapping, or a JSON object as a string.
    type: raw
  storage_uri:
    description:
      - C(file:///path), C(s3://bucket/prefix) or C(az://container/prefix) (Azure Blob,
        checked by the runtime on the training host).
    type: str
  storage_credentials:
    description:
      - The environment the runtime gets for storage on the training host, as the trainer
        role's C(trainer_storage_credentials) - C(AWS_ACCESS_KEY_ID),
        C(AWS_SECRET_ACCESS_KEY), C(AWS_SESSION_TOKEN), C(AWS_DEFAULT_REGION) or
        C(AWS_REGION), C(RLOPS_S3_ENDPOINT_URL) (or C(AWS_ENDPOINT_URL)) for an
        S3-compatible server, C(AWS_PROFILE), C(AWS_CA_BUNDLE).
      - The values of secret keys (names with SECRET, TOKEN, PASSWORD, ACCESS_KEY, ...) are
        masked in every result, a refusal of bad arguments included; endpoints and regions
        stay readable.
      - Without an access key here, the controller checks with its own credentials -
        C(AWS_ACCESS_KEY_ID) and C(AWS_SECRET_ACCESS_KEY) (and C(AWS_SESSION_TOKEN)) of its
        environment, else the profile C(AWS_PROFILE) (named here, else in its environment,
        else C(default)) of C(~/.aws/credentials) or C(~/.aws/config). With none of these
        (an instance role, SSO and assumed roles need the AWS SDK, which the runtime on the
        host has) storage is left to the host, see O(storage_check).
    type: dict
    default: {}
  storage_check:
    description:
      - Where C(s3://) storage is reached. C(file://) storage is a folder on the training
        host and is never checked here.
      - C(auto) - from the controller. An endpoint the controller cannot connect to
        (connection refused, unknown host name, no route, no connection within
        O(connect_timeout)), or no credentials the controller can use, is not a failure -
        RV(storage_checked) is false with the reason, and the training host checks storage
        before anything changes there. Everything else fails here - rejected credentials,
        a missing bucket, a missing permission, an endpoint that accepts connections and
        does not answer within O(read_timeout).
      - C(controller) - from the controller; an unreachable endpoint or missing
        credentials fail too.
      - C(host) - not here; the training host checks it.
    type: str
    choices: [auto, controller, host]
    default: auto
  check_storage:
    description:
      - Deprecated, use O(storage_check). V(true) is O(storage_check=controller), V(false)
        is O(storage_check=host). When given, it wins over O(storage_check).
    type: bool
seealso:
  - module: rlops.fleet.storage_check
"""

EXAMPLES = r"""
- name: Check the request and name the session
  rlops.fleet.session_preflight:
    name: cartpole
    env_id: CartPole-v1
    algo: ppo
    hyperparameters: '{"n_steps": 64}'
    storage_uri: s3://training/rl
    storage_credentials:
      RLOPS_S3_ENDPOINT_URL: http://127.0.0.1:9000
      AWS_ACCESS_KEY_ID: "{{ vault_s3_access_key }}"
      AWS_SECRET_ACCESS_KEY: "{{ vault_s3_secret_key }}"
  register: preflight

- name: Say where storage is checked
  ansible.builtin.debug:
    msg: >-
      {{ 'checked from the controller' if preflight.storage_checked
      else preflight.storage_check_reason }}

- name: Require the check from the controller (an unreachable endpoint fails too)
  rlops.fleet.session_preflight:
    storage_uri: s3://training/rl
    storage_credentials: "{{ rlops_storage_credentials }}"
    storage_check: controller
"""

RETURN = r"""
session_id:
  description: The validated or newly built session id.
  returned: success
  type: str
  sample: cartpole-20261122t051500z
hyperparameters:
  description: The hyperparameters as a mapping.
  returned: success
  type: dict
  sample: {"n_steps": 64}
storage:
  description: The parsed storage URI.
  returned: when storage_uri is given
  type: dict
  sample: {"scheme": "s3", "location": "training", "prefix": "rl"}
storage_checked:
  description: Whether storage was reached from the controller and passed the check.
  returned: when storage_uri is given
  type: bool
  sample: false
storage_check_reason:
  description: Why storage was not checked from the controller; empty when it was.
  returned: when storage_uri is given
  type: str
  sample: >-
    the controller cannot reach the S3 endpoint: storage s3://training/rl: listing
    s3://training/rl/ failed: cannot reach the S3 endpoint http://10.0.0.5:9000
    (no connection within 5 s); the training host checks storage
storage_check_permissions:
  description: The S3 permissions the check exercised (C(s3:PutObject) not in check mode).
  returned: when storage_uri is given
  type: list
  elements: str
  sample: ["s3:ListBucket", "s3:PutObject", "s3:GetObject"]
"""
