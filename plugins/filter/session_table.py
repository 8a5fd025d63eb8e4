# -*- coding: utf-8 -*-
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""Filters that turn the runtime's status records into what the playbooks print."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
name: session_table
short_description: Format session status records as a table
version_added: 0.1.0
description:
  - Turns the records printed by C(rlops-run status), each with a C(host) key added, into
    aligned lines (session, host, state, step, last return, checkpoint age).
positional: _input
options:
  _input:
    description: List of status records.
    type: list
    elements: dict
    required: true
  now:
    description: Current UTC time as C(YYYY-MM-DDTHH:MM:SSZ); defaults to the clock.
    type: str
"""

EXAMPLES = r"""
- name: Show the sessions
  ansible.builtin.debug:
    msg: "{{ records | rlops.fleet.session_table }}"
"""

RETURN = r"""
_value:
  description: Lines of the table, header first.
  type: list
  elements: str
"""

from datetime import datetime, timezone

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_COLUMNS = ("SESSION", "HOST", "STATE", "STEP", "RETURN", "CHECKPOINT AGE")


def _parse_time(value):
    try:
        return datetime.strptime(value, _TIME_FORMAT).replace(tzinfo=timezone.utc)
    except (TypeError, ValueError):
        return None


def format_age(seconds):
    """Short human age: 42s, 7m05s, 3h12m, 2d04h."""
    if seconds is None:
        return "-"
    seconds = max(0, int(seconds))
    if seconds < 60:
        return "%ds" % seconds
    if seconds < 3600:
        return "%dm%02ds" % divmod(seconds, 60)
    if seconds < 86400:
        return "%dh%02dm" % (seconds // 3600, seconds % 3600 // 60)
    return "%dd%02dh" % (seconds // 86400, seconds % 86400 // 3600)


def session_row(record, now):
    checkpoint_time = _parse_time(record.get("last_checkpoint_time"))
    age = (now - checkpoint_time).total_seconds() if checkpoint_time else None
    step = record.get("step")
    total = record.get("total_timesteps")
    mean_return = record.get("mean_return")
    return (
        str(record.get("session_id", "?")),
        str(record.get("host", "?")),
        str(record.get("state", "unknown")),
        "-" if step is None else ("%d/%d" % (step, total) if total else str(step)),
        "-" if mean_return is None else "%.1f" % mean_return,
        format_age(age),
    )


def session_table(records, now=None):
    moment = _parse_time(now) if now else datetime.now(timezone.utc)
    rows = [_COLUMNS] + [session_row(r, moment) for r in records]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


class FilterModule(object):
    def filters(self):
        return {"session_table": session_table}
