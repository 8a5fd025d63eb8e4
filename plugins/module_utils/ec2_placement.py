# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""Pure decisions behind ec2_spot_request: where to launch, in which order, and what an
error or a spot request status means for the next step.

Nothing here calls AWS; the module feeds in what it read and acts on what comes back, so
every decision has a unit test without mocks.
"""

import hashlib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

# Launch errors that say "not here, not now": the next candidate may well succeed.
CAPACITY_ERROR_CODES = frozenset(
    {
        "InsufficientInstanceCapacity",
        "InsufficientCapacity",
        "InsufficientHostCapacity",
        "InsufficientReservedInstanceCapacity",
        "MaxSpotInstanceCountExceeded",
        "SpotMaxPriceTooLow",
        "InstanceLimitExceeded",
        "VcpuLimitExceeded",
        # An instance type that a zone does not offer after all.
        "Unsupported",
    }
)

# Spot request status codes (describe_spot_instance_requests Status.Code).
# https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/spot-request-status.html
REQUEST_STATUS_WAIT = frozenset(
    {"pending-evaluation", "pending-fulfillment", "not-scheduled-yet", "fulfilled"}
)
REQUEST_STATUS_NEXT = frozenset(
    {
        "capacity-not-available",
        "capacity-oversubscribed",
        "price-too-low",
        "az-group-constraint",
        "placement-group-constraint",
        "constraint-not-fulfillable",
        "launch-group-constraint",
        "instance-terminated-no-capacity",
        "instance-terminated-capacity-oversubscribed",
        "instance-terminated-by-price",
        "instance-stopped-no-capacity",
        "instance-stopped-capacity-oversubscribed",
        "instance-stopped-by-price",
        "instance-hibernated-no-capacity",
        "instance-hibernated-by-price",
    }
)

# Instance state reasons meaning the spot market took the instance back before it ran.
STATE_REASON_NEXT = frozenset(
    {
        "Server.SpotInstanceTermination",
        "Server.SpotInstanceShutdown",
        "Server.InsufficientInstanceCapacity",
    }
)

MARKETS = ("spot", "on-demand")


@dataclass(frozen=True)
class Candidate:
    """One place to try: an instance type in a zone, with its latest spot price if known."""

    instance_type: str
    availability_zone: str
    price: Optional[str] = None

    def label(self) -> str:
        return f"{self.instance_type} in {self.availability_zone}"


def _decimal(value) -> Optional[Decimal]:
    try:
        return Decimal(str(value))
    except (InvalidOperation, TypeError, ValueError):
        return None


def latest_prices(records: Iterable[Mapping]) -> Dict[Tuple[str, str], str]:
    """The newest price per (instance type, zone) from spot price history records.

    Records missing a type, zone or price are skipped; records without a timestamp count as
    older than any timestamped one (moto and old APIs leave fields out).
    """
    newest: Dict[Tuple[str, str], Tuple[str, str]] = {}
    for record in records:
        key = (record.get("InstanceType"), record.get("AvailabilityZone"))
        price = record.get("SpotPrice")
        if not all(key) or _decimal(price) is None:
            continue
        stamp = record.get("Timestamp")
        stamp = stamp.isoformat() if hasattr(stamp, "isoformat") else str(stamp or "")
        if key not in newest or stamp > newest[key][0]:
            newest[key] = (stamp, str(price))
    return {key: price for key, (_stamp, price) in newest.items()}


def rank_candidates(
    prices: Mapping[Tuple[str, str], str],
    types: Sequence[str],
    zones: Sequence[str],
    offered: Optional[Iterable[Tuple[str, str]]] = None,
) -> List[Candidate]:
    """Every (type, zone) pair, cheapest first.

    `prices` maps (type, zone) to a price (see latest_prices). Pairs without a price come
    after all priced ones. Ties keep the caller's order: types as listed, then zones as
    listed, so a user's preference decides between equal prices. When `offered` is given,
    pairs the region does not offer are left out.
    """
    allowed = None if offered is None else set(offered)
    rows = []
    for type_index, instance_type in enumerate(types):
        for zone_index, zone in enumerate(zones):
            if allowed is not None and (instance_type, zone) not in allowed:
                continue
            price = prices.get((instance_type, zone))
            value = _decimal(price)
            rows.append(
                (
                    (value is None, value if value is not None else Decimal(0),
                     type_index, zone_index),
                    Candidate(instance_type, zone, price),
                )
            )
    rows.sort(key=lambda row: row[0])
    return [candidate for _key, candidate in rows]


def split_by_max_price(
    candidates: Sequence[Candidate], max_price: Optional[str]
) -> Tuple[List[Candidate], List[Candidate]]:
    """(candidates to try, candidates whose known price is already above max_price)."""
    limit = _decimal(max_price) if max_price else None
    if limit is None:
        return list(candidates), []
    keep, skip = [], []
    for candidate in candidates:
        value = _decimal(candidate.price)
        (skip if value is not None and value > limit else keep).append(candidate)
    return keep, skip


def zones_to_try(
    region_zones: Sequence[str],
    availability_zones: Optional[Sequence[str]],
    availability_zone: Optional[str],
    region: str = "the region",
) -> Tuple[List[str], Optional[str]]:
    """The zones to consider and an error message when a requested zone does not exist.

    `availability_zone` (where the session's volume lives) wins over the list: an instance
    anywhere else could not attach the volume.
    """
    requested = [availability_zone] if availability_zone else list(availability_zones or [])
    unknown = [zone for zone in requested if zone not in region_zones]
    if unknown:
        known = ", ".join(region_zones) or "none"
        missing = ", ".join(unknown)
        return [], f"availability zone {missing} is not in {region} (zones there: {known})"
    if availability_zone:
        return [availability_zone], None
    return (requested or list(region_zones)), None


def after_launch_error(code: str) -> str:
    """'next' when another candidate may succeed, 'fail' when every one would fail too."""
    return "next" if code in CAPACITY_ERROR_CODES else "fail"


def after_request_status(code: Optional[str]) -> str:
    """What a spot request status code means while waiting: 'wait', 'next' or 'fail'."""
    if not code or code in REQUEST_STATUS_WAIT:
        return "wait"
    if code in REQUEST_STATUS_NEXT:
        return "next"
    # bad-parameters, canceled-before-fulfillment, stopped or terminated by the user, ...:
    # another candidate would meet the same end.
    return "fail"


def spot_options_error(spot_type: str, behavior: str) -> Optional[str]:
    """RunInstances accepts persistent requests only with stop/hibernate, and those two
    only with persistent requests."""
    if behavior in ("stop", "hibernate") and spot_type != "persistent":
        return (
            f"instance_interruption_behavior={behavior} needs spot_type=persistent: a one-time "
            "request cannot restart a stopped instance"
        )
    if spot_type == "persistent" and behavior == "terminate":
        return (
            "spot_type=persistent needs instance_interruption_behavior stop or hibernate: "
            "EC2 RunInstances refuses persistent requests that terminate"
        )
    return None


def client_token(
    session: str, candidate: Candidate, market: str, generation: int = 0
) -> str:
    """A RunInstances ClientToken (at most 64 ASCII characters) that is the same on every run
    for this session, candidate and market, so a run cut short and re-run gets the instance
    the first run launched instead of a second one.

    `generation` moves on when EC2 answers IdempotentInstanceTerminated: the instance
    launched with the previous token has been terminated (a resume after an interruption).
    """
    digest = hashlib.sha256(
        "|".join((session, candidate.instance_type, candidate.availability_zone, market))
        .encode("utf-8")
    ).hexdigest()[:40]
    return f"rlops-{digest}-g{generation}"
