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
  - Runs on the controller at the start of every rlops.fleet playbook.
  - Validates the session id (or builds one as C(<name>-<UTC timestamp>)), the gymnasium
    env id, the hyperparameters (JSON, and for the builtin agent the key names), and the
    storage URI; optionally reaches S3 storage with the given credentials.
  - Fails with one message saying what is wrong and why. Changes nothing anywhere.
author:
  - rlops.fleet developers (!UNKNOWN)
attributes:
  check_mode:
    description: Reads only; runs the same in check mode.
    support: full
  diff_mode:
    description: Reads only; nothing to show a difference of.
    support: none
  idempotent:
    description: Reads only.
    support: full
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
  hyperparameters:
    description: A mapping, or a JSON object as a string.
    type: raw
  storage_uri:
    description: C(file:///path), C(s3://bucket/prefix) or C(az://container/prefix).
    type: str
  storage_credentials:
    description:
      - Environment for storage clients (C(AWS_ACCESS_KEY_ID), C(AWS_SECRET_ACCESS_KEY),
        C(RLOPS_S3_ENDPOINT_URL), ...). Used only for O(check_storage).
    type: dict
    default: {}
  check_storage:
    description:
      - Reach C(s3://) storage from the controller (endpoint, credentials, bucket).
      - Turn off when the endpoint is reachable only from the training hosts; the
        trainer role checks it there in any case.
    type: bool
    default: false
requirements:
  - boto3 (only for O(check_storage) with C(s3://))
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
    check_storage: true
  register: preflight
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
"""

import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.rlops.fleet.plugins.module_utils.session_checks import (
    env_id_error,
    hyperparameter_errors,
    make_session_id,
    parse_hyperparameters,
    parse_storage_uri,
    session_id_error,
)

SECRET_KEY_RE = re.compile(r"(SECRET|TOKEN|PASSWORD|ACCESS_KEY|ACCOUNT_KEY|CONNECTION_STRING|SAS)",
                           re.IGNORECASE)


def _gymnasium_registry():
    """Registered env ids when gymnasium is importable here, else None."""
    try:
        import gymnasium
    except ImportError:
        return None
    return set(gymnasium.registry.keys())


def _s3_error(bucket, credentials):
    """Reach the bucket with the given credentials; one message or None."""
    try:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
    except ImportError:
        return "checking s3:// storage from the controller needs boto3 (pip install boto3)"
    endpoint = credentials.get("RLOPS_S3_ENDPOINT_URL") or credentials.get("AWS_ENDPOINT_URL")
    client = boto3.session.Session(
        aws_access_key_id=credentials.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=credentials.get("AWS_SECRET_ACCESS_KEY"),
        aws_session_token=credentials.get("AWS_SESSION_TOKEN"),
        region_name=credentials.get("AWS_DEFAULT_REGION") or credentials.get("AWS_REGION"),
        profile_name=credentials.get("AWS_PROFILE"),
    ).client(
        "s3",
        endpoint_url=endpoint,
        config=Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 1}),
    )
    where = "s3://%s%s" % (bucket, " at %s" % endpoint if endpoint else "")
    try:
        client.head_bucket(Bucket=bucket)
    except NoCredentialsError:
        return "storage %s: no AWS credentials found (set storage credentials or a profile)" % where
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchBucket"):
            return "storage %s: the bucket does not exist" % where
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return "storage %s: the credentials were rejected (%s)" % (where, code)
        return "storage %s: %s" % (where, exc)
    except BotoCoreError as exc:
        return "storage %s: endpoint unreachable: %s" % (where, exc)
    return None


def run_checks(params, registry=None, s3_check=_s3_error):
    """All checks in order; returns (result, first error)."""
    result = {"changed": False}
    if params["session"]:
        error = session_id_error(params["session"])
        if error:
            return result, error
        result["session_id"] = params["session"]
    else:
        try:
            result["session_id"] = make_session_id(params["name"])
        except ValueError as exc:
            return result, str(exc)

    if params["env_id"] is not None:
        error = env_id_error(params["env_id"], registry if params["source"] == "builtin" else None)
        if error:
            return result, error

    hyperparameters, error = parse_hyperparameters(params["hyperparameters"])
    if error:
        return result, error
    if params["source"] == "builtin":
        error = hyperparameter_errors(params["algo"], hyperparameters)
        if error:
            return result, error
    result["hyperparameters"] = hyperparameters

    if params["storage_uri"] is not None:
        parsed, error = parse_storage_uri(params["storage_uri"])
        if error:
            return result, error
        scheme, location, prefix = parsed
        result["storage"] = {"scheme": scheme, "location": location, "prefix": prefix}
        if params["check_storage"] and scheme == "s3":
            error = s3_check(location, params["storage_credentials"] or {})
            if error:
                return result, error
    return result, None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            session=dict(type="str"),
            name=dict(type="str", default="session"),
            env_id=dict(type="str"),
            algo=dict(type="str", choices=["ppo", "dqn"], default="ppo"),
            source=dict(type="str", choices=["builtin", "local", "git"], default="builtin"),
            hyperparameters=dict(type="raw"),
            storage_uri=dict(type="str"),
            # Only the secret values are masked (below): endpoints and regions stay readable
            # in messages.
            storage_credentials=dict(type="dict", default={}, no_log=False),
            check_storage=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    for key, value in (module.params["storage_credentials"] or {}).items():
        if SECRET_KEY_RE.search(key) and value:
            module.no_log_values.add(str(value))
    registry = _gymnasium_registry() if module.params["env_id"] else None
    result, error = run_checks(module.params, registry=registry)
    if error:
        module.fail_json(msg=error, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
