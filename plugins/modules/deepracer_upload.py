#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: deepracer_upload
short_description: Put DeepRacer's custom files and params in a bucket, guarding the model
version_added: 0.1.0
description:
  - Writes each of O(objects) (a key and its text) to O(bucket) when the object there is
    missing or differs (its ETag against the text's MD5), as C(dr-upload-custom-files) and
    DRfC's C(prepare-config.py) do, without boto3.
  - Before writing, lists O(model_prefix). When it holds objects this upload does not write
    (a model trained there, its checkpoints and metrics), the module fails and writes nothing,
    unless O(wipe) is true - then those objects are deleted first (DRfC's C(-w)). The role
    C(rlops.fleet.deepracer_stack) never sets O(wipe) by default.
  - With O(guard) false (an evaluation of a trained model) the prefix is not guarded.
  - Runs with the target's Python and its standard library (the collection's S3 client,
    AWS Signature Version 4), so it runs on the host whose MinIO listens on 127.0.0.1.
author:
  - rlops.fleet developers (!UNKNOWN)
extends_documentation_fragment:
  - rlops.fleet.s3_client
attributes:
  check_mode:
    description: Lists and reads only; reports what it would write and delete.
    support: full
  diff_mode:
    description: Reports the keys it writes, not their contents.
    support: none
  idempotent:
    description: Writes only objects that differ; a second run reports unchanged.
    support: full
options:
  bucket:
    description: The bucket (C(DR_LOCAL_S3_BUCKET)); it must exist.
    type: str
    required: true
  endpoint:
    description:
      - The S3 endpoint as this host reaches it (C(DR_LOCAL_S3_ENDPOINT_URL)), such as
        C(http://127.0.0.1:9000). Empty - AWS S3 of O(region).
    type: str
    default: ""
  region:
    description: The region requests are signed for (C(DR_AWS_APP_REGION)).
    type: str
    default: us-east-1
  ca_file:
    description: A PEM file on the target to check an https endpoint's certificate against.
    type: path
  access_key:
    description: The access key. Shown in results, as an identifier.
    type: str
    required: true
  secret_key:
    description: The secret key. Never shown.
    type: str
    required: true
  model_prefix:
    description: The model's prefix (C(DR_LOCAL_S3_MODEL_PREFIX)), without slashes at its ends.
    type: str
    required: true
  objects:
    description: What to write.
    type: list
    elements: dict
    required: true
    suboptions:
      key:
        description: The object's key.
        type: str
        required: true
      content:
        description: Its text (UTF-8).
        type: str
        required: true
  guard:
    description:
      - Refuse a model prefix that holds objects other than O(objects) (a new training).
        False for an evaluation, which writes its params next to the trained model.
    type: bool
    default: true
  wipe:
    description:
      - With O(guard), delete the objects of O(model_prefix) that this upload does not
        write, instead of failing. Destroys a trained model.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Upload the custom files and the training params
  rlops.fleet.deepracer_upload:
    bucket: bucket
    endpoint: http://127.0.0.1:9000
    access_key: rlops
    secret_key: "{{ vault_minio_password }}"
    model_prefix: rl-deepracer-sagemaker
    objects:
      - key: custom_files/reward_function.py
        content: "{{ lookup('ansible.builtin.file', 'reward_function.py') }}"
      - key: rl-deepracer-sagemaker/training_params.yaml
        content: "---\n'AWS_REGION': 'us-east-1'\n"
"""

RETURN = r"""
uploaded:
  description: Keys written (or that would be, in check mode).
  returned: always
  type: list
  elements: str
unchanged:
  description: Keys already holding the same text.
  returned: always
  type: list
  elements: str
deleted:
  description: Keys deleted by O(wipe) (or that would be, in check mode).
  returned: always
  type: list
  elements: str
"""

import hashlib
import re
from xml.etree import ElementTree

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.rlops.fleet.plugins.module_utils.s3_probe import (
    CONNECT_TIMEOUT,
    DEFAULT_REGION,
    READ_TIMEOUT,
    CheckError,
    Credentials,
    S3Client,
    Settings,
    failure,
)

ARGUMENT_SPEC = dict(
    bucket=dict(type="str", required=True),
    endpoint=dict(type="str", default=""),
    region=dict(type="str", default=DEFAULT_REGION),
    ca_file=dict(type="path"),
    access_key=dict(type="str", required=True, no_log=False),
    secret_key=dict(type="str", required=True, no_log=True),
    model_prefix=dict(type="str", required=True),
    objects=dict(type="list", elements="dict", required=True, options=dict(
        key=dict(type="str", required=True, no_log=False),
        content=dict(type="str", required=True))),
    guard=dict(type="bool", default=True),
    wipe=dict(type="bool", default=False),
    connect_timeout=dict(type="float", default=CONNECT_TIMEOUT),
    read_timeout=dict(type="float", default=READ_TIMEOUT),
)
WORDS = {"credential_names": "access_key and secret_key", "region_name": "region"}
SHOWN = 3


class UploadError(Exception):
    pass


def input_error(params):
    prefix = params["model_prefix"]
    if not prefix or prefix.startswith("/") or prefix.endswith("/") or "//" in prefix:
        return "model_prefix %r: a key prefix without a leading, trailing or double /" % prefix
    keys = [item["key"] for item in params["objects"]]
    bad = [key for key in keys if not key or key.startswith("/") or "//" in key]
    if bad:
        return "object keys %s: keys without a leading or double /" % ", ".join(map(repr, bad))
    twice = sorted(set(key for key in keys if keys.count(key) > 1))
    if twice:
        return "object keys given twice: %s" % ", ".join(twice)
    if params["endpoint"] and not re.match(r"^https?://[^/?#]+/?$", params["endpoint"]):
        return "endpoint %r is not an http:// or https:// base URL" % params["endpoint"]
    return None


def etag_of(text):
    return '"%s"' % hashlib.md5(text.encode("utf-8")).hexdigest()  # nosec: S3's ETag


def plan(listed, heads, objects, guard, wipe, model_prefix):
    """(put, unchanged, delete) from what is there: `listed` {key: etag} under the prefix,
    `heads` {key: etag or None} of the other keys. Raises UploadError for a guarded prefix
    holding objects this upload does not write."""
    ours = dict((item["key"], item["content"]) for item in objects)
    others = sorted(key for key in listed if key not in ours)
    delete = []
    if guard and others:
        if not wipe:
            raise UploadError(
                "model prefix %s/ holds %d object(s) this upload does not write (%s%s): a "
                "model trained there. Train under a new prefix "
                "(deepracer_stack_local_s3_model_prefix, or the increment) or set "
                "deepracer_stack_wipe: true to delete them"
                % (model_prefix, len(others), ", ".join(others[:SHOWN]),
                   ", ..." if len(others) > SHOWN else ""))
        delete = others
    there = dict(heads)
    there.update(listed)
    put, unchanged = [], []
    for key, content in ours.items():
        (unchanged if there.get(key) == etag_of(content) else put).append(key)
    return put, unchanged, delete


def list_prefix(client, bucket, prefix):
    """{key: etag} of every object under prefix/ (ListObjectsV2, all pages)."""
    found, token = {}, ""
    while True:
        query = [("list-type", "2"), ("prefix", prefix + "/")]
        if token:
            query.append(("continuation-token", token))
        response = client.request("GET", bucket, query=tuple(sorted(query)))
        if response.status >= 300:
            raise CheckError(failure(response, bucket, client.endpoint, "s3:ListBucket",
                                     **WORDS)[1], "list")
        root = ElementTree.fromstring(response.body)
        token = ""
        for node in root:
            name = node.tag.rsplit("}", 1)[-1]
            if name == "Contents":
                fields = dict((c.tag.rsplit("}", 1)[-1], c.text or "") for c in node)
                found[fields.get("Key", "")] = fields.get("ETag", "")
            elif name == "NextContinuationToken":
                token = node.text or ""
        if not token:
            return found


def head_etag(client, bucket, key):
    response = client.request("HEAD", bucket, key)
    if response.status == 404:
        return None
    if response.status >= 300:
        raise CheckError(failure(response, bucket, client.endpoint, "s3:GetObject",
                                 **WORDS)[1], "head")
    return response.headers.get("etag")


def ask(client, method, bucket, key, permission, body=b""):
    response = client.request(method, bucket, key, body=body)
    if response.status >= 300:
        raise CheckError("%s %s: %s" % (method, key, failure(
            response, bucket, client.endpoint, permission, **WORDS)[1]), method)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    nothing = dict(changed=False, uploaded=[], unchanged=[], deleted=[])
    error = input_error(params)
    if error:
        module.fail_json(msg=error, **nothing)
    client = S3Client(Settings(
        endpoint=params["endpoint"].rstrip("/"), region=params["region"],
        credentials=Credentials(params["access_key"], params["secret_key"], source="access_key"),
        ca_bundle=params["ca_file"] or "", region_source="region"),
        params["connect_timeout"], params["read_timeout"])
    bucket, prefix = params["bucket"], params["model_prefix"]
    try:
        listed = list_prefix(client, bucket, prefix)
        heads = dict((item["key"], head_etag(client, bucket, item["key"]))
                     for item in params["objects"] if item["key"] not in listed
                     and not item["key"].startswith(prefix + "/"))
        put, unchanged, delete = plan(listed, heads, params["objects"], params["guard"],
                                      params["wipe"], prefix)
        if not module.check_mode:
            for key in delete:
                ask(client, "DELETE", bucket, key, "s3:DeleteObject")
            contents = dict((item["key"], item["content"]) for item in params["objects"])
            for key in put:
                ask(client, "PUT", bucket, key, "s3:PutObject", contents[key].encode("utf-8"))
    except UploadError as exc:
        module.fail_json(msg="Upload to s3://%s/%s: %s" % (bucket, prefix, exc), **nothing)
    except CheckError as exc:
        module.fail_json(msg="Upload to s3://%s/%s: %s" % (bucket, prefix, exc), **nothing)
    module.exit_json(changed=bool(put or delete), uploaded=put, unchanged=unchanged,
                     deleted=delete)


if __name__ == "__main__":
    main()
