# -*- coding: utf-8 -*-
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""The attributes the rlops.fleet modules declare: check mode, diff mode, idempotence.
A module adds its own `details` under an attribute; ansible-doc merges them."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # A module that changes things, and supports all three.
    DOCUMENTATION = r"""
attributes:
  check_mode:
    description: Can run in check mode and report what would change without changing it.
    support: full
  diff_mode:
    description: Reports the resource before and after when run with C(--diff).
    support: full
  idempotent:
    description: A second run with the same arguments reports no change.
    support: full
"""

    # A module that only reads.
    INFO_MODULE = r"""
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
"""
