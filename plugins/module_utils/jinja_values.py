# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""Values as Jinja's own filters read them, for the filters that check a role's inputs.

An inventory value arrives as whatever YAML or `-e` made of it: "8", 8, 8.0, "yes". The
checking filters (aws_settings_problem, minio_proxy_problems, nvidia_docker_problems,
volume_mount_problems) judge it the way the role's tasks will use it, so these readers follow
Jinja's `int` and Ansible's `bool`; `setting_text` and `failed` are the shape they share.
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


def setting_text(settings, prefix):
    """A reader of one role's settings by their short name: settings[prefix + name] as text,
    '' when it is unset or null (what Jinja's `string` makes of an empty inventory value)."""
    def text(name):
        value = settings.get(prefix + name)
        return "" if value is None else str(value)
    return text


def failed(checks):
    """The messages of the (ok, message) checks that failed, in their order."""
    return [message for ok, message in checks if not ok]
