#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: storage_check
short_description: Check from a training host that session storage can be used
version_added: 0.1.0
description:
  - Runs on the training host, before any role changes anything there, with the host's
    system Python (3.9 or newer); needs neither boto3 nor the rlops runtime.
  - Does what the runtime's storage check does (C(rlops-run sessions --check)) for
    C(s3://) storage. It lists under the prefix (C(s3:ListBucket)), writes the probe
    object C(<prefix>/.rlops-check/<host name>) (C(s3:PutObject)) and reads it back
    (C(s3:GetObject)). It fails with one message naming what failed and why - the endpoint
    cannot be reached, it accepted the connection but did not answer in time, the bucket
    does not exist, the credentials were rejected, or the permission of the denied
    request is missing.
  - The S3 client is the collection's own (Python standard library, AWS Signature Version
    4), the same as M(rlops.fleet.session_preflight) uses on the controller, with the same
    options and messages.
  - Nothing is checked (RV(checked) is false, with the reason) for C(file://) storage, a
    folder that the trainer role creates and the runtime checks, and for C(s3://) storage
    without an access key in O(storage_credentials) (an EC2 instance role, a profile of
    the job's user) - the runtime's own check covers those once it is installed.
  - Nothing is checked here for C(az://) storage (Azure Blob) - the runtime's Blob client
    checks it on the host (C(rlops-run session prepare)) before the session is written.
  - With O(read), reads one object instead of checking (C(s3:GetObject) only, nothing
    written, also in check mode) and returns its text as RV(content). Without an access key
    or a profile in O(storage_credentials), the host's instance role is asked through IMDSv2
    (C(AWS_EC2_METADATA_SERVICE_ENDPOINT) in the host's environment names another endpoint,
    C(AWS_EC2_METADATA_DISABLED=true) skips it), as the runtime's boto3 would.
author:
  - rlops.fleet developers (!UNKNOWN)
extends_documentation_fragment:
  - rlops.fleet.s3_client
  - rlops.fleet.s3_client.probe
options:
  storage_uri:
    description:
      - C(s3://bucket/prefix), C(file:///path) or C(az://container/prefix).
    type: str
    required: true
  storage_credentials:
    description:
      - The environment the runtime gets for storage (the trainer role's
        C(trainer_storage_credentials), written to C(config/storage.env)) -
        C(AWS_ACCESS_KEY_ID), C(AWS_SECRET_ACCESS_KEY), C(AWS_SESSION_TOKEN),
        C(AWS_DEFAULT_REGION) or C(AWS_REGION), C(RLOPS_S3_ENDPOINT_URL) (or
        C(AWS_ENDPOINT_URL)) for an S3-compatible server, C(AWS_PROFILE),
        C(AWS_SHARED_CREDENTIALS_FILE), C(AWS_CA_BUNDLE).
      - The values of secret keys (names with SECRET, TOKEN, PASSWORD, ACCESS_KEY, ...) are
        masked in every result, a refusal of bad arguments included; endpoints and regions
        stay readable. Pass them here, never through C(environment:), which Ansible shows
        on the command line.
      - The host's own environment is not read - the job does not run in it.
    type: dict
    default: {}
  read:
    description:
      - A key under the storage's prefix to read instead of checking, e.g.
        C(<session>/config/requirements.lock) (the trainer role reads a resumed session's
        recorded set with it when only the host reaches the endpoint).
      - Only for C(s3://) storage; C(file://) storage is a folder on the host, read as files.
    type: str
notes:
  - The probe's name is the host name, as the runtime's, so that hosts of a fleet checking
    one storage at once never read each other's probe.
seealso:
  - module: rlops.fleet.session_preflight
"""

EXAMPLES = r"""
- name: Check storage from the training host before anything changes
  rlops.fleet.storage_check:
    storage_uri: "{{ trainer_storage_uri }}"
    storage_credentials: "{{ trainer_storage_credentials }}"
  register: storage

- name: Say when the runtime will check storage instead
  ansible.builtin.debug:
    msg: "{{ storage.reason }}"
  when: not storage.checked

- name: A slow link to a far endpoint
  rlops.fleet.storage_check:
    storage_uri: s3://training/rl
    storage_credentials:
      RLOPS_S3_ENDPOINT_URL: https://minio.lab.example:9000
      AWS_ACCESS_KEY_ID: "{{ vault_s3_access_key }}"
      AWS_SECRET_ACCESS_KEY: "{{ vault_s3_secret_key }}"
    connect_timeout: 10
    read_timeout: 30

- name: Read a session's recorded set from the host (an endpoint only the host reaches)
  rlops.fleet.storage_check:
    storage_uri: "{{ trainer_storage_uri }}"
    storage_credentials: "{{ trainer_storage_credentials }}"
    read: "{{ trainer_session_id }}/config/requirements.lock"
  register: recorded
"""

RETURN = r"""
checked:
  description: Whether storage was reached and passed the check.
  returned: always
  type: bool
  sample: true
reason:
  description: Why storage was not checked; empty when it was.
  returned: always
  type: str
  sample: >-
    no AWS access key in the storage credentials: the host's own credentials (an instance
    role, a profile of the job's user) are checked by the runtime
endpoint:
  description: The S3 endpoint, C(https://s3.<region>.amazonaws.com) for AWS itself.
  returned: for s3:// storage
  type: str
  sample: http://10.0.0.5:9000
region:
  description: The region requests were signed for (the bucket's, when AWS named another).
  returned: for s3:// storage
  type: str
  sample: us-east-1
permissions:
  description: The S3 permissions the check exercised, in order.
  returned: always
  type: list
  elements: str
  sample: ["s3:ListBucket", "s3:PutObject", "s3:GetObject"]
probe_key:
  description: The probe object's key in the bucket.
  returned: when checked
  type: str
  sample: rl/.rlops-check/gpu-01
wrote_probe:
  description: Whether the probe object was written (not in check mode).
  returned: always
  type: bool
  sample: true
content:
  description: The text of the object O(read) names; null when storage has none.
  returned: with O(read)
  type: str
  sample: "# requirement: rlops-runtime[s3,sb3]\nboto3==1.35.0\n"
credentials_source:
  description: Where the credentials of the read came from (C(the instance role <name>)).
  returned: with O(read)
  type: str
  sample: storage_credentials
"""

import os

from ansible_collections.rlops.fleet.plugins.module_utils.s3_probe import (
    CheckError,
    check_storage,
    read_storage,
)
from ansible_collections.rlops.fleet.plugins.module_utils.session_checks import (
    AZ_CHECKED_BY_RUNTIME,
    parse_storage_uri,
)
from ansible_collections.rlops.fleet.plugins.module_utils.storage_module import (
    STORAGE_ARGUMENT_SPEC,
    StorageModule,
    timeout_error,
)


def host_storage_check(params, check_mode=False, run=check_storage):
    """(result, error) of checking storage from this host."""
    result = {"changed": False, "checked": False, "reason": "", "permissions": [],
              "wrote_probe": False}
    parsed, error = parse_storage_uri(params["storage_uri"])
    if error:
        return result, error
    error = timeout_error(params)
    if error:
        return result, error
    scheme, location, prefix = parsed
    if scheme == "az":
        result["reason"] = AZ_CHECKED_BY_RUNTIME
        return result, None
    if scheme != "s3":
        result["reason"] = (
            "%s:// storage is a folder on this host: the trainer role creates it and the "
            "runtime checks it" % scheme)
        return result, None
    try:
        # environ None: the host's own environment is not the job's.
        found = run(params["storage_uri"], location, prefix, params["storage_credentials"] or {},
                    environ=None, write=not check_mode,
                    connect_timeout=params["connect_timeout"],
                    read_timeout=params["read_timeout"])
    except CheckError as exc:
        return result, str(exc)
    for name in ("checked", "reason", "endpoint", "region", "permissions", "wrote_probe"):
        result[name] = found[name]
    if found["checked"]:
        result["probe_key"] = found["probe_key"]
    return result, None


def host_storage_read(params, run=read_storage, environ=None):
    """(result, error) of reading params["read"] from s3:// storage on this host (environ:
    the host's, for its instance role)."""
    result = {"changed": False, "checked": False, "reason": "", "permissions": [],
              "wrote_probe": False, "content": None}
    parsed, error = parse_storage_uri(params["storage_uri"])
    if error or timeout_error(params):
        return result, error or timeout_error(params)
    scheme, location, prefix = parsed
    if scheme != "s3":
        return result, ("read is for s3:// storage; %s:// storage is a folder on this host"
                        % scheme)
    try:
        found = run(params["storage_uri"], location, prefix, params["read"],
                    params["storage_credentials"] or {}, environ=None,
                    connect_timeout=params["connect_timeout"],
                    read_timeout=params["read_timeout"], host_environ=environ or {})
    except CheckError as exc:
        return result, str(exc)
    result.update(found, permissions=["s3:GetObject"])
    return result, None


def main():
    argument_spec = dict(STORAGE_ARGUMENT_SPEC)
    argument_spec["storage_uri"] = dict(type="str", required=True)
    argument_spec["read"] = dict(type="str")
    module = StorageModule(argument_spec=argument_spec, supports_check_mode=True)
    if module.params["read"]:
        result, error = host_storage_read(module.params, environ=dict(os.environ))
    else:
        result, error = host_storage_check(module.params, check_mode=module.check_mode)
    if error:
        module.fail_json(msg=error, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
