# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""Pure decisions behind ebs_volume_attachment: what to do with a session's volume given
what AWS says about it and about the instance, and where the disk shows up on the host.

The module reads, calls plan_attach / plan_detach, and carries out the plan. A plan that
cannot be carried out raises PlanError with the message the user sees, before any change.
"""

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.rlops.fleet.plugins.module_utils.aws_common import (
    ROLE_TAG,
    tag_dict,
    tag_specifications,
    tags_error,
)
from ansible_collections.rlops.fleet.plugins.module_utils.session_checks import (
    session_id_error,
)

LIVE_ATTACHMENT_STATES = ("attaching", "attached", "busy", "detaching")
GONE_INSTANCE_STATES = ("shutting-down", "terminated")
UNUSABLE_VOLUME_STATES = ("deleting", "deleted", "error")
# Linux block device names EC2 accepts for data volumes: /dev/sd[f-p] is the documented
# range; the wider pattern lets users follow their AMI's own convention.
DEVICE_RE = re.compile(r"^/dev/(?:sd|xvd)([b-z][a-z]?)$")
NVME_BY_ID = "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_"
IOPS_TYPES = ("gp3", "io1", "io2")


class PlanError(Exception):
    """The request cannot be carried out; the message says what, which and why."""


@dataclass
class AttachPlan:
    volume_id: Optional[str]
    instance_id: Optional[str]
    device_name: str
    create_zone: Optional[str] = None  # set when a volume has to be created there
    wait_available: bool = False  # the found volume is still `creating`
    wait_detached: List[str] = field(default_factory=list)  # instances whose attachment clears
    force_detach: List[Tuple[str, str]] = field(default_factory=list)  # (instance, device)
    attach: bool = False
    wait_attached: bool = False  # attach issued (now or by an earlier run), not yet attached

    @property
    def changed(self) -> bool:
        return bool(self.create_zone or self.force_detach or self.attach)

    def actions(self) -> List[str]:
        """What the plan does, in order, for the result and for check mode."""
        volume = self.volume_id or "a new volume"
        steps = []
        if self.create_zone:
            steps.append(f"create {volume} in {self.create_zone}")
        if self.wait_available:
            steps.append(f"wait until {volume} is available")
        steps.extend(f"wait until {volume} is released by {i}" for i in self.wait_detached)
        steps.extend(
            f"force-detach {volume} from {i} ({d})" for i, d in self.force_detach)
        if self.attach:
            steps.append(f"attach {volume} to {self.instance_id} at {self.device_name}")
        if self.attach or self.wait_attached:
            steps.append("wait until the attachment is attached")
        return steps


@dataclass
class DetachPlan:
    volume_id: Optional[str]
    detach: List[Tuple[str, str]] = field(default_factory=list)  # (instance, device)
    wait_detached: List[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.detach)

    def actions(self) -> List[str]:
        steps = [f"detach {self.volume_id} from {i} ({d})" for i, d in self.detach]
        waits = [i for i, _d in self.detach] + self.wait_detached
        steps.extend(f"wait until {self.volume_id} is released by {i}" for i in waits)
        return steps


def device_name_error(device_name: str) -> Optional[str]:
    if not DEVICE_RE.match(device_name or ""):
        return (
            f"device_name {device_name!r} is not a Linux EBS device name: use /dev/sdf to /dev/sdp "
            "(or /dev/xvdf to /dev/xvdp)"
        )
    return None


def _device_key(device_name: Optional[str]) -> str:
    """/dev/sdf, /dev/xvdf and sdf name the same slot on an instance."""
    name = (device_name or "").rsplit("/", 1)[-1]
    return "sd" + name[3:] if name.startswith("xvd") else name


def same_device(a: Optional[str], b: Optional[str]) -> bool:
    return bool(a) and bool(b) and _device_key(a) == _device_key(b)


def host_device_candidates(
    volume_id: Optional[str], device_name: str, hypervisor: Optional[str]
) -> List[str]:
    """Where the attached volume appears on the host, most likely first.

    Nitro instances expose EBS as NVMe; udev names it by the volume id (the serial, without
    the dash). Xen instances rename /dev/sdX to /dev/xvdX. When the hypervisor is unknown,
    both kinds are listed; the volume_mount role takes the first that exists.
    """
    nvme = [NVME_BY_ID + volume_id.replace("-", "")] if volume_id else []
    suffix = _device_key(device_name)[2:]
    xen = ["/dev/xvd" + suffix, "/dev/sd" + suffix] if suffix else []
    if hypervisor == "nitro":
        return nvme
    if hypervisor == "xen":
        return xen
    return nvme + xen


def live_attachments(volume: Optional[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """Attachments that hold the volume; a missing State (moto) counts as attached."""
    result = []
    for attachment in (volume or {}).get("Attachments") or []:
        if attachment.get("State", "attached") in LIVE_ATTACHMENT_STATES:
            result.append(dict(attachment))
    return result


def instance_zone(instance: Optional[Mapping[str, Any]]) -> Optional[str]:
    return ((instance or {}).get("Placement") or {}).get("AvailabilityZone")


def instance_state(instance: Optional[Mapping[str, Any]]) -> Optional[str]:
    return ((instance or {}).get("State") or {}).get("Name")


def plan_attach(
    volume: Optional[Mapping[str, Any]],
    instance: Optional[Mapping[str, Any]],
    device_name: str,
    force_detach: bool = False,
    holder_states: Optional[Mapping[str, Optional[str]]] = None,
    zone: Optional[str] = None,
    size: Optional[int] = None,
    session: Optional[str] = None,
) -> AttachPlan:
    """Decide how to get `volume` (None: create one) attached to `instance` at `device_name`.

    `holder_states` maps the other instances holding the volume to their state name (None
    when AWS no longer knows them). `zone` is the requested availability zone, `size` what
    a new volume gets. Without an instance the plan only finds or creates the volume.
    """
    holder_states = holder_states or {}
    volume_id = (volume or {}).get("VolumeId")
    instance_id = (instance or {}).get("InstanceId")
    shown = volume_id or "(new)"
    what = (f"Attach volume {shown} to {instance_id} at {device_name}" if instance
            else f"Prepare volume {shown}")
    plan = AttachPlan(volume_id, instance_id, device_name)

    vm_zone = instance_zone(instance)
    if instance:
        state = instance_state(instance)
        if state in GONE_INSTANCE_STATES:
            raise PlanError(f"{what}: the instance is {state}")
        if zone and vm_zone and zone != vm_zone:
            raise PlanError(
                f"{what}: availability_zone is {zone} but the instance runs in {vm_zone}")

    if volume is None:
        if size is None:
            for_session = f" for session {session}" if session else ""
            raise PlanError(
                f"{what}: no volume found{for_session} and size is not set, so none can be created")
        plan.create_zone = vm_zone or zone
        if not plan.create_zone:
            raise PlanError(
                f"{what}: give instance_id or availability_zone to create the volume in")
        plan.attach = bool(instance)
        return plan

    volume_state = volume.get("State")
    if volume_state in UNUSABLE_VOLUME_STATES:
        raise PlanError(f"{what}: the volume is {volume_state}")
    plan.wait_available = volume_state == "creating"
    volume_zone = volume.get("AvailabilityZone")
    if instance and volume_zone and vm_zone and volume_zone != vm_zone:
        raise PlanError(f"{what}: volume is in {volume_zone}, instance in {vm_zone}; "
                        f"resume in {volume_zone}")
    if not instance:
        if zone and volume_zone and zone != volume_zone:
            raise PlanError(f"{what}: the volume is in {volume_zone}, not in {zone}")
        return plan

    attachments = live_attachments(volume)
    mine = [a for a in attachments if a.get("InstanceId") == instance_id]
    for attachment in attachments:
        holder = attachment.get("InstanceId")
        if holder == instance_id:
            continue
        holder_state = holder_states.get(holder)
        if attachment.get("State") == "detaching" or holder_state in GONE_INSTANCE_STATES \
                or (holder in holder_states and holder_state is None):
            plan.wait_detached.append(holder)
        elif force_detach:
            plan.force_detach.append((holder, attachment.get("Device") or ""))
        else:
            raise PlanError(
                f"{what}: volume is attached to {holder} ({holder_state or 'state unknown'}); "
                "stop the session there, or set force_detach: true")

    if mine and mine[0].get("State", "attached") != "detaching":
        # Already ours: keep the device it has, even if another was asked for.
        plan.device_name = mine[0].get("Device") or device_name
        plan.wait_attached = mine[0].get("State", "attached") != "attached"
        return plan
    if mine:
        plan.wait_detached.append(instance_id)

    for mapping in (instance or {}).get("BlockDeviceMappings") or []:
        held_by = (mapping.get("Ebs") or {}).get("VolumeId")
        if same_device(mapping.get("DeviceName"), device_name) and held_by != volume_id:
            raise PlanError(f"{what}: {mapping.get('DeviceName')} already holds {held_by} on "
                            "that instance; choose another device_name")
    plan.attach = True
    return plan


def plan_detach(volume: Optional[Mapping[str, Any]], instance_id: Optional[str] = None
                ) -> DetachPlan:
    """Detach the volume from `instance_id`, or from every instance when None."""
    plan = DetachPlan((volume or {}).get("VolumeId"))
    for attachment in live_attachments(volume):
        holder = attachment.get("InstanceId")
        if instance_id and holder != instance_id:
            continue
        if attachment.get("State") == "detaching":
            plan.wait_detached.append(holder)
        else:
            plan.detach.append((holder, attachment.get("Device") or ""))
    return plan


def pick_session_volume(volumes: Sequence[Mapping[str, Any]], session: str
                        ) -> Optional[Mapping[str, Any]]:
    """The one usable volume tagged for the session; more than one is an error."""
    usable = [v for v in volumes if v.get("State") not in UNUSABLE_VOLUME_STATES]
    if len(usable) > 1:
        ids = ", ".join(sorted(v.get("VolumeId", "?") for v in usable))
        raise PlanError(
            f"Find the volume of session {session}: {len(usable)} volumes carry its tag "
            f"({ids}); pass volume_id to choose one")
    return usable[0] if usable else None


def params_error(params: Mapping[str, Any]) -> str:
    """The first problem found without calling AWS, or ''."""
    problems = [tags_error(params["tags"])]
    if params["session"]:
        problems.append(session_id_error(params["session"]))
    if params["state"] == "present":
        problems.append(device_name_error(params["device_name"]))
        kind = params["volume_type"]
        if params["size"] is not None and params["size"] < 1:
            problems.append("size must be at least 1 GiB")
        if params["iops"] is not None and kind not in IOPS_TYPES:
            problems.append(f"iops applies to gp3, io1 and io2 volumes, not {kind}")
        if params["iops"] is None and kind in ("io1", "io2"):
            problems.append(f"volume_type {kind} needs iops")
        if params["throughput"] is not None and kind != "gp3":
            problems.append(f"throughput applies to gp3 volumes only, not {kind}")
    problems = [p for p in problems if p]
    return problems[0] if problems else ""


def create_request(params: Mapping[str, Any], zone: str, tags: Mapping[str, str]
                   ) -> Dict[str, Any]:
    """CreateVolume parameters of the session's new volume: always encrypted."""
    request = {"AvailabilityZone": zone, "Size": params["size"],
               "VolumeType": params["volume_type"], "Encrypted": True,
               "TagSpecifications": tag_specifications(tags, ["volume"])}
    for key, name in (("iops", "Iops"), ("throughput", "Throughput"),
                      ("kms_key_id", "KmsKeyId")):
        if params[key] is not None:
            request[name] = params[key]
    return request


def missing_tags(volume: Optional[Mapping[str, Any]], wanted: Mapping[str, str],
                 session: Optional[str]) -> Dict[str, str]:
    """Tags to add to a found volume: never relabel a volume someone else labelled (its
    role), nor rename it."""
    if volume is None:
        return {}
    have = tag_dict(volume)
    wanted = dict(wanted)
    if have.get(ROLE_TAG) or not session:
        wanted.pop(ROLE_TAG, None)
    if "Name" in have:
        wanted.pop("Name", None)
    return {k: v for k, v in wanted.items() if have.get(k) != v}


def volume_summary(volume: Optional[Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
    if not volume:
        return None
    return {"size": volume.get("Size"), "volume_type": volume.get("VolumeType"),
            "iops": volume.get("Iops"), "throughput": volume.get("Throughput"),
            "encrypted": volume.get("Encrypted"), "state": volume.get("State"),
            "tags": tag_dict(volume)}


def attachment_to(volume: Optional[Mapping[str, Any]], instance_id: Optional[str]
                  ) -> Optional[Dict[str, Any]]:
    """The live attachment of `volume` to `instance_id`, or None."""
    for attachment in live_attachments(volume):
        if attachment.get("InstanceId") == instance_id:
            return attachment
    return None


def is_attached(attachment: Optional[Mapping[str, Any]]) -> bool:
    """Attached, not attaching; a missing State (moto) counts as attached."""
    return attachment is not None and attachment.get("State", "attached") == "attached"


def attachment_snapshot(volume: Optional[Mapping[str, Any]], instance_id: Optional[str]
                        ) -> Dict[str, Any]:
    """The attachment as --diff shows it."""
    mine = attachment_to(volume, instance_id) if volume and instance_id else None
    return {"volume_id": (volume or {}).get("VolumeId"),
            "attached_to": [a.get("InstanceId") for a in live_attachments(volume)],
            "device_name": (mine or {}).get("Device")}


def holders_text(volume: Optional[Mapping[str, Any]]) -> str:
    """Who holds the volume, for a timeout message."""
    return ", ".join(f"{a.get('InstanceId')} ({a.get('State', 'attached')})"
                     for a in live_attachments(volume)) or "none"
