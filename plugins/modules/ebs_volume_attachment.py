#!/usr/bin/python
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)

DOCUMENTATION = r"""
---
module: ebs_volume_attachment
short_description: Keep a training session's EBS volume attached to its instance
version_added: 0.1.0
description:
  - Finds the session's data volume by its C(rlops:session) tag (or by O(volume_id)),
    creates it when there is none (encrypted, gp3 by default) in the instance's zone, and
    attaches it to O(instance_id) at O(device_name).
  - Waits until the attachment itself is C(attached), which is what the host needs before it
    can mount the disk (the volume's C(in-use) state comes earlier).
  - A volume in another zone than the instance is refused before anything changes, with
    the zone to resume in. A volume still attached to a terminated or shutting-down instance
    (an interrupted spot instance) is waited for until EC2 releases it. A volume attached to
    an instance that still runs is refused unless O(force_detach=true).
  - Returns the device name EC2 reports and where the disk appears on the host
    (RV(host_device_candidates)) - on Nitro instances an NVMe device named after the volume
    id, on Xen instances C(/dev/xvdX) for C(/dev/sdX).
  - With O(state=absent), detaches the volume and waits until it is released. The volume is
    never deleted, and the module has no option to delete it; delete a session's volume
    with M(amazon.aws.ec2_vol) once its results are retrieved.
  - Root volumes of the session's instances (tagged C(rlops:role=root) by
    M(rlops.fleet.ec2_spot_request)) are never taken for the data volume.
author:
  - rlops.fleet developers (!UNKNOWN)
attributes:
  check_mode:
    description: Can run in check mode and report what would change without changing it.
    support: full
    details:
      - RV(actions) lists the steps that would be taken; the other values describe the
        predicted outcome.
  diff_mode:
    description: Reports the attachment before and after when run with C(--diff).
    support: full
  idempotent:
    description: A second run with the same arguments reports no change.
    support: full
options:
  state:
    description:
      - V(present) finds or creates the volume and, with O(instance_id), attaches it.
      - V(absent) detaches the volume (from O(instance_id) only, when given). It never
        deletes the volume.
    type: str
    choices: [present, absent]
    default: present
  session:
    description:
      - The training session id. The volume is found by the C(rlops:session) tag, and a new
        volume gets it. Give this, O(volume_id), or both.
    type: str
  volume_id:
    description:
      - The volume to use. When O(session) is given too, the volume must not belong to
        another session, and it gets the session tag if it lacks it.
    type: str
  instance_id:
    description:
      - The instance to attach the volume to. Without it, O(state=present) only finds or
        creates the volume.
    type: str
  availability_zone:
    description:
      - Zone for a new volume when no O(instance_id) is given. With an instance, it must be
        the instance's zone.
    type: str
  device_name:
    description:
      - Device name to attach at, as EC2 names it. Refused when another volume holds that
        device on the instance. A volume already attached to the instance keeps its device.
    type: str
    default: /dev/sdf
  size:
    description:
      - Size in GiB of a new volume. Required when no volume exists yet; never changes an
        existing volume.
    type: int
  volume_type:
    description: Type of a new volume.
    type: str
    choices: [gp3, gp2, io1, io2, st1, sc1]
    default: gp3
  iops:
    description: Provisioned IOPS of a new gp3, io1 or io2 volume (required for io1 and io2).
    type: int
  throughput:
    description: Throughput in MiB/s of a new gp3 volume.
    type: int
  kms_key_id:
    description: KMS key for the encryption of a new volume. Defaults to the account's EBS key.
    type: str
  tags:
    description:
      - Extra tags for a new volume; set on a found volume where they differ.
        C(rlops:session) and C(rlops:role=data) are set by the module; a C(Name) of
        C(rlops-<session>-data) is added unless given.
    type: dict
    default: {}
  force_detach:
    description:
      - Detach the volume from another instance that still runs (EC2 C(Force) detach, which
        can lose data that instance has not written yet), and, with O(state=absent), force
        the detach.
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait for each step (volume created, released, attached, detached).
    type: int
    default: 300
    aliases: [timeout]
  poll_interval:
    description: Seconds between two reads while waiting.
    type: float
    default: 3
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
seealso:
  - module: rlops.fleet.ec2_spot_request
  - module: amazon.aws.ec2_vol
"""

EXAMPLES = r"""
- name: Attach the session's volume (created on the first run)
  rlops.fleet.ebs_volume_attachment:
    session: "{{ rlops_session }}"
    instance_id: "{{ spot.instance_id }}"
    size: 200
    throughput: 250
  register: volume

# In a later play, on the training host:
- name: Mount the session's volume
  ansible.builtin.include_role:
    name: rlops.fleet.volume_mount
  vars:
    volume_mount_source: ebs
    volume_mount_ebs_volume_id: "{{ hostvars['localhost'].volume.volume_id }}"
    volume_mount_ebs_device_name: "{{ hostvars['localhost'].volume.device_name }}"

- name: Resume after a spot interruption (waits until the old instance lets go)
  rlops.fleet.ebs_volume_attachment:
    session: "{{ rlops_session }}"
    instance_id: "{{ new_spot.instance_id }}"
    wait_timeout: 600

- name: Detach the volume and keep it
  rlops.fleet.ebs_volume_attachment:
    session: "{{ rlops_session }}"
    state: absent
"""

RETURN = r"""
volume_id:
  description: The volume; null in check mode when it would be created.
  returned: success, unless no volume exists with O(state=absent)
  type: str
  sample: vol-0123456789abcdef0
instance_id:
  description: The instance the volume is attached to (O(state=present)) or was detached from.
  returned: success
  type: str
  sample: i-0123456789abcdef0
availability_zone:
  description: Zone of the volume.
  returned: success
  type: str
  sample: us-east-1b
device_name:
  description: Device name of the attachment as EC2 reports it.
  returned: state=present with an instance
  type: str
  sample: /dev/sdf
host_device_candidates:
  description:
    - Paths where the disk appears on the host, most likely first. Nitro -
      C(/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123...); Xen - C(/dev/xvdf),
      C(/dev/sdf). Both kinds when the instance type's hypervisor is unknown.
  returned: state=present with an instance
  type: list
  elements: str
  sample: [/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0]
created:
  description: Whether the volume was (or, in check mode, would be) created.
  returned: state=present
  type: bool
attached:
  description: Whether the volume is (or would be) attached to the instance.
  returned: success
  type: bool
actions:
  description: Steps taken (or, in check mode, to be taken), in order.
  returned: success
  type: list
  elements: str
  sample: ["create a new volume in us-east-1b", "attach vol-0123 to i-0abc at /dev/sdf",
           "wait until the attachment is attached"]
volume:
  description: The volume as read at the end.
  returned: when a volume exists
  type: dict
  contains:
    size:
      description: Size in GiB.
      type: int
    volume_type:
      description: Volume type.
      type: str
    iops:
      description: IOPS.
      type: int
    throughput:
      description: Throughput in MiB/s.
      type: int
    encrypted:
      description: Whether the volume is encrypted.
      type: bool
    state:
      description: Volume state.
      type: str
    tags:
      description: Tags of the volume.
      type: dict
"""

from ansible_collections.amazon.aws.plugins.module_utils.modules import (  # noqa: E402
    AnsibleAWSModule,
)
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry  # noqa: E402
from ansible_collections.rlops.fleet.plugins.module_utils.aws_common import (  # noqa: E402
    ROLE_TAG,
    SESSION_TAG,
    FleetAWSError,
    aws_errors,
    fail_module,
    session_filter,
    session_tags,
    tag_dict,
    tag_specifications,
    tags_error,
)
from ansible_collections.rlops.fleet.plugins.module_utils.aws_ebs import (  # noqa: E402
    PlanError,
    device_name_error,
    host_device_candidates,
    instance_state,
    live_attachments,
    pick_session_volume,
    plan_attach,
    plan_detach,
)
from ansible_collections.rlops.fleet.plugins.module_utils.aws_wait import (  # noqa: E402
    WaitTimeout,
    describe_or_none,
    wait_for,
)
from ansible_collections.rlops.fleet.plugins.module_utils.session_checks import (  # noqa: E402
    session_id_error,
)

IOPS_TYPES = ("gp3", "io1", "io2")


def params_error(params):
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


def volume_summary(volume):
    if not volume:
        return None
    return {"size": volume.get("Size"), "volume_type": volume.get("VolumeType"),
            "iops": volume.get("Iops"), "throughput": volume.get("Throughput"),
            "encrypted": volume.get("Encrypted"), "state": volume.get("State"),
            "tags": tag_dict(volume)}


def attachment_to(volume, instance_id):
    """The live attachment of `volume` to `instance_id`, or None."""
    for attachment in live_attachments(volume):
        if attachment.get("InstanceId") == instance_id:
            return attachment
    return None


class VolumeAttachment:
    """Read, plan, apply for one session's volume. Methods raise; main() exits."""

    def __init__(self, module, ec2):
        self.module = module
        self.ec2 = ec2
        self.params = module.params
        self.session = self.params["session"]
        name = f"rlops-{self.session}-data" if self.session else None
        self.tags = dict(session_tags(self.session, self.params["tags"], name),
                         **{ROLE_TAG: "data"})

    # ---- reads -----------------------------------------------------------------------

    def describe_volume(self, volume_id):
        def call():
            found = self.ec2.describe_volumes(VolumeIds=[volume_id], aws_retry=True)["Volumes"]
            return found[0] if found else None

        with aws_errors(f"Read volume {volume_id}"):
            return describe_or_none(call, ("InvalidVolume.NotFound",))

    def describe_instance(self, instance_id):
        def call():
            reservations = self.ec2.describe_instances(
                InstanceIds=[instance_id], aws_retry=True)["Reservations"]
            found = [i for r in reservations for i in r.get("Instances", [])]
            return found[0] if found else None

        with aws_errors(f"Read instance {instance_id}"):
            return describe_or_none(call, ("InvalidInstanceID.NotFound",))

    def find_volume(self):
        volume_id = self.params["volume_id"]
        if volume_id:
            volume = self.describe_volume(volume_id)
            if volume is None:
                raise FleetAWSError(f"Find volume {volume_id}: it does not exist in "
                                    f"{self.module.region}")
            owner = tag_dict(volume).get(SESSION_TAG)
            if self.session and owner and owner != self.session:
                raise FleetAWSError(f"Use volume {volume_id} for session {self.session}: it "
                                    f"belongs to session {owner}")
            return volume
        with aws_errors(f"Find the volume of session {self.session}"):
            pages = self.ec2.get_paginator("describe_volumes").paginate(
                Filters=[session_filter(self.session)]).build_full_result()
        candidates = [v for v in pages.get("Volumes", [])
                      if tag_dict(v).get(ROLE_TAG) != "root"]
        return pick_session_volume(candidates, self.session)

    def instance(self):
        instance_id = self.params["instance_id"]
        if not instance_id:
            return None
        instance = self.describe_instance(instance_id)
        if instance is None:
            raise FleetAWSError(f"Attach a volume to {instance_id}: the instance does not exist "
                                f"in {self.module.region}")
        return instance

    def holder_states(self, volume, instance_id):
        """State of every other instance holding the volume; None when EC2 forgot it."""
        states = {}
        for attachment in live_attachments(volume):
            holder = attachment.get("InstanceId")
            if holder and holder != instance_id:
                states[holder] = instance_state(self.describe_instance(holder))
        return states

    def hypervisor(self, instance):
        """nitro, xen, or None when unknown. Only used to order device paths, so a failed
        lookup (permissions, a stand-in API) falls back to listing both kinds."""
        kind = (instance or {}).get("InstanceType")
        if not kind:
            return None
        try:
            with aws_errors(f"Read instance type {kind}"):
                types = self.ec2.describe_instance_types(
                    InstanceTypes=[kind], aws_retry=True)["InstanceTypes"]
        except FleetAWSError as err:
            self.module.warn(f"{err.message}: {err.exception or ''}; listing both NVMe and Xen "
                             "device paths")
            return None
        return (types[0] if types else {}).get("Hypervisor")

    def missing_tags(self, volume):
        if volume is None:
            return {}
        have = tag_dict(volume)
        wanted = dict(self.tags)
        if have.get(ROLE_TAG) or not self.session:
            wanted.pop(ROLE_TAG, None)  # never relabel a volume someone else labelled
        if "Name" in have:
            wanted.pop("Name", None)
        return {k: v for k, v in wanted.items() if have.get(k) != v}

    # ---- waits -----------------------------------------------------------------------

    def wait_volume(self, volume_id, done, what):
        try:
            volume, _elapsed = wait_for(lambda: self.describe_volume(volume_id), done,
                                        self.params["wait_timeout"],
                                        self.params["poll_interval"])
        except WaitTimeout as exc:
            state = (exc.last or {}).get("State", "gone")
            holders = ", ".join(f"{a.get('InstanceId')} ({a.get('State', 'attached')})"
                                for a in live_attachments(exc.last)) or "none"
            raise FleetAWSError(f"{what}: still not done after {exc.elapsed:.0f}s (volume "
                                f"{state}, attachments: {holders})") from exc
        return volume

    def wait_available(self, volume_id, what):
        def done(volume):
            if volume and volume.get("State") == "error":
                raise FleetAWSError(f"{what}: volume {volume_id} went into the error state")
            return bool(volume) and volume.get("State") == "available"

        return self.wait_volume(volume_id, done, f"{what}: wait until {volume_id} is available")

    def wait_released(self, volume_id, instance_id, what):
        return self.wait_volume(
            volume_id, lambda v: v is not None and attachment_to(v, instance_id) is None,
            f"{what}: wait until {instance_id} releases {volume_id}")

    def wait_attached(self, volume_id, instance_id, what):
        def done(volume):
            attachment = attachment_to(volume, instance_id)
            # Missing right after attach_volume (eventual consistency): keep waiting.
            return attachment is not None and attachment.get("State", "attached") == "attached"

        return self.wait_volume(volume_id, done, f"{what}: wait until the attachment is "
                                                 "attached")

    def wait_instance_usable(self, instance, what):
        """EC2 refuses to attach to a pending instance."""
        instance_id = instance["InstanceId"]

        def done(current):
            state = instance_state(current)
            if state in ("shutting-down", "terminated"):
                raise FleetAWSError(f"{what}: instance {instance_id} is {state}")
            return state not in (None, "pending")

        try:
            wait_for(lambda: self.describe_instance(instance_id), done,
                     self.params["wait_timeout"], self.params["poll_interval"])
        except WaitTimeout as exc:
            raise FleetAWSError(f"{what}: instance {instance_id} is still pending after "
                                f"{exc.elapsed:.0f}s") from exc

    # ---- states ----------------------------------------------------------------------

    def present(self):
        volume = self.find_volume()
        instance = self.instance()
        instance_id = (instance or {}).get("InstanceId")
        try:
            plan = plan_attach(volume, instance, self.params["device_name"],
                               force_detach=self.params["force_detach"],
                               holder_states=self.holder_states(volume, instance_id),
                               zone=self.params["availability_zone"], size=self.params["size"],
                               session=self.session)
        except PlanError as err:
            raise FleetAWSError(str(err)) from err
        tags_to_add = self.missing_tags(volume)
        actions = plan.actions()
        if tags_to_add:
            actions.insert(0, f"tag {plan.volume_id} with {', '.join(sorted(tags_to_add))}")
        changed = plan.changed or bool(tags_to_add)
        before = self.snapshot(volume, instance_id)

        if not self.module.check_mode:
            volume = self.apply(plan, volume, instance, tags_to_add)
        result = {"changed": changed, "actions": actions,
                  "created": plan.create_zone is not None, "instance_id": instance_id}
        if volume is not None:
            volume = self.describe_volume(volume["VolumeId"]) or volume
        result.update(self.describe_result(volume, instance, plan))
        if self.module._diff:
            result["diff"] = {"before": before, "after": {
                "volume_id": result["volume_id"],
                "attached_to": [instance_id] if result["attached"] else [],
                "device_name": result.get("device_name")}}
        return result

    def apply(self, plan, volume, instance, tags_to_add):
        instance_id = plan.instance_id
        what = (f"Attach the volume of session {self.session or plan.volume_id} to {instance_id}"
                if instance_id else f"Prepare the volume of session {self.session}")
        if plan.create_zone:
            volume = self.create(plan.create_zone, what)
        elif plan.wait_available:
            volume = self.wait_available(volume["VolumeId"], what)
        volume_id = volume["VolumeId"]
        what = (f"Attach volume {volume_id} to {instance_id} at {plan.device_name}"
                if instance_id else f"Prepare volume {volume_id}")
        if tags_to_add:
            with aws_errors(f"{what}: tag the volume"):
                self.ec2.create_tags(Resources=[volume_id], aws_retry=True,
                                     Tags=[{"Key": k, "Value": v}
                                           for k, v in sorted(tags_to_add.items())])
        for holder, device in plan.force_detach:
            with aws_errors(f"{what}: force-detach it from {holder}"):
                detach = {"VolumeId": volume_id, "InstanceId": holder, "Force": True}
                if device:
                    detach["Device"] = device
                self.ec2.detach_volume(**detach)
        for holder in plan.wait_detached + [h for h, _d in plan.force_detach]:
            volume = self.wait_released(volume_id, holder, what)
        if plan.attach:
            if instance_state(instance) == "pending":
                self.wait_instance_usable(instance, what)
            with aws_errors(what):
                self.ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id,
                                       Device=plan.device_name)
        if plan.attach or plan.wait_attached:
            volume = self.wait_attached(volume_id, instance_id, what)
        return volume

    def create(self, zone, what):
        p = self.params
        request = {"AvailabilityZone": zone, "Size": p["size"], "VolumeType": p["volume_type"],
                   "Encrypted": True,
                   "TagSpecifications": tag_specifications(self.tags, ["volume"])}
        for key, name in (("iops", "Iops"), ("throughput", "Throughput"),
                          ("kms_key_id", "KmsKeyId")):
            if p[key] is not None:
                request[name] = p[key]
        with aws_errors(f"{what}: create a {p['size']} GiB {p['volume_type']} volume in "
                        f"{zone}"):
            created = self.ec2.create_volume(**request)
        return self.wait_available(created["VolumeId"], what)

    def absent(self):
        volume = self.find_volume()
        instance_id = self.params["instance_id"]
        if volume is None:
            return {"changed": False, "volume_id": None, "instance_id": instance_id,
                    "attached": False, "actions": []}
        plan = plan_detach(volume, instance_id)
        volume_id = volume["VolumeId"]
        before = self.snapshot(volume, instance_id)
        if not self.module.check_mode:
            for holder, device in plan.detach:
                what = f"Detach volume {volume_id} from {holder}"
                with aws_errors(what):
                    # Always with InstanceId: it is what EC2 needs for multi-attach volumes
                    # and what moto needs at all.
                    detach = {"VolumeId": volume_id, "InstanceId": holder,
                              "Force": self.params["force_detach"]}
                    if device:
                        detach["Device"] = device
                    self.ec2.detach_volume(**detach)
            for holder in [h for h, _d in plan.detach] + plan.wait_detached:
                volume = self.wait_released(volume_id, holder, f"Detach volume {volume_id}")
            volume = self.describe_volume(volume_id) or volume
        holders = [h for h, _d in plan.detach] + plan.wait_detached
        still = [a.get("InstanceId") for a in live_attachments(volume)]
        if self.module.check_mode:  # predicted: the planned detaches are done
            still = [h for h in still if h not in holders]
        result = {"changed": plan.changed, "volume_id": volume_id,
                  "instance_id": instance_id or (holders[0] if holders else None),
                  "availability_zone": volume.get("AvailabilityZone"),
                  "attached": bool(still if not instance_id else instance_id in still),
                  "actions": plan.actions(), "volume": volume_summary(volume)}
        if self.module._diff:
            result["diff"] = {"before": before, "after": {
                "volume_id": volume_id, "attached_to": still,
                "device_name": before.get("device_name") if still else None}}
        return result

    # ---- results ---------------------------------------------------------------------

    def describe_result(self, volume, instance, plan):
        instance_id = plan.instance_id
        volume_id = (volume or {}).get("VolumeId")
        result = {"volume_id": volume_id, "volume": volume_summary(volume),
                  "availability_zone": (volume or {}).get("AvailabilityZone")
                  or plan.create_zone}
        if not instance_id:
            result["attached"] = False
            return result
        attachment = attachment_to(volume, instance_id) if volume else None
        # In check mode the plan's outcome is predicted: it ends attached, or it failed.
        result["attached"] = self.module.check_mode or (
            attachment is not None and attachment.get("State", "attached") == "attached")
        device = (attachment or {}).get("Device") or plan.device_name
        result["device_name"] = device
        result["host_device_candidates"] = host_device_candidates(
            volume_id, device, self.hypervisor(instance))
        return result

    @staticmethod
    def snapshot(volume, instance_id):
        attachments = live_attachments(volume)
        mine = attachment_to(volume, instance_id) if volume and instance_id else None
        return {"volume_id": (volume or {}).get("VolumeId"),
                "attached_to": [a.get("InstanceId") for a in attachments],
                "device_name": (mine or {}).get("Device")}


def main():
    argument_spec = dict(
        state=dict(type="str", choices=["present", "absent"], default="present"),
        session=dict(type="str"),
        volume_id=dict(type="str"),
        instance_id=dict(type="str"),
        availability_zone=dict(type="str"),
        device_name=dict(type="str", default="/dev/sdf"),
        size=dict(type="int"),
        volume_type=dict(type="str", choices=["gp3", "gp2", "io1", "io2", "st1", "sc1"],
                         default="gp3"),
        iops=dict(type="int"),
        throughput=dict(type="int"),
        kms_key_id=dict(type="str", no_log=False),
        tags=dict(type="dict", default={}),
        force_detach=dict(type="bool", default=False),
        wait_timeout=dict(type="int", default=300, aliases=["timeout"]),
        poll_interval=dict(type="float", default=3),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec,
                              required_one_of=[["session", "volume_id"]],
                              supports_check_mode=True)
    problem = params_error(module.params)
    if problem:
        which = module.params["volume_id"] or f"session {module.params['session']}"
        module.fail_json(msg=f"ebs_volume_attachment for {which}: {problem}")
    ec2 = module.client("ec2", retry_decorator=AWSRetry.jittered_backoff(retries=5))
    manager = VolumeAttachment(module, ec2)
    try:
        result = manager.present() if module.params["state"] == "present" else manager.absent()
    except FleetAWSError as err:
        fail_module(module, err)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
