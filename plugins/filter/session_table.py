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
  - Below the table, one line per thing to know about a session - checkpoints not in
    storage yet (C(unsynced_steps)), what C(rlops-run publish) did or would do about them,
    spot notices that are not being watched (C(notices)).
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
  publishes:
    description:
      - Results of C(rlops-run publish) on the hosts, each with C(host) added - the
        C(publishes) of C(rlops-run session status) (dicts with C(session_id), C(rc),
        C(stdout) and C(stderr)), or the registered results of a loop over status records
        (the record under C(ansible_loop_var)).
        C(stdout) holds C(published) or, with C(--dry-run), C(would_publish). Skipped
        results are ignored.
    type: list
    elements: dict
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

import json
from datetime import datetime, timezone

from ansible_collections.rlops.fleet.plugins.module_utils.session_contract import ACTIVE_STATES

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_COLUMNS = ("SESSION", "HOST", "STATE", "STEP", "RETURN", "CHECKPOINT AGE")
_ERROR_PREFIX = "rlops-run: error: "


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


def _checkpoints(steps, what):
    """'2 checkpoints <what> (newest 60160)'."""
    return "%d checkpoint%s %s (newest %d)" % (
        len(steps), "" if len(steps) == 1 else "s", what, max(steps))


def publish_outcome(result):
    """What one `rlops-run publish` result says: ('published' | 'would_publish', steps) or
    ('error', message)."""
    if result.get("rc") != 0:
        lines = [line for line in (result.get("stderr") or "").splitlines() if line.strip()]
        message = lines[-1] if lines else "rlops-run publish exited %s" % result.get("rc")
        if message.startswith(_ERROR_PREFIX):
            message = message[len(_ERROR_PREFIX):]
        return "error", message
    try:
        data = json.loads(result.get("stdout") or "{}")
    except ValueError:
        return "error", "rlops-run publish printed no JSON"
    if "would_publish" in data:
        return "would_publish", data["would_publish"] or []
    return "published", data.get("published") or []


def storage_note(record, publish=None):
    """The line about checkpoints that are not in storage, or None."""
    pending = record.get("unsynced_steps") or []
    error = record.get("sync_error")
    if publish is not None:
        kind, what = publish_outcome(publish)
        if kind == "published" and what:
            return "published " + _checkpoints(what, "that storage lacked")
        if kind == "would_publish" and what:
            return _checkpoints(what, "not in storage yet") + ": publish would send them"
        if kind == "error" and pending:
            return "%s, not published now: %s" % (_checkpoints(pending, "not in storage yet"),
                                                  what)
    if not pending:
        return None
    if record.get("state") in ACTIVE_STATES and not error:
        return None  # the supervisor's next sync takes them
    note = _checkpoints(pending, "not in storage yet")
    if record.get("supervisor_alive") and record.get("state") not in ACTIVE_STATES:
        note += ": the supervisor keeps trying"
    return note + (" (%s)" % error if error else "")


def notices_note(record):
    """The line about spot notices a supervisor should watch and does not, or None."""
    notices = record.get("notices") or {}
    if not notices.get("source") or notices.get("watching"):
        return None
    if record.get("state") not in ACTIVE_STATES:
        return None
    note = "spot notices not watched"
    if notices.get("since"):
        note += " since %s" % notices["since"]
    return note + (": %s" % notices["last_error"] if notices.get("last_error") else "")


def cluster_note(record):
    """The line about a Ray session's cluster (its status.json's nodes and env runners), or
    None for a single-host session."""
    if record.get("nodes") is None and not record.get("env_runners"):
        return None
    runners = record.get("env_runners") or {}
    note = "Ray cluster: %s node%s" % (record.get("nodes", "?"),
                                       "" if record.get("nodes") == 1 else "s")
    if runners:
        note += ", env runners %s/%s healthy" % (runners.get("healthy", "?"),
                                                 runners.get("total", "?"))
        if runners.get("restarts"):
            note += " (%s restarted)" % runners["restarts"]
    return note


def deepracer_note(record):
    """The line about a DeepRacer session's model (its status.json's deepracer extras: the
    model prefix, the iteration, the mean completion and the checkpoints), or None."""
    extras = record.get("deepracer")
    if not isinstance(extras, dict) or not extras.get("model_prefix"):
        return None
    note = "DeepRacer model %s" % extras["model_prefix"]
    if extras.get("pretrained_prefix"):
        note += " (from %s)" % extras["pretrained_prefix"]
    facts = []
    if extras.get("iteration") is not None:
        facts.append("iteration %s" % extras["iteration"])
    if record.get("episodes") is not None:
        facts.append("%s episodes" % record["episodes"])
    if isinstance(extras.get("progress"), (int, float)):
        facts.append("progress %.1f%%" % extras["progress"])
    for which in ("last", "best"):
        if extras.get("%s_checkpoint" % which):
            facts.append("%s checkpoint %s" % (which, extras["%s_checkpoint" % which]))
    return note + (": " + ", ".join(facts) if facts else "")


def _publish_key(result):
    """(host, session id) of a publish result, plain or from a loop over records."""
    record = result.get(result.get("ansible_loop_var") or "") or {}
    return result.get("host"), result.get("session_id") or record.get("session_id")


def session_notes(records, publishes=None):
    """Lines below the table: '<session> on <host>: <note>'."""
    by_session = {_publish_key(p): p for p in publishes or () if not p.get("skipped")}
    lines = []
    for record in records:
        publish = by_session.get((record.get("host"), record.get("session_id")))
        for note in (cluster_note(record), deepracer_note(record), storage_note(record, publish),
                     notices_note(record)):
            if note:
                lines.append("%s on %s: %s" % (record.get("session_id", "?"),
                                               record.get("host", "?"), note))
    return lines


def session_table(records, now=None, publishes=None):
    moment = _parse_time(now) if now else datetime.now(timezone.utc)
    rows = [_COLUMNS] + [session_row(r, moment) for r in records]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    table = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    return table + session_notes(records, publishes)


class FilterModule(object):
    def filters(self):
        return {"session_table": session_table}
