# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""The one way the rlops.fleet AWS modules read EC2: instances, volumes and spot requests by
id or by session tag, zones, offerings, prices, images.

A thin shell over amazon.aws's EC2 helpers (paginated, retried with AWSRetry's jittered
backoff, a resource that does not exist read as none): every function here only adds what
the modules need on top - which filter finds a session, and an error that says what was
being read (FleetAWSError, through aws_errors). Decisions on what was read live elsewhere.
"""

from datetime import datetime
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from ansible_collections.amazon.aws.plugins.module_utils.botocore import (
    paginated_query_with_retries,
)
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import (
    describe_availability_zones,
    describe_images,
    describe_instances,
    describe_key_pairs,
    describe_spot_instance_requests,
    describe_volumes,
    describe_vpcs,
)
from ansible_collections.rlops.fleet.plugins.module_utils.aws_common import (
    SESSION_TAG,
    FleetAWSError,
    aws_errors,
    error_code,
    session_filter,
)

# Instance states in which a session's instance is still its instance (it can run again).
LIVE_STATES = ("pending", "running", "stopping", "stopped")
OPEN_REQUEST_STATES = ("open", "active", "disabled")
# Spot price history of Linux instances, in and out of a VPC.
PRODUCTS = ["Linux/UNIX", "Linux/UNIX (Amazon VPC)"]


def _first(found: Sequence[Any]) -> Optional[Any]:
    return found[0] if found else None


def _instances(reservations: Iterable[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    return [i for r in reservations or [] for i in r.get("Instances") or []]


def tag_filter(session: Optional[str]) -> Dict[str, Any]:
    """The filter that finds one session's resources, or those of every session."""
    if session:
        return session_filter(session)
    return {"Name": "tag-key", "Values": [SESSION_TAG]}


# ---- by id: None when EC2 does not know it (also right after a create: eventual consistency)

def instance(ec2, instance_id: str) -> Optional[Dict[str, Any]]:
    with aws_errors(f"Read instance {instance_id}"):
        return _first(_instances(describe_instances(ec2, InstanceIds=[instance_id])))


def volume(ec2, volume_id: str, also_missing: Sequence[str] = ()) -> Optional[Dict[str, Any]]:
    """The volume; None when it does not exist, or EC2 answers one of `also_missing`."""
    try:
        with aws_errors(f"Read volume {volume_id}"):
            return _first(describe_volumes(ec2, VolumeIds=[volume_id]))
    except FleetAWSError as err:
        if error_code(err.exception) in also_missing:
            return None
        raise


def spot_request(ec2, request_id: Optional[str]) -> Optional[Dict[str, Any]]:
    if not request_id:
        return None
    with aws_errors(f"Read spot request {request_id}"):
        return _first(describe_spot_instance_requests(ec2, SpotInstanceRequestIds=[request_id]))


def instance_states(ec2, instance_ids: Iterable[str]) -> Dict[str, Optional[str]]:
    """State name of each instance, read in the order given; None for one EC2 no longer
    knows."""
    return {i: ((instance(ec2, i) or {}).get("State") or {}).get("Name")
            for i in dict.fromkeys(instance_ids)}


# ---- by session tag (None: every session), every page

def session_instances(ec2, session: Optional[str], what: str,
                      states: Optional[Sequence[str]] = None) -> List[Dict[str, Any]]:
    filters = [tag_filter(session)]
    if states:
        filters.append({"Name": "instance-state-name", "Values": list(states)})
    with aws_errors(what):
        return _instances(describe_instances(ec2, Filters=filters))


def session_volumes(ec2, session: Optional[str], what: str) -> List[Dict[str, Any]]:
    with aws_errors(what):
        return describe_volumes(ec2, Filters=[tag_filter(session)])


def session_requests(ec2, session: str, what: str,
                     states: Sequence[str] = OPEN_REQUEST_STATES) -> List[Dict[str, Any]]:
    with aws_errors(what):
        return describe_spot_instance_requests(
            ec2, Filters=[tag_filter(session), {"Name": "state", "Values": list(states)}])


# ---- the region and what it offers

def region_zones(ec2, region: str) -> List[str]:
    """Names of the region's available zones (not local or wavelength zones)."""
    with aws_errors(f"List the availability zones of region {region}"):
        zones = describe_availability_zones(
            ec2, Filters=[{"Name": "zone-type", "Values": ["availability-zone"]}])
    return [z["ZoneName"] for z in zones if z.get("State", "available") == "available"]


def key_pairs(ec2, name: str) -> List[Dict[str, Any]]:
    """The key pairs of that name (none or one)."""
    with aws_errors(f"Find key pair {name}"):
        return describe_key_pairs(ec2, Filters=[{"Name": "key-name", "Values": [name]}])


def vpcs(ec2, vpc_id: Optional[str]) -> List[Dict[str, Any]]:
    """The VPC of that id, or the region's default VPC without one (none or one)."""
    if vpc_id:
        with aws_errors(f"Find VPC {vpc_id}"):
            return describe_vpcs(ec2, VpcIds=[vpc_id])
    with aws_errors("Find the default VPC"):
        return describe_vpcs(ec2, Filters=[{"Name": "is-default", "Values": ["true"]}])


def check_instance_types(ec2, types: Sequence[str]) -> None:
    """Raise with EC2's own words when a type does not exist."""
    what = f"Check instance types {', '.join(types)}"
    try:
        with aws_errors(what):
            ec2.describe_instance_types(InstanceTypes=list(types), aws_retry=True)
    except FleetAWSError as err:
        if error_code(err.exception) != "InvalidInstanceType":
            raise
        aws_says = err.exception.response["Error"].get("Message", "unknown type")
        raise FleetAWSError(f"{what}: {aws_says}") from err


def hypervisor(ec2, instance_type: str) -> Optional[str]:
    """nitro or xen (None when EC2 does not say); raises FleetAWSError."""
    with aws_errors(f"Read instance type {instance_type}"):
        types = ec2.describe_instance_types(
            InstanceTypes=[instance_type], aws_retry=True)["InstanceTypes"]
    return (types[0] if types else {}).get("Hypervisor")


def offerings(ec2, types: Sequence[str], zones: Sequence[str]) -> Set[Tuple[str, str]]:
    """(instance type, zone) pairs the region offers."""
    with aws_errors(f"List where {', '.join(types)} are offered"):
        pages = paginated_query_with_retries(
            ec2, "describe_instance_type_offerings", LocationType="availability-zone",
            Filters=[{"Name": "instance-type", "Values": list(types)},
                     {"Name": "location", "Values": list(zones)}])
    return {(o.get("InstanceType"), o.get("Location"))
            for o in pages.get("InstanceTypeOfferings", [])}


def spot_prices(ec2, types: Sequence[str], start: datetime, zone: Optional[str] = None,
                end: Optional[datetime] = None) -> List[Dict[str, Any]]:
    """Linux spot price history records of `types` (in `zone`) since `start`."""
    query: Dict[str, Any] = {"InstanceTypes": list(types), "ProductDescriptions": PRODUCTS,
                             "StartTime": start}
    if zone:
        query["AvailabilityZone"] = zone
    if end:
        query["EndTime"] = end
    where = f" in {zone}" if zone and end else ""  # one instance's run: its type and zone
    with aws_errors(f"Read the spot price history of {', '.join(types)}{where}"):
        pages = paginated_query_with_retries(ec2, "describe_spot_price_history", **query)
    return pages.get("SpotPriceHistory", [])


def image(ec2, image_id: str) -> Optional[Dict[str, Any]]:
    with aws_errors(f"Read image {image_id}"):
        return _first(describe_images(ec2, ImageIds=[image_id]))


def launch_template_data(ec2, template: Mapping[str, Any]) -> Dict[str, Any]:
    """LaunchTemplateData of the template version `template` names (id or name, version)."""
    ref = ({"LaunchTemplateId": template["id"]} if template.get("id")
           else {"LaunchTemplateName": template["name"]})
    with aws_errors(f"Read launch template {template.get('id') or template.get('name')}"):
        versions = ec2.describe_launch_template_versions(
            Versions=[template["version"]], aws_retry=True, **ref)["LaunchTemplateVersions"]
    return (versions[0] if versions else {}).get("LaunchTemplateData") or {}
