# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""Pure decisions behind the AWS path of the playbooks: what a session's instance has cost
so far, how its instances and volumes are summarised, and whether a volume may be used for
a session before anything is created.

Nothing here calls AWS: rlops.fleet.aws_session_info feeds in what it read, and the filter
plugin rlops.fleet.aws_volume_problem lets the playbooks ask the same questions, so every
decision has a unit test without mocks.
"""

import re
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.rlops.fleet.plugins.module_utils.aws_common import (
    ROLE_TAG,
    SESSION_TAG,
    tag_dict,
)
from ansible_collections.rlops.fleet.plugins.module_utils.aws_rollout import (
    ROLLOUT_ROLE,
    instance_role,
)

# States in which an instance is billed (compute) and its clock still runs.
RUNNING_STATES = frozenset({"pending", "running", "stopping", "shutting-down"})
# An attachment to an instance in these states is on its way out: EC2 releases the volume.
RELEASING_STATES = frozenset({"shutting-down", "terminated"})
# Volume states in which it can be attached (once released).
USABLE_VOLUME_STATES = frozenset({"creating", "available", "in-use"})
# "User initiated (2026-11-22 08:14:51 GMT)", "Service initiated (... UTC)", ...
_TRANSITION_RE = re.compile(r"\((\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) (?:GMT|UTC)\)")
_COST_PLACES = Decimal("0.000001")


def as_utc(value: Any) -> Optional[datetime]:
    """A timezone-aware UTC datetime from a datetime or an ISO 8601 string, else None."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def transition_time(reason: Optional[str]) -> Optional[datetime]:
    """When an instance stopped or terminated, from its StateTransitionReason."""
    match = _TRANSITION_RE.search(reason or "")
    if not match:
        return None
    return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)


def run_window(instance: Mapping[str, Any], now: datetime
               ) -> Optional[Tuple[datetime, datetime]]:
    """(start, end) of the instance's current run, or None when it cannot be told.

    EC2's LaunchTime is the start of the current run (a stopped and started instance gets a
    new one). A running instance's run ends now; a stopped or terminated one's when its
    state changed, as its StateTransitionReason says.
    """
    start = as_utc(instance.get("LaunchTime"))
    if start is None:
        return None
    state = (instance.get("State") or {}).get("Name")
    end = now if state in RUNNING_STATES else transition_time(
        instance.get("StateTransitionReason"))
    if end is None or end < start:
        return None
    return start, end


def _price(value: Any) -> Optional[Decimal]:
    try:
        price = Decimal(str(value))
    except (InvalidOperation, TypeError, ValueError):
        return None
    return price if price.is_finite() and price >= 0 else None


def price_points(records: Iterable[Mapping[str, Any]], instance_type: str, zone: str
                 ) -> List[Tuple[datetime, Decimal]]:
    """(time, USD per hour) of the spot price changes of one type in one zone, oldest first.

    Records of other types or zones are dropped (moto ignores the zone filter), and so are
    records without a time or a readable price.
    """
    points = []
    for record in records:
        if record.get("InstanceType") != instance_type:
            continue
        if record.get("AvailabilityZone") not in (None, zone):
            continue
        when, price = as_utc(record.get("Timestamp")), _price(record.get("SpotPrice"))
        if when is not None and price is not None:
            points.append((when, price))
    return sorted(set(points))


def spot_cost(points: Sequence[Tuple[datetime, Decimal]], start: datetime, end: datetime
              ) -> Optional[Decimal]:
    """USD for running from `start` to `end` at the spot prices `points`, or None without
    prices.

    The price in effect at any moment is the newest change at or before it (EC2 answers a
    history query with the change before its start time too); before the first known
    change, the first known price. Linux spot instances are billed per second.
    """
    if not points or end <= start:
        return Decimal(0).quantize(_COST_PLACES) if points else None
    earlier = [price for when, price in points if when <= start]
    current = earlier[-1] if earlier else points[0][1]
    cost, since = Decimal(0), start
    for when, price in points:
        if start < when < end:
            cost += current * Decimal((when - since).total_seconds()) / 3600
            since, current = when, price
    cost += current * Decimal((end - since).total_seconds()) / 3600
    return cost.quantize(_COST_PLACES)


def instance_record(instance: Mapping[str, Any], now: datetime,
                    cost: Optional[Decimal] = None, price: Optional[Decimal] = None,
                    data_volume: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """What the playbooks need to know about an instance, in their words; `data_volume`
    is the session's data volume attached to it ({volume_id, device}), if any."""
    tags = tag_dict(instance)
    window = run_window(instance, now)
    role, slot = instance_role(tags)
    return {
        "instance_id": instance.get("InstanceId"),
        "session": tags.get(SESSION_TAG),
        "state": (instance.get("State") or {}).get("Name"),
        "instance_type": instance.get("InstanceType"),
        "availability_zone": (instance.get("Placement") or {}).get("AvailabilityZone"),
        "lifecycle": "spot" if instance.get("InstanceLifecycle") == "spot" else "on-demand",
        "launch_time": window[0].isoformat() if window else None,
        # Not rounded here: the status table rounds it once, to 0.01 h (rounded twice,
        # 0.00497 h showed as 0.01 h).
        "running_hours": ((window[1] - window[0]).total_seconds() / 3600 if window else None),
        "spot_price": None if price is None else str(price),
        "cost_so_far": None if cost is None else str(cost),
        "public_ip": instance.get("PublicIpAddress"),
        "private_ip": instance.get("PrivateIpAddress"),
        "key_name": instance.get("KeyName"),
        "data_volume": dict(data_volume) if data_volume else None,
        # head (with the data volume) or rollout (a Ray session's worker, no volume).
        "role": role,
        "slot": slot,
        "tags": tags,
    }


def volume_record(volume: Mapping[str, Any],
                  instance_states: Optional[Mapping[str, Optional[str]]] = None
                  ) -> Dict[str, Any]:
    """A volume with its attachments and the state of each attachment's instance (None
    when unknown: the instance is gone from EC2's answers)."""
    states = instance_states or {}
    tags = tag_dict(volume)
    return {
        "volume_id": volume.get("VolumeId"),
        "session": tags.get(SESSION_TAG),
        "role": tags.get(ROLE_TAG),
        "availability_zone": volume.get("AvailabilityZone"),
        "state": volume.get("State"),
        "size": volume.get("Size"),
        "volume_type": volume.get("VolumeType"),
        "attachments": [
            {"instance_id": a.get("InstanceId"), "device": a.get("Device"),
             "state": a.get("State"), "instance_state": states.get(a.get("InstanceId"))}
            for a in volume.get("Attachments") or []
            if a.get("State") in ("attaching", "attached", "busy", "detaching", None)
        ],
        "tags": tags,
    }


def data_volumes_by_instance(volumes: Sequence[Mapping[str, Any]]
                             ) -> Dict[str, Dict[str, Any]]:
    """instance id -> {volume_id, device} of the data volume (a volume_record with role
    `data`) attached to it."""
    found: Dict[str, Dict[str, Any]] = {}
    for volume in volumes:
        if volume.get("role") != "data":
            continue
        for attachment in volume.get("attachments") or []:
            found.setdefault(attachment.get("instance_id"),
                             {"volume_id": volume.get("volume_id"),
                              "device": attachment.get("device")})
    return found


def volume_problem(volume: Optional[Mapping[str, Any]], session: str,
                   zones: Optional[Sequence[str]] = None, force_detach: bool = False,
                   own_instances: Sequence[str] = ()) -> Optional[str]:
    """Why `volume` (a volume_record) cannot be the data volume of `session`, or None.

    `zones` are the zones the user allows (empty: any); `own_instances` the session's own
    instances, to which the volume may stay attached. An attachment to an instance that is
    shutting down or terminated is no problem (EC2 releases the volume); one to an instance
    that runs, is stopped, or is unknown needs `force_detach`.
    """
    if not volume:
        return "the volume does not exist"
    which = f"volume {volume.get('volume_id')}"
    if volume.get("state") not in USABLE_VOLUME_STATES:
        return f"{which} is {volume.get('state')}"
    if volume.get("role") == "root":
        return f"{which} is the root volume of an instance, not a data volume"
    owner = volume.get("session")
    if owner and owner != session:
        return (f"{which} belongs to session {owner} (tag {SESSION_TAG}); resume that "
                "session, or give a volume of this one")
    zone = volume.get("availability_zone")
    if zones and zone not in zones:
        return (f"{which} is in {zone}, but rlops_aws_availability_zones allows only "
                f"{', '.join(zones)}: a volume attaches only to an instance in its own "
                "zone (add its zone, or leave the list empty)")
    for attachment in volume.get("attachments") or []:
        holder, state = attachment.get("instance_id"), attachment.get("instance_state")
        if holder in own_instances or state in RELEASING_STATES:
            continue
        if not force_detach:
            return (f"{which} is attached to {holder} ({state or 'state unknown'}) at "
                    f"{attachment.get('device')}: detach it there first, or set "
                    f"rlops_aws_force_detach: true (a forced detach can lose what {holder} "
                    "has not written yet)")
    return None


_TABLE_COLUMNS = ("SESSION", "INSTANCE", "TYPE", "ZONE", "MARKET", "STATE", "HOURS",
                  "USD/H", "COST SO FAR")


def _cell(value: Any, fmt: str = "{}") -> str:
    return "-" if value is None or value == "" else fmt.format(value)


def volume_line(volume: Mapping[str, Any]) -> str:
    """One line about a data volume (volume_record): where it is and who holds it."""
    holders = ", ".join(f"{a.get('instance_id')} ({a.get('instance_state') or 'gone'})"
                        for a in volume.get("attachments") or [])
    return (f"volume {volume.get('volume_id')} of {volume.get('session') or 'no session'}: "
            f"{volume.get('size')} GiB {volume.get('volume_type')} in "
            f"{volume.get('availability_zone')}, {volume.get('state')}"
            + (f", attached to {holders}" if holders else ""))


def instance_table(instances: Sequence[Mapping[str, Any]],
                   volumes: Optional[Sequence[Mapping[str, Any]]] = None) -> List[str]:
    """Aligned lines of instance records (instance_record), header first, then a line per
    data volume (volume_record) when `volumes` are given."""
    rows = [_TABLE_COLUMNS]
    for record in instances:
        cost = _price(record.get("cost_so_far"))
        price = _price(record.get("spot_price"))
        rows.append((
            _cell(record.get("session")), _cell(record.get("instance_id")),
            _cell(record.get("instance_type")), _cell(record.get("availability_zone")),
            _cell(record.get("lifecycle")), _cell(record.get("state")),
            _cell(record.get("running_hours"), "{:.2f}"),
            _cell(None if price is None else float(price), "{:.4f}"),
            _cell(None if cost is None else float(cost), "${:.6f}"),
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(_TABLE_COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    return lines + [volume_line(v) for v in volumes or [] if v.get("role") == "data"]


def session_cost_lines(instances: Sequence[Mapping[str, Any]]) -> List[str]:
    """A line per session with rollout workers (instance records): what its instances,
    head and workers together, have cost so far (those whose cost is known)."""
    sessions: Dict[str, List[Mapping[str, Any]]] = {}
    for record in instances:
        sessions.setdefault(str(record.get("session")), []).append(record)
    lines = []
    for session, records in sorted(sessions.items()):
        workers = [r for r in records if r.get("role") == ROLLOUT_ROLE]
        if not workers:
            continue
        costs = [_price(r.get("cost_so_far")) for r in records]
        total = sum((c for c in costs if c is not None), Decimal(0))
        lines.append(f"session {session}: {len(records) - len(workers)} head and "
                     f"{len(workers)} rollout worker instance(s), "
                     f"${float(total):.6f} so far together")
    return lines
