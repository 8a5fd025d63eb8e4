# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""The I/O shell of aws_session_resources: what a session owns in AWS, made at launch (after
aws_session_plan's checks, run first) and removed at stop. The instance and the volume go
through the engines of ec2_spot_request and ebs_volume_attachment (run here as their modules
run them); the key pair, the security group and the snapshots are read, decided
(aws_resources) and changed here. Methods raise FleetAWSError; the module's main() turns
that into its one failure."""

from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

from ansible_collections.rlops.fleet.plugins.module_utils import (
    aws_ebs,
    aws_ebs_attach,
    ec2_launch,
    ec2_read,
    ec2_spot_launch,
)
from ansible_collections.rlops.fleet.plugins.module_utils.aws_common import (
    FleetAWSError,
    aws_errors,
    error_code,
    tag_dict,
    tag_specifications,
)
from ansible_collections.rlops.fleet.plugins.module_utils.aws_provision import launch_report
from ansible_collections.rlops.fleet.plugins.module_utils.aws_provision_plan import (
    ProvisionPlan,
    run_engine,
)
from ansible_collections.rlops.fleet.plugins.module_utils.aws_resources import (
    flag,
    group_name,
    group_tags,
    launch_spot_params,
    launch_volume_params,
    rules_change,
    setting,
    snapshot_tags,
    ssh_rule,
    tags_change,
    teardown_plan,
    teardown_report,
    waits,
)
from ansible_collections.rlops.fleet.plugins.module_utils.aws_rollout import (
    HEAD_ROLE,
    ROLLOUT_ROLE,
    members_rule,
    worker_count,
)
from ansible_collections.rlops.fleet.plugins.module_utils.aws_rollout_apply import (
    RolloutWorkers,
    role_engine,
)
from ansible_collections.rlops.fleet.plugins.module_utils.aws_session_read import SessionReader
from ansible_collections.rlops.fleet.plugins.module_utils.aws_wait import wait_until

# A terminated instance's network interface lets go of the session's group a little later.
GROUP_IN_USE = ("DependencyViolation", "InvalidGroup.InUse")


class SessionResources:
    """present(): the key pair, the security group, the instance and its volume; absent():
    what stop was asked to do. Every change only outside check mode."""

    def __init__(self, module, ec2):
        self.module, self.ec2 = module, ec2
        self.params = module.params
        self.session = module.params["session"]
        self.settings = module.params["settings"]
        self.check_mode = module.check_mode
        self.region = module.region

    def run(self) -> Dict[str, Any]:
        return getattr(self, self.params["state"])()

    def engine(self, name: str, params: Dict[str, Any], what: str) -> Dict[str, Any]:
        """ec2_spot_request's engine for the head, or ebs_volume_attachment's, on `params`."""
        if name == "spot":
            return run_engine(self.module, self.ec2, role_engine(HEAD_ROLE),
                              ec2_spot_launch.ARGUMENT_SPEC, params, ec2_launch.params_error,
                              f"ec2_spot_request for {what}", self.check_mode)
        return run_engine(self.module, self.ec2, aws_ebs_attach.VolumeAttachment,
                          aws_ebs_attach.ARGUMENT_SPEC, params, aws_ebs.params_error,
                          f"ebs_volume_attachment for {what}", self.check_mode)

    # ---- present ---------------------------------------------------------------------

    def key_pair(self) -> bool:
        """Import the public key as the key pair unless one of that name exists (an
        existing one is used as it is, never replaced); whether it was (would be) imported."""
        public_key, name = self.params["public_key"], setting(self.settings, "key_name")
        if not public_key or ec2_read.key_pairs(self.ec2, name):
            return False
        if not self.check_mode:
            with aws_errors(f"Import key pair {name}"):
                self.ec2.import_key_pair(KeyName=name, PublicKeyMaterial=public_key.encode())
        return True

    def find_groups(self, vpc_id: Optional[str] = None) -> List[Dict[str, Any]]:
        """The session's security groups by name (in `vpc_id`, or in every VPC)."""
        filters = [{"Name": "group-name", "Values": [group_name(self.session)]}]
        if vpc_id:
            filters.append({"Name": "vpc-id", "Values": [vpc_id]})
        with aws_errors(f"Find security group {group_name(self.session)}"):
            return self.ec2.describe_security_groups(Filters=filters,
                                                     aws_retry=True)["SecurityGroups"]

    def workers(self) -> RolloutWorkers:
        return RolloutWorkers(self.module, self.ec2, self.settings, waits(self.settings),
                              run_engine)

    def security_group(self, vpc_id: str, cidr: str, members: bool = False) -> Dict[str, Any]:
        """The session's group: SSH from `cidr` only and, with `members` (rollout workers),
        all TCP from the group itself; the session's tags (its egress rules are left as
        they are: a new VPC group lets everything out).
        {group_id (None in check mode when it would be created), changed}."""
        name = group_name(self.session)
        what = f"Set security group {name}"
        found = self.find_groups(vpc_id)
        created = not found
        if created:
            if self.check_mode:
                return {"group_id": None, "changed": True}
            with aws_errors(f"Create security group {name} in {vpc_id}"):
                group = self.ec2.create_security_group(
                    GroupName=name, VpcId=vpc_id, TagSpecifications=tag_specifications(
                        group_tags(self.session, self.settings), ["security-group"]),
                    Description=f"SSH from the rlops.fleet controller to the instances of "
                                f"session {self.session}", aws_retry=True)
            found = self.find_groups(vpc_id) or [{"GroupId": group["GroupId"]}]
        group = found[0]
        group_id = group["GroupId"]
        wanted = [ssh_rule(cidr)] + ([members_rule(group_id)] if members else [])
        revoke_in, grant_in = rules_change(group.get("IpPermissions") or [], wanted)
        to_set, to_remove = tags_change(tag_dict(group), group_tags(self.session, self.settings))
        changed = bool(revoke_in or grant_in or to_set or to_remove)
        if changed and not self.check_mode:
            rules = f"tcp/22 from {cidr}" + (", all TCP from the group" if members else " only")
            with aws_errors(f"{what} ({group_id}): {rules}"):
                for call, perms in ((self.ec2.revoke_security_group_ingress, revoke_in),
                                    (self.ec2.authorize_security_group_ingress, grant_in)):
                    if perms:
                        call(GroupId=group_id, IpPermissions=perms, aws_retry=True)
                if to_set:
                    self.ec2.create_tags(Resources=[group_id], aws_retry=True, Tags=[
                        {"Key": k, "Value": v} for k, v in to_set.items()])
                if to_remove:
                    self.ec2.delete_tags(Resources=[group_id], aws_retry=True,
                                         Tags=[{"Key": k} for k in to_remove])
        return {"group_id": group_id, "changed": changed or created}

    def present(self) -> Dict[str, Any]:
        """aws_session_plan's checks first (refused: nothing is created), then each part."""
        settings, session = self.settings, self.session
        plan = ProvisionPlan(self.module, self.ec2, datetime.now(timezone.utc)).run()
        key_changed = self.key_pair()
        group = self.security_group(plan["vpc_id"], plan["ssh_cidr"],
                                    members=worker_count(settings) > 0)
        spot = self.engine("spot", launch_spot_params(
            settings, session, plan.get("availability_zone") or "", group["group_id"]),
            f"session {session}")
        volume_id = (plan.get("volume") or {}).get("volume_id")
        attached = self.engine("volume", launch_volume_params(settings, session, volume_id, spot),
                               volume_id or f"session {session}")
        report = launch_report(spot, attached, session, settings, key_changed, group,
                               plan["ssh_cidr"], self.check_mode)
        # The workers go to the head's zone (none yet in check mode: the planned one).
        workers = self.workers().present(spot.get("availability_zone"), group["group_id"])
        report = {"hosts": [dict(h, role=HEAD_ROLE) for h in report["hosts"]] + workers["hosts"],
                  "to_create": report["to_create"] + workers["to_create"],
                  "lines": report["lines"] + workers["lines"]}
        return dict(report, changed=bool(key_changed or group["changed"] or spot["changed"]
                                         or attached["changed"] or workers["changed"]),
                    plan=plan, key_pair_imported=key_changed, security_group=group,
                    instance=spot, attachment=attached, rollout_workers=workers["workers"])

    # ---- absent ----------------------------------------------------------------------

    def remove_groups(self) -> List[str]:
        """Delete the session's security groups (in every VPC); those that would be, in
        check mode."""
        groups = [g["GroupId"] for g in self.find_groups()]
        for group_id in groups if not self.check_mode else []:
            self.remove_group(group_id)
        return groups

    def remove_group(self, group_id: str) -> None:
        """Delete the group, waiting while a terminated instance's interface still holds it."""
        what = f"Remove security group {group_id}"

        def delete() -> str:
            """'' once deleted (or gone); else why it is still in use."""
            try:
                with aws_errors(what):
                    self.ec2.delete_security_group(GroupId=group_id)
            except FleetAWSError as err:
                if error_code(err.exception) in GROUP_IN_USE:
                    return str(err.exception)
                if error_code(err.exception) != "InvalidGroup.NotFound":
                    raise
            return ""

        wait_until(delete, lambda left: not left, waits(self.settings),
                   lambda last, elapsed: f"{what}: still in use after {elapsed:.0f}s ({last})")

    def snapshot(self, volume_id: str) -> Optional[str]:
        """Snapshot the data volume and wait until it is complete (none in check mode)."""
        if self.check_mode:
            return None
        what = f"Snapshot volume {volume_id}"
        with aws_errors(what):
            snapshot_id = self.ec2.create_snapshot(
                VolumeId=volume_id, TagSpecifications=tag_specifications(
                    snapshot_tags(self.session, self.settings), ["snapshot"]),
                Description=f"rlops.fleet session {self.session}: data volume after stop",
            )["SnapshotId"]

        def read():
            with aws_errors(f"{what}: read {snapshot_id}"):
                found = self.ec2.describe_snapshots(SnapshotIds=[snapshot_id], aws_retry=True)
            return (found["Snapshots"] or [{}])[0].get("State")

        def done(state):
            if state == "error":
                raise FleetAWSError(f"{what}: snapshot {snapshot_id} went into the error state")
            return state == "completed"

        wait_until(read, done, waits(self.settings),
                   lambda last, elapsed: f"{what}: {snapshot_id} is still {last} after "
                   f"{elapsed:.0f}s")
        return snapshot_id

    def delete_volume(self, volume_id: str) -> None:
        """Wait until the terminated instance lets go of the volume, then delete it."""
        self.engine("volume", dict(state="absent", volume_id=volume_id, **waits(self.settings)),
                    volume_id)
        if not self.check_mode:
            with aws_errors(f"Delete volume {volume_id}"):
                self.ec2.delete_volume(VolumeId=volume_id, aws_retry=True)

    def absent(self) -> Dict[str, Any]:
        settings, session = self.settings, self.session
        found = SessionReader(self.ec2, self.region, session, datetime.now(timezone.utc)).find()
        plan = teardown_plan(found, session, self.region, flag(settings, "terminate"),
                             flag(settings, "snapshot"), flag(settings, "delete_volume"))
        if plan["problem"]:
            raise FleetAWSError(plan["problem"])
        result = {"changed": False, "plan": plan, "terminated_instances": [], "snapshots": [],
                  "removed_groups": [], "lines": []}
        if self.params["step"] == "check":
            return result
        # The rollout workers hold nothing of the user's (no volume): they always go.
        workers = self.workers().absent()
        cancelled = workers["cancelled_requests"]
        if plan["terminate"]:
            spot = self.engine("spot", dict(state="absent", session=session,
                                            terminate_instance=True, **waits(settings)),
                               f"session {session}")
            result["terminated_instances"] = spot["terminated_instances"]
            cancelled += spot["cancelled_requests"]
            result["removed_groups"] = self.remove_groups()
        result["snapshots"] = [s for s in map(self.snapshot, plan["snapshot"]) if s]
        for volume_id in plan["delete"]:
            self.delete_volume(volume_id)
        running = [i["instance_id"] for i in found["instances"] if i.get("state") == "running"
                   and i.get("role") != ROLLOUT_ROLE]
        result["lines"] = teardown_report(plan, running, result["terminated_instances"],
                                          result["snapshots"], self.check_mode,
                                          workers["terminated_instances"])
        result["terminated_workers"] = workers["terminated_instances"]
        result["changed"] = bool(result["terminated_instances"] or result["removed_groups"]
                                 or result["terminated_workers"]
                                 or plan["snapshot"] or plan["delete"] or cancelled)
        return result
