# -*- coding: utf-8 -*-
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""Options and notes of the modules that talk to S3 with the collection's own client
(plugins/module_utils/s3_probe.py): session_preflight, storage_check, s3_bucket; and the
attributes of the two that check storage with its probe object (PROBE)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  connect_timeout:
    description: Seconds to connect to the S3 endpoint, for each request.
    type: float
    default: 5
  read_timeout:
    description:
      - Seconds for the whole answer to each request once connected. An endpoint that
        accepts connections and never answers fails after O(connect_timeout) +
        O(read_timeout) at most (the host name lookup aside).
    type: float
    default: 10
notes:
  - The S3 client (Python's standard library, AWS Signature Version 4) addresses an
    S3-compatible endpoint path-style and AWS itself virtual-hosted style (path-style for
    bucket names with dots), follows the bucket's region once when AWS names another one,
    and retries a 5xx answer once. It does not use HTTP proxies.
"""

    # The modules that check storage with the probe (session_preflight, storage_check).
    PROBE = r"""
attributes:
  check_mode:
    description:
      - Checks in check mode too (checking is what a C(--check) run asks for), with read
        requests only - the listing, and a read of the probe object, which may be absent -
        so that nothing in storage changes. C(s3:PutObject) is then left unchecked (the
        permissions returned say what was checked); the real run checks it.
    support: full
  diff_mode:
    description: Changes nothing to show a difference of.
    support: none
  idempotent:
    description: >-
      Writes only its own probe object, C(<prefix>/.rlops-check/<host name>), overwritten by
      every check and never deleted; always reports unchanged, as the runtime's check does.
    support: full
"""
