# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""Values as Jinja's own filters read them, for the filters that check a role's inputs.

An inventory value arrives as whatever YAML or `-e` made of it: "8", 8, 8.0, "yes". The
checking filters (aws_settings_problem, minio_proxy_problems) judge it the way the role's
tasks will use it, so these readers follow Jinja's `int` and Ansible's `bool`.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


def as_int(value):
    """Jinja's int filter: the number, or 0 for what is not one."""
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return int(float(value))
        except (TypeError, ValueError):
            return 0


def as_bool(value):
    """Ansible's bool filter for the values a role's input takes: true, yes, 1, on."""
    return value is True or str(value).strip().lower() in ("true", "yes", "1", "on")


def is_list(value):
    """A list or tuple of values, not a string (which Jinja would also iterate)."""
    return isinstance(value, (list, tuple))
