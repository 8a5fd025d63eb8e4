# -*- coding: utf-8 -*-
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""Filter that says what is wrong with rlops.fleet.minio_proxy's inputs and host, before anything
changes: the role's preflight asserts on its answer."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
name: minio_proxy_problems
short_description: What is wrong with the minio_proxy role's inputs and host (a list)
version_added: 0.1.0
description:
  - Takes the role's minio_proxy_* settings as a mapping (never the root password, only what
    the checks need to know of it) and what the preflight read on the host and the controller,
    and answers with one message per problem, each naming the setting and saying why.
  - Checked - the credentials (user of at least 3 characters, password of at least 8, one
    line each), a pinned server source (no C(latest); a sha256 with a URL; a well-formed
    sha256), absolute folders, two different ports, TLS certificate and key together, bucket
    names, C(MINIO_*) extra settings that do not override the role's own, a positive health
    timeout, systemd on the host, the local server file (a file, with the given sha256) and,
    without a source, the binary already on the host.
positional: _input
options:
  _input:
    description: 'The settings, C({name: value}) of minio_proxy_* variables, not the password.'
    type: dict
    required: true
  password:
    description: 'What the checks know of the root password, C({length: int, one_line: bool}).'
    type: dict
    required: true
  host:
    description: The host's name, for the messages.
    type: str
    required: true
  src_kind:
    description: How the server binary comes - V(none), V(url) or V(local) (on the controller).
    type: str
    required: true
    choices: [none, url, local]
  service_mgr:
    description: The host's service manager (the fact C(service_mgr)).
    type: str
    default: systemd
  local_src:
    description: The C(stat) of the local server file on the controller.
    type: dict
    default: {}
  binary:
    description: The C(stat) of the binary on the host when there is no source.
    type: dict
    default: {}
  bucket_pattern:
    description: The regular expression bucket names must match (rlops.fleet.s3_bucket's).
    type: str
    required: true
  own_env:
    description: The C(MINIO_*) names the role sets itself.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Check the inputs, the host and the server binary
  ansible.builtin.assert:
    that: __problems | length == 0
    fail_msg: "{{ __problems | join('; ') }}"
  vars:
    __problems: >-
      {{ __minio_proxy_settings | rlops.fleet.minio_proxy_problems(
      password=__minio_proxy_password_shape, host=inventory_hostname,
      src_kind=__minio_proxy_src_kind, service_mgr=ansible_facts['service_mgr'],
      bucket_pattern=__minio_proxy_bucket_name_pattern) }}
"""

RETURN = r"""
_value:
  description: The messages, in the order above; empty when everything is right.
  type: list
  elements: str
"""

import re  # noqa: E402

from ansible_collections.rlops.fleet.plugins.module_utils.jinja_values import (  # noqa: E402
    as_bool,
    as_int,
    failed,
    setting_text,
)

_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


def minio_proxy_problems(settings, password, host, src_kind, service_mgr="systemd", local_src=None,
                         binary=None, bucket_pattern=".*", own_env=()):
    """Every problem of `settings` (minio_proxy_* name -> value) and the host, or []."""
    text = setting_text(settings, "minio_proxy_")

    user, src, sha256 = text("root_user"), text("server_src"), text("server_sha256")
    kind = src_kind
    ports = [as_int(settings.get(key)) for key in ("minio_proxy_port", "minio_proxy_console_port")]
    buckets = settings.get("minio_proxy_buckets") or []
    bad_buckets = [name for name in buckets if not re.match(bucket_pattern, str(name))]
    extra = list(settings.get("minio_proxy_extra_env") or {})
    bad_env = [key for key in extra if not re.match(r"^MINIO_[A-Z0-9_]+$", key) or key in own_env]
    local_src, binary = local_src or {}, binary or {}
    local_is_file = bool(local_src.get("isreg"))
    checks = [
        (len(user) >= 3, "minio_proxy_root_user must have at least 3 characters"),
        (as_int(password.get("length")) >= 8,
         "minio_proxy_root_password must have at least 8 characters"),
        ("\n" not in user and as_bool(password.get("one_line")),
         "minio_proxy_root_user and minio_proxy_root_password must be one line each"),
        ("latest" not in src,
         "minio_proxy_server_src (%s) must name a pinned release, not latest" % src),
        (kind != "url" or _SHA256.match(sha256),
         "minio_proxy_server_sha256 (64 hex digits) is required with a release URL in"
         " minio_proxy_server_src"),
        (not sha256 or _SHA256.match(sha256),
         "minio_proxy_server_sha256 (%s) is not a sha256 (64 hex digits)" % sha256),
        (all(re.match(r"/.", text(name)) for name in ("data_dir", "config_dir")),
         "minio_proxy_data_dir and minio_proxy_config_dir must be absolute paths"),
        (all(0 < port < 65536 for port in ports) and ports[0] != ports[1],
         "minio_proxy_port and minio_proxy_console_port must be two different ports"),
        (bool(text("tls_cert")) == bool(text("tls_key")),
         "minio_proxy_tls_cert and minio_proxy_tls_key go together (both or neither)"),
        (not bad_buckets,
         "bucket names must be 3-63 lowercase letters, digits, '.' and '-', starting and ending"
         " with a letter or digit, no '..', not an IP address: %s" % bad_buckets),
        (not bad_env,
         "minio_proxy_extra_env keys must be MINIO_* names other than %s (set by the role): %s"
         % (", ".join(own_env), ", ".join(bad_env))),
        (as_int(settings.get("minio_proxy_health_timeout")) > 0,
         "minio_proxy_health_timeout must be greater than 0"),
        (service_mgr == "systemd",
         "minio_proxy runs MinIO as a systemd unit: %s runs %s" % (host, service_mgr)),
        (kind != "local" or local_is_file,
         "minio_proxy_server_src %s: not a file on the controller" % src),
        (kind != "local" or not local_is_file or not sha256
         or str(local_src.get("checksum", "")) == sha256.lower(),
         "minio_proxy_server_src %s: sha256 is %s, not %s"
         % (src, local_src.get("checksum", ""), sha256)),
        (kind != "none" or as_bool(binary.get("executable", False)),
         "minio_proxy_server_src is empty and %s is not on %s: give a pinned release URL with"
         " minio_proxy_server_sha256, or a file on the controller" % (text("binary_path"), host)),
    ]
    return failed(checks)


class FilterModule(object):
    def filters(self):
        return {"minio_proxy_problems": minio_proxy_problems}
