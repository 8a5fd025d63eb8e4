# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""Pure decisions about a session's rollout workers on AWS (rlops_aws_rollout_workers): N
volume-less spot instances beside the session's head (the instance with the data volume),
for a Ray session (rlops_backend: ray). Which instance is the head and which worker holds
which slot (their tags), what the settings ask and why they cannot be done, the arguments
of the spot-launch engine for a worker, the security group rule that lets the members of
the session's group talk to each other, which workers to keep, launch or terminate, and the
lines that say so. Nothing here calls AWS."""

import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.rlops.fleet.plugins.module_utils.aws_common import (
    ROLE_TAG,
    session_tags,
)

HEAD_ROLE = "head"
ROLLOUT_ROLE = "rollout"
# The slot (1..N) of a rollout worker: a worker lost in slot 2 is relaunched in slot 2.
SLOT_TAG = "rlops:slot"
# More workers than this is a typo, not a plan (each one is an instance that bills).
MAX_ROLLOUT_WORKERS = 64
BACKEND = "ray"
MEMBERS_RULE_DESCRIPTION = "all TCP between the instances of the session (Ray)"
_PRICE = re.compile(r"^[0-9]+([.][0-9]+)?$")
_TYPE = re.compile(r"^[a-z][a-z0-9-]*[.][a-z0-9]+$")


def _setting(settings: Mapping[str, Any], name: str, default: Any = None) -> Any:
    value = settings.get("rlops_aws_" + name)
    return default if value is None or value == "" else value


def worker_count(settings: Mapping[str, Any]) -> int:
    """rlops_aws_rollout_workers as a number (0 when it is not one: rollout_problem says)."""
    try:
        return max(0, int(str(_setting(settings, "rollout_workers", 0)).strip()))
    except ValueError:
        return 0


def rollout_problem(settings: Mapping[str, Any], backend: str) -> str:
    """Why the rollout-worker settings cannot be carried out, or '' (checked before
    anything is created). The instance types' existence is EC2's to say (the plan)."""
    raw = str(_setting(settings, "rollout_workers", 0)).strip()
    if not re.match(r"^[0-9]+$", raw):
        return (f"rlops_aws_rollout_workers must be a whole number of rollout instances "
                f"(0 to {MAX_ROLLOUT_WORKERS}), got {raw}")
    count = int(raw)
    if count > MAX_ROLLOUT_WORKERS:
        return (f"rlops_aws_rollout_workers {count} is more than {MAX_ROLLOUT_WORKERS} "
                "instances: ask for fewer")
    if count == 0:
        return ""
    if backend != BACKEND:
        return (f"rlops_aws_rollout_workers {count} adds rollout hosts to a Ray session, but "
                f"rlops_backend is {backend}: set rlops_backend: ray, or "
                "rlops_aws_rollout_workers: 0")
    types = _setting(settings, "rollout_instance_types", [])
    if (isinstance(types, (str, bytes)) or not isinstance(types, Sequence) or not types
            or not all(isinstance(t, str) and _TYPE.match(t) for t in types)):
        return ("rlops_aws_rollout_instance_types must list instance types such as "
                f"[c6i.large, c7i.large], got {types}")
    price = str(_setting(settings, "rollout_max_price", ""))
    if price and not _PRICE.match(price):
        return (f"rlops_aws_rollout_max_price '{price}' is not a price in USD per hour "
                "(e.g. 0.05; empty: the on-demand price)")
    return ""


def instance_role(tags: Mapping[str, str]) -> Tuple[str, Optional[int]]:
    """(role, slot) of a session's instance from its tags: a rollout worker and its slot, or
    the head (an instance without a role tag was launched before workers existed)."""
    if tags.get(ROLE_TAG) != ROLLOUT_ROLE:
        return HEAD_ROLE, None
    try:
        return ROLLOUT_ROLE, int(tags.get(SLOT_TAG) or "")
    except ValueError:
        return ROLLOUT_ROLE, None


def role_tags(session: str, user_tags: Optional[Mapping[str, Any]], role: str,
              slot: Optional[int] = None) -> Dict[str, str]:
    """The tags of the head's or a worker's instance (and its spot request): the user's
    (rlops_aws_tags), the session, the role (and slot) and a Name."""
    tags = dict(session_tags(session, user_tags), **{ROLE_TAG: role})
    name = f"rlops-{session}"
    if role == ROLLOUT_ROLE:
        tags[SLOT_TAG] = str(slot)
        name = f"{name}-rollout-{slot}"
    tags.setdefault("Name", name)
    return tags


def token_key(session: str, role: str, slot: Optional[int]) -> str:
    """What the launch's ClientToken is made from: the session alone for the head (as
    before workers existed), the session and slot for a worker (one instance per slot)."""
    return session if role == HEAD_ROLE else f"{session}/{role}-{slot}"


def worker_spot_params(settings: Mapping[str, Any], session: str, zone: Optional[str],
                       group_id: Optional[str], waits: Mapping[str, Any]) -> Dict[str, Any]:
    """ec2_spot_request's arguments for one rollout worker: the rollout types in the head's
    zone (Ray's traffic stays in one zone, in the head's subnet), one-time spot requests
    ended by an interruption (resume launches a new one), the head's image, key pair,
    security group, instance profile and root volume size; no data volume."""
    size = _setting(settings, "root_volume_size", 0)
    try:
        size = int(float(str(size)))
    except ValueError:
        size = 0
    return dict(
        waits, state="present", session=session,
        instance_types=list(_setting(settings, "rollout_instance_types", [])),
        availability_zones=None, availability_zone=zone or None,
        image_id=_setting(settings, "image_id"),
        subnet_ids=dict(_setting(settings, "subnet_ids", {})) or None,
        max_price=str(_setting(settings, "rollout_max_price", "")) or None,
        spot_type="one-time", instance_interruption_behavior="terminate",
        on_demand_fallback=False, root_volume_size=size if size > 0 else None,
        tags=dict(_setting(settings, "tags", {})), key_name=_setting(settings, "key_name"),
        security_group_ids=[group_id] if group_id else None,
        iam_instance_profile=_setting(settings, "iam_instance_profile"))


def members_rule(group_id: str) -> Dict[str, Any]:
    """Ingress of every TCP port from the group itself: Ray's head and workers connect to
    each other both ways on pinned ports (and the workers' ports 10002-10099)."""
    return {"IpProtocol": "tcp", "FromPort": 0, "ToPort": 65535,
            "UserIdGroupPairs": [{"GroupId": group_id,
                                  "Description": MEMBERS_RULE_DESCRIPTION}]}


def worker_plan(count: int, live: Sequence[Mapping[str, Any]]
                ) -> Dict[str, List[Any]]:
    """What to do with the session's live rollout workers (`live`: {instance_id, slot}) so
    that slots 1..count each have one: `keep` the instance ids that stay, `launch` the
    slots that have none, `terminate` the ids beyond `count` or without a slot (they
    hold nothing: no volume)."""
    wanted = range(1, count + 1)
    by_slot: Dict[int, str] = {}
    terminate = []
    for worker in sorted(live, key=lambda w: str(w.get("instance_id"))):
        slot = worker.get("slot")
        if slot in wanted and slot not in by_slot:
            by_slot[slot] = worker["instance_id"]
        else:
            terminate.append(worker["instance_id"])
    return {"keep": [by_slot[s] for s in sorted(by_slot)],
            "launch": [s for s in wanted if s not in by_slot], "terminate": terminate}


def worker_host(spot: Mapping[str, Any], session: str, slot: int) -> Dict[str, Any]:
    """A launched (or kept) worker as add_hosts takes it: no data volume."""
    return dict(spot, session=session, state=spot.get("instance_state"), role=ROLLOUT_ROLE,
                slot=slot, data_volume=None)


def workers_report(session: str, count: int, results: Sequence[Mapping[str, Any]],
                   terminated: Sequence[str] = (), check_mode: bool = False) -> List[str]:
    """The lines about the workers (`results`: the engine's answer per slot, with `slot`)."""
    if not count and not terminated:
        return []
    prefix = f"session {session}: "
    lines = []
    for spot in results:
        what = (f"rollout worker {spot['slot']}: {spot.get('lifecycle')} "
                f"{spot.get('instance_type')} in {spot.get('availability_zone')} "
                f"({spot.get('spot_price') or 'unknown'} USD/h)")
        if spot.get("instance_id") and not (check_mode and spot.get("changed")):
            state = "launched" if spot.get("changed") else "kept"
            lines.append(f"{prefix}{what} {spot['instance_id']} {state}, no volume")
        else:
            lines.append(f"{prefix}would launch {what}, no volume")
    if terminated:
        verb = "would terminate" if check_mode else "terminated"
        lines.append(f"{prefix}{verb} rollout workers beyond {count}: {', '.join(terminated)}")
    return lines
