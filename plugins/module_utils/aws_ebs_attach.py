# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""The I/O shell of ebs_volume_attachment: read (ec2_read), plan (aws_ebs), act, wait
(aws_wait). Methods raise FleetAWSError; the module's main() turns that into its one
failure."""

from ansible_collections.rlops.fleet.plugins.module_utils import ec2_read
from ansible_collections.rlops.fleet.plugins.module_utils.aws_common import (
    ROLE_TAG,
    SESSION_TAG,
    FleetAWSError,
    SessionResource,
    aws_errors,
    session_tags,
    tag_dict,
)
from ansible_collections.rlops.fleet.plugins.module_utils.aws_ebs import (
    PlanError,
    attachment_snapshot,
    attachment_to,
    create_request,
    holders_text,
    host_device_candidates,
    instance_state,
    is_attached,
    live_attachments,
    missing_tags,
    pick_session_volume,
    plan_attach,
    plan_detach,
    volume_summary,
)
from ansible_collections.rlops.fleet.plugins.module_utils.aws_wait import wait_until

# ebs_volume_attachment's options (aws_session_plan runs the same request in check mode).
ARGUMENT_SPEC = dict(
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


class VolumeAttachment(SessionResource):
    """Read, plan, apply for one session's volume: present() and absent()."""

    def __init__(self, module, ec2):
        super().__init__(module, ec2)
        name = f"rlops-{self.session}-data" if self.session else None
        self.tags = dict(session_tags(self.session, self.params["tags"], name),
                         **{ROLE_TAG: "data"})

    # ---- reads -----------------------------------------------------------------------

    def find_volume(self):
        volume_id = self.params["volume_id"]
        if volume_id:
            volume = ec2_read.volume(self.ec2, volume_id)
            if volume is None:
                raise FleetAWSError(f"Find volume {volume_id}: it does not exist in "
                                    f"{self.module.region}")
            owner = tag_dict(volume).get(SESSION_TAG)
            if self.session and owner and owner != self.session:
                raise FleetAWSError(f"Use volume {volume_id} for session {self.session}: it "
                                    f"belongs to session {owner}")
            return volume
        found = ec2_read.session_volumes(self.ec2, self.session,
                                         f"Find the volume of session {self.session}")
        try:
            return pick_session_volume(
                [v for v in found if tag_dict(v).get(ROLE_TAG) != "root"], self.session)
        except PlanError as err:
            raise FleetAWSError(str(err)) from err

    def instance(self):
        instance_id = self.params["instance_id"]
        if not instance_id:
            return None
        instance = ec2_read.instance(self.ec2, instance_id)
        if instance is None:
            raise FleetAWSError(f"Attach a volume to {instance_id}: the instance does not exist "
                                f"in {self.module.region}")
        return instance

    def holder_states(self, volume, instance_id):
        """State of every other instance holding the volume; None when EC2 forgot it."""
        holders = [a.get("InstanceId") for a in live_attachments(volume)]
        return ec2_read.instance_states(
            self.ec2, [h for h in holders if h and h != instance_id])

    def hypervisor(self, instance):
        """nitro, xen, or None when unknown. Only used to order device paths, so a failed
        lookup (permissions, a stand-in API) falls back to listing both kinds."""
        kind = (instance or {}).get("InstanceType")
        if not kind:
            return None
        try:
            return ec2_read.hypervisor(self.ec2, kind)
        except FleetAWSError as err:
            self.module.warn(f"{err.message}: {err.exception or ''}; listing both NVMe and Xen "
                             "device paths")
            return None

    # ---- waits -----------------------------------------------------------------------

    def wait_volume(self, volume_id, done, what):
        return wait_until(
            lambda: ec2_read.volume(self.ec2, volume_id), done, self.params,
            lambda last, elapsed: f"{what}: still not done after {elapsed:.0f}s (volume "
            f"{(last or {}).get('State', 'gone')}, attachments: {holders_text(last)})")

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
        # Missing right after attach_volume (eventual consistency): keep waiting.
        return self.wait_volume(volume_id, lambda v: is_attached(attachment_to(v, instance_id)),
                                f"{what}: wait until the attachment is attached")

    def wait_instance_usable(self, instance, what):
        """EC2 refuses to attach to a pending instance."""
        instance_id = instance["InstanceId"]

        def done(current):
            state = instance_state(current)
            if state in ("shutting-down", "terminated"):
                raise FleetAWSError(f"{what}: instance {instance_id} is {state}")
            return state not in (None, "pending")

        wait_until(lambda: ec2_read.instance(self.ec2, instance_id), done, self.params,
                   lambda _last, elapsed: f"{what}: instance {instance_id} is still pending "
                   f"after {elapsed:.0f}s")

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
        tags_to_add = missing_tags(volume, self.tags, self.session)
        actions = plan.actions()
        if tags_to_add:
            actions.insert(0, f"tag {plan.volume_id} with {', '.join(sorted(tags_to_add))}")
        before = attachment_snapshot(volume, instance_id)

        if not self.module.check_mode:
            volume = self.apply(plan, volume, instance, tags_to_add)
        result = {"changed": plan.changed or bool(tags_to_add), "actions": actions,
                  "created": plan.create_zone is not None, "instance_id": instance_id}
        if volume is not None:
            volume = ec2_read.volume(self.ec2, volume["VolumeId"]) or volume
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
                self.detach(volume_id, holder, device, force=True)
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
        with aws_errors(f"{what}: create a {p['size']} GiB {p['volume_type']} volume in "
                        f"{zone}"):
            created = self.ec2.create_volume(**create_request(p, zone, self.tags))
        return self.wait_available(created["VolumeId"], what)

    def detach(self, volume_id, holder, device, force):
        # Always with InstanceId: it is what EC2 needs for multi-attach volumes and what
        # moto needs at all.
        detach = {"VolumeId": volume_id, "InstanceId": holder, "Force": force}
        if device:
            detach["Device"] = device
        self.ec2.detach_volume(**detach)

    def absent(self):
        volume = self.find_volume()
        instance_id = self.params["instance_id"]
        if volume is None:
            return {"changed": False, "volume_id": None, "instance_id": instance_id,
                    "attached": False, "actions": []}
        plan = plan_detach(volume, instance_id)
        volume_id = volume["VolumeId"]
        before = attachment_snapshot(volume, instance_id)
        holders = [h for h, _d in plan.detach] + plan.wait_detached
        if not self.module.check_mode:
            for holder, device in plan.detach:
                with aws_errors(f"Detach volume {volume_id} from {holder}"):
                    self.detach(volume_id, holder, device, self.params["force_detach"])
            for holder in holders:
                volume = self.wait_released(volume_id, holder, f"Detach volume {volume_id}")
            volume = ec2_read.volume(self.ec2, volume_id) or volume
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
        result["attached"] = self.module.check_mode or is_attached(attachment)
        device = (attachment or {}).get("Device") or plan.device_name
        result["device_name"] = device
        result["host_device_candidates"] = host_device_candidates(
            volume_id, device, self.hypervisor(instance))
        return result
