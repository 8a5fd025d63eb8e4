#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: s3_bucket
short_description: Make sure buckets exist on an S3-compatible endpoint, without boto3
version_added: 0.1.0
description:
  - Looks for each bucket of O(names) (C(HEAD), C(s3:ListBucket)) on an S3-compatible
    endpoint such as the MinIO server of the role C(rlops.fleet.minio_proxy), and creates
    the missing ones (C(PUT), C(s3:CreateBucket)) in O(region). Buckets are never deleted
    or changed.
  - Runs with the target's Python (3.9 or newer) and its standard library only - no boto3,
    no C(mc). Requests are signed with AWS Signature Version 4 by the collection's own S3
    client, the one M(rlops.fleet.storage_check) uses.
  - The secret goes to the module as the O(secret_key) option, which is never shown - not
    through C(environment:), which Ansible shows on the command line at C(-vvv) and the
    host shows in its process list.
  - Fails with one message naming the bucket, what was asked and why it failed - the
    endpoint cannot be reached or did not answer in time, the credentials were rejected,
    a permission is missing. Names that are not valid bucket names are refused before any
    request.
  - With O(health_path), first waits until the endpoint is live (a server started a moment
    ago), as MinIO's C(/minio/health/live) says.
  - For buckets on AWS itself with their policies, versioning and tags, use
    M(amazon.aws.s3_bucket).
author:
  - rlops.fleet developers (!UNKNOWN)
extends_documentation_fragment:
  - rlops.fleet.s3_client
attributes:
  check_mode:
    description:
      - Looks for the buckets (read requests only) and reports in RV(created) the ones it
        would create, without creating them. With O(health_path) the endpoint is asked once,
        not waited for; when it is not live (a server not started yet) no bucket is looked for.
    support: full
  diff_mode:
    description: Shows which of the named buckets exist before and after.
    support: full
  idempotent:
    description: Creates only missing buckets; a second run finds them and reports unchanged.
    support: full
options:
  names:
    description:
      - The buckets that must exist, path-style names of 3 to 63 lowercase letters, digits,
        C(.) and C(-), starting and ending with a letter or digit, no C(..), not an IP
        address. Duplicates count once.
    type: list
    elements: str
    required: true
  state:
    description:
      - C(present) only - buckets are created when missing, never deleted.
    type: str
    choices: [present]
    default: present
  endpoint:
    description:
      - The S3 endpoint, C(http://host:port) or C(https://host:port), addressed path-style
        (C(<endpoint>/<bucket>)).
    type: str
    required: true
  region:
    description:
      - The region requests are signed for and buckets are created in (MinIO's
        C(MINIO_SITE_REGION)). Outside C(us-east-1) the bucket is created with that
        C(LocationConstraint).
    type: str
    default: us-east-1
  ca_file:
    description:
      - A PEM file on the target with the certificates that an C(https) endpoint's
        certificate is checked against, instead of the system's. Only with C(https).
    type: path
  access_key:
    description:
      - The access key (MinIO's root user or an access key of it). Not a secret - it is
        sent in every request's C(Authorization) header - and shown in results.
    type: str
    required: true
  secret_key:
    description:
      - The secret key (MinIO's root password). Never shown in results or logs.
    type: str
    required: true
  health_path:
    description:
      - A path of the endpoint that answers C(200) to an unsigned C(GET) once the server
        is ready (MinIO's C(/minio/health/live)). When given, the module waits for it
        before it looks for any bucket, and fails after O(health_timeout) seconds with the
        last answer. Empty - no wait.
    type: str
    default: ""
  health_timeout:
    description: Seconds to wait for O(health_path) to answer C(200).
    type: int
    default: 60
  health_delay:
    description: Seconds between two looks at O(health_path).
    type: float
    default: 2
notes:
  - A refused C(HEAD) has no body to say why; the module asks again with a C(GET) of the
    bucket's location, whose error names the reason (a rejected secret, a missing
    permission).
  - A bucket that another client creates between the look and the create is reported in
    RV(existing).
seealso:
  - module: rlops.fleet.storage_check
  - module: amazon.aws.s3_bucket
"""

EXAMPLES = r"""
- name: Create the session buckets on the host's MinIO
  rlops.fleet.s3_bucket:
    names: [rlops-checkpoints, rlops-models]
    endpoint: http://127.0.0.1:9000
    access_key: rlops
    secret_key: "{{ vault_minio_password }}"
  register: buckets

- name: Say which buckets were made
  ansible.builtin.debug:
    msg: "created {{ buckets.created }}, already there {{ buckets.existing }}"

- name: Wait until a MinIO started a moment ago is live, then create the bucket
  rlops.fleet.s3_bucket:
    names: [rlops-checkpoints]
    endpoint: http://127.0.0.1:9000
    access_key: rlops
    secret_key: "{{ vault_minio_password }}"
    health_path: /minio/health/live
    health_timeout: 60

- name: A MinIO with TLS in another region
  rlops.fleet.s3_bucket:
    names: [rlops-checkpoints]
    endpoint: https://minio.lab.example:9000
    region: eu-west-1
    ca_file: /etc/minio/certs/public.crt
    access_key: rlops
    secret_key: "{{ vault_minio_password }}"
"""

RETURN = r"""
created:
  description:
    - The buckets this run created, in the order of O(names). In check mode, the ones it
      would create.
  returned: always
  type: list
  elements: str
  sample: [rlops-checkpoints]
existing:
  description: The buckets that were already there, in the order of O(names).
  returned: always
  type: list
  elements: str
  sample: [rlops-models]
endpoint:
  description: The endpoint asked.
  returned: always
  type: str
  sample: http://127.0.0.1:9000
region:
  description: The region requests were signed for.
  returned: always
  type: str
  sample: us-east-1
live:
  description: Whether O(health_path) answered C(200) (in check mode, when asked once).
  returned: when O(health_path) is given
  type: bool
  sample: true
"""

import os
import re
from urllib.error import HTTPError
from urllib.parse import urlsplit

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import open_url
from ansible_collections.rlops.fleet.plugins.module_utils.s3_probe import (
    CONNECT_TIMEOUT,
    DEFAULT_REGION,
    READ_TIMEOUT,
    CheckError,
    Credentials,
    S3Client,
    Settings,
    bucket_exists,
    create_bucket,
)
from ansible_collections.rlops.fleet.plugins.module_utils.waiting import WaitTimeout, wait_for

# Path-style bucket names; the role minio_proxy checks its input with the same pattern
# (roles/minio_proxy/vars/main.yml; tests/unit/plugins/modules/test_s3_bucket.py keeps the
# two equal): no "..", not an IP address.
BUCKET_NAME_PATTERN = r"^(?!\d+\.\d+\.\d+\.\d+$)(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
# failure()'s advice names this module's options.
WORDS = {"credential_names": "access_key and secret_key", "region_name": "region"}

ARGUMENT_SPEC = dict(
    names=dict(type="list", elements="str", required=True),
    state=dict(type="str", choices=["present"], default="present"),
    endpoint=dict(type="str", required=True),
    region=dict(type="str", default=DEFAULT_REGION),
    ca_file=dict(type="path"),
    # An identifier, sent in every request's Authorization header: shown, as amazon.aws
    # shows access_key. Masking it would also mask it inside bucket names.
    access_key=dict(type="str", required=True, no_log=False),
    secret_key=dict(type="str", required=True, no_log=True),
    connect_timeout=dict(type="float", default=CONNECT_TIMEOUT),
    read_timeout=dict(type="float", default=READ_TIMEOUT),
    health_path=dict(type="str", default=""),
    health_timeout=dict(type="int", default=60),
    health_delay=dict(type="float", default=2),
)


def unique(names):
    """`names` without repeats, in their order."""
    seen = set()
    return [name for name in names if not (name in seen or seen.add(name))]


def input_error(params, is_file=os.path.isfile):
    """What is wrong with the parameters, before any request; None when nothing is."""
    bad = [name for name in params["names"] if not re.match(BUCKET_NAME_PATTERN, name)]
    if bad:
        return ("not valid bucket names: %s (3-63 lowercase letters, digits, '.' and '-', "
                "starting and ending with a letter or digit, no '..', not an IP address)"
                % ", ".join(repr(name) for name in bad))
    parts = urlsplit(params["endpoint"])
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "endpoint %r is not an http:// or https:// URL with a host" % params["endpoint"]
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port is not None and not 0 < port < 65536:
        return "endpoint %r has a port that is not a number from 1 to 65535" % params["endpoint"]
    if parts.query or parts.fragment:
        return "endpoint %r has a query or fragment: give the base URL" % params["endpoint"]
    if not params["region"]:
        return "region must not be empty"
    for name in ("access_key", "secret_key"):
        if not params[name]:
            return "%s must not be empty" % name
    for name in ("connect_timeout", "read_timeout"):
        if not params[name] > 0:
            return "%s must be more than 0 seconds, got %s" % (name, params[name])
    if params["health_path"] and not params["health_path"].startswith("/"):
        return "health_path %r must start with /" % params["health_path"]
    if params["health_timeout"] < 0:
        return "health_timeout must not be negative, got %s" % params["health_timeout"]
    if params["ca_file"]:
        if parts.scheme != "https":
            return "ca_file is for an https:// endpoint; %s is plain http" % params["endpoint"]
        if not is_file(params["ca_file"]):
            return "ca_file %s is not a file on this host" % params["ca_file"]
    return None


def client_for(params):
    """The collection's S3 client for the endpoint, signing with the given keys."""
    settings = Settings(
        endpoint=params["endpoint"].rstrip("/"), region=params["region"],
        credentials=Credentials(params["access_key"], params["secret_key"], source="access_key"),
        ca_bundle=params["ca_file"] or "", region_source="region")
    return S3Client(settings, params["connect_timeout"], params["read_timeout"])


def health(params):
    """One unsigned GET of the endpoint's health path: (status, what it answered); status 0
    when there was no answer (nothing listening yet, no answer in time)."""
    url = params["endpoint"].rstrip("/") + params["health_path"]
    try:
        answer = open_url(url, method="GET", ca_path=params["ca_file"], use_proxy=False,
                          follow_redirects="none",
                          timeout=params["connect_timeout"] + params["read_timeout"])
        answer.close()
        return answer.getcode(), "HTTP %s" % answer.getcode()
    except HTTPError as exc:
        return exc.code, "HTTP %s" % exc.code
    except Exception as exc:  # URLError, a refused or reset connection, a timeout, TLS
        return 0, str(getattr(exc, "reason", None) or exc)


def wait_live(params, check_mode, ask=None, **clock):
    """(live, error). Waits for the health path to answer 200 - in check mode it is asked
    once, and a server that is not live is no error (a fresh host has none yet)."""
    ask = ask or health
    timeout = 0 if check_mode else params["health_timeout"]
    try:
        wait_for(lambda: ask(params), lambda answer: answer[0] == 200, timeout,
                 params["health_delay"], **clock)
    except WaitTimeout as exc:
        if check_mode:
            return False, None
        return False, "%s%s did not answer 200 within %s s (last: %s)" % (
            params["endpoint"].rstrip("/"), params["health_path"], timeout, exc.last[1])
    return True, None


def ensure_buckets(client, names, create=True):
    """(result, error): look for each bucket, create the missing ones unless `create` is
    false (check mode). Stops at the first failure; the result then says what was done."""
    result = {"changed": False, "created": [], "existing": [], "endpoint": client.endpoint,
              "region": client.region}
    for name in names:
        doing = "look for"
        try:
            if bucket_exists(client, name, **WORDS):
                result["existing"].append(name)
                continue
            doing = "create"
            if create and not create_bucket(client, name, **WORDS):
                result["existing"].append(name)
                continue
        except CheckError as exc:
            result["changed"] = bool(result["created"])
            return result, "%s bucket %s at %s: %s" % (
                doing.capitalize(), name, client.endpoint, exc)
        result["created"].append(name)
    result["changed"] = bool(result["created"])
    return result, None


def diff_of(result):
    """The named buckets that exist before and after (check mode: would exist)."""
    return {"before": {"buckets": list(result["existing"])},
            "after": {"buckets": result["existing"] + result["created"]}}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    names = unique(params["names"])
    error = input_error(params)
    nothing = dict(changed=False, created=[], existing=[], endpoint=params["endpoint"],
                   region=params["region"])
    if error:
        module.fail_json(msg=error, **nothing)
    live = {}
    if params["health_path"]:
        is_live, error = wait_live(params, module.check_mode)
        if error:
            module.fail_json(msg=error, live=False, **nothing)
        if not is_live:
            module.exit_json(live=False, **nothing)
        live = {"live": True}
    result, error = ensure_buckets(client_for(params), names, create=not module.check_mode)
    result.update(live)
    if module._diff:
        result["diff"] = diff_of(result)
    if error:
        module.fail_json(msg=error, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
