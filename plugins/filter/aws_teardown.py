# -*- coding: utf-8 -*-
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""Filters that decide what the AWS provider's teardown does, and say what it left."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
name: aws_teardown_plan
short_description: What stop does to a session's AWS resources, each only when asked
version_added: 0.1.0
description:
  - Takes what rlops.fleet.aws_session_info found of a session and the three stop options,
    and answers with what to do - terminate the instance, snapshot the data volumes, delete
    them - and the one problem that keeps stop from starting (empty when there is none).
  - A data volume is deleted only when both O(delete_volume) and O(terminate) are asked
    (the running instance keeps it attached otherwise); a snapshot or a delete without a data
    volume is refused.
  - The filter C(aws_teardown_report) of the same file turns the plan and what was done into
    the lines that say what is left (and still billed).
positional: _input
options:
  _input:
    description: The result of rlops.fleet.aws_session_info for the session.
    type: dict
    required: true
  session:
    description: The session id.
    type: str
    required: true
  region:
    description: The region, for the messages.
    type: str
    required: true
  terminate:
    description: rlops_aws_terminate.
    type: bool
    default: false
  snapshot:
    description: rlops_aws_snapshot.
    type: bool
    default: false
  delete_volume:
    description: rlops_aws_delete_volume.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Decide what to terminate, snapshot and delete
  ansible.builtin.set_fact:
    plan: >-
      {{ found | rlops.fleet.aws_teardown_plan(session='cartpole-20261122t051500z',
      region='us-east-1', terminate=true, snapshot=true) }}
"""

RETURN = r"""
_value:
  description: C(problem) (a message or an empty string), C(terminate) (bool), C(volumes)
    (the session's data volume ids), C(snapshot) and C(delete) (the volume ids to snapshot
    and to delete).
  type: dict
"""

from collections.abc import Mapping  # noqa: E402


def teardown_plan(found, session, region, terminate=False, snapshot=False,
                  delete_volume=False):
    """What stop does to the session's resources, and why it cannot (problem)."""
    volumes = [v["volume_id"] for v in (found or {}).get("volumes") or []
               if isinstance(v, Mapping) and v.get("role") == "data"]
    problem = ""
    if delete_volume and not terminate:
        problem = ("rlops_aws_delete_volume needs rlops_aws_terminate: true, since the session's"
                   " instance keeps the volume attached otherwise (the volume is never deleted"
                   " unless both are asked)")
    elif (snapshot or delete_volume) and not volumes:
        problem = "session %s has no data volume in %s to %s" % (
            session, region, "snapshot" if snapshot else "delete")
    return {"problem": problem, "terminate": bool(terminate), "volumes": volumes,
            "snapshot": volumes if snapshot else [],
            "delete": volumes if delete_volume and terminate else []}


def teardown_report(plan, running=(), terminated=(), snapshots=(), check_mode=False):
    """Two lines: the instance and the volumes, as stop left them (or would leave them).

    running: the instance ids that ran before stop; terminated: those the spot request
    module terminated (or would); snapshots: the ids of the snapshots made (none in check
    mode, which makes none).
    """
    running, terminated = list(running or []), list(terminated or [])
    if plan["terminate"] and terminated:
        instance = ("would terminate " if check_mode else "terminated ") + ", ".join(terminated)
    elif plan["terminate"] or not running:
        instance = "none running"
    else:
        instance = ("%s still running, and billed: terminate it with -e rlops_aws_terminate=true"
                    " (the volume stays)" % ", ".join(running))
    fate = "deleted" if plan["delete"] else "kept"
    if check_mode:
        volume = "would be " + " and ".join((["snapshotted"] if plan["snapshot"] else []) + [fate])
    else:
        volume = fate + (", snapshot " + ", ".join(snapshots or []) if plan["snapshot"] else "")
    return ["instance: " + instance,
            "volume: %s %s" % (", ".join(plan["volumes"]) or "none", volume)]


def aws_teardown_plan(found, session, region, terminate=False, snapshot=False,
                      delete_volume=False):
    return teardown_plan(found, session, region, bool(terminate), bool(snapshot),
                         bool(delete_volume))


def aws_teardown_report(plan, running=None, terminated=None, snapshots=None, check_mode=False):
    return teardown_report(plan, running, terminated, snapshots, bool(check_mode))


class FilterModule(object):
    def filters(self):
        return {"aws_teardown_plan": aws_teardown_plan, "aws_teardown_report": aws_teardown_report}
