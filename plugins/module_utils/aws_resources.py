# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""Pure decisions of rlops.fleet.aws_session_resources, the module that creates and removes
what a session owns in AWS: which of the rlops_aws_* settings it reads (and as what), the
arguments of the spot-launch and volume engines at launch, the session's security group
(its rules and tags), and what stop does - each action only when its setting asks - and
the lines that say what stop left. Nothing here calls AWS."""

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ansible.module_utils.parsing.convert_bool import boolean
from ansible_collections.rlops.fleet.plugins.module_utils.aws_common import SESSION_TAG
from ansible_collections.rlops.fleet.plugins.module_utils.aws_provision import (
    spot_params,
    volume_params,
)

SSH_RULE_DESCRIPTION = "SSH from the rlops.fleet controller"


def setting(settings: Mapping[str, Any], name: str, default: Any = None) -> Any:
    value = settings.get("rlops_aws_" + name)
    return default if value is None or value == "" else value


def waits(settings: Mapping[str, Any]) -> Dict[str, Any]:
    """The engines' wait_timeout and poll_interval (rlops_aws_wait_timeout, _poll_interval)."""
    return {"wait_timeout": int(float(str(setting(settings, "wait_timeout", 600)))),
            "poll_interval": float(str(setting(settings, "poll_interval", 5)))}


def flag(settings: Mapping[str, Any], name: str) -> bool:
    """A yes/no setting as Ansible reads it (`| bool`: true, "yes", 1 ...)."""
    return boolean(setting(settings, name, False), strict=False)


def group_name(session: str) -> str:
    return f"rlops-{session}"


def group_tags(session: str, settings: Mapping[str, Any]) -> Dict[str, str]:
    """rlops_aws_tags with the session and the group's Name (which win over the user's)."""
    tags = {str(k): "" if v is None else str(v)
            for k, v in dict(setting(settings, "tags", {})).items()}
    return dict(tags, **{SESSION_TAG: session, "Name": group_name(session)})


def snapshot_tags(session: str, settings: Mapping[str, Any]) -> Dict[str, str]:
    return dict(group_tags(session, settings), Name=f"{group_name(session)}-data")


def launch_spot_params(settings: Mapping[str, Any], session: str, zone: str,
                       group_id: Optional[str]) -> Dict[str, Any]:
    """ec2_spot_request's arguments at launch: what the preflight checked (spot_params) and
    the key pair, the session's group (none in check mode when it would be created), the
    instance profile and the waits."""
    return dict(spot_params(settings, session, zone), **waits(settings),
                key_name=setting(settings, "key_name"),
                security_group_ids=[group_id] if group_id else None,
                iam_instance_profile=setting(settings, "iam_instance_profile"))


def launch_volume_params(settings: Mapping[str, Any], session: str,
                         volume_id: Optional[str], spot: Mapping[str, Any]) -> Dict[str, Any]:
    """ebs_volume_attachment's arguments at launch: attached to the instance `spot` names;
    in check mode, where an instance to launch has no id, planned in the zone it would get."""
    params = volume_params(settings, session, volume_id, spot.get("availability_zone"))
    instance_id = spot.get("instance_id")
    if instance_id:
        params.update(instance_id=instance_id, availability_zone=None)
    return dict(params, **waits(settings), force_detach=flag(settings, "force_detach"))


def _rule_keys(permissions: Sequence[Mapping[str, Any]]) -> Dict[Tuple, Dict[str, Any]]:
    """Each permission split into one entry per source (CIDR, IPv6 CIDR, group, prefix
    list), keyed without descriptions, with the IpPermission that grants only it."""
    keys: Dict[Tuple, Dict[str, Any]] = {}
    for perm in permissions:
        base = {k: perm[k] for k in ("IpProtocol", "FromPort", "ToPort") if k in perm}
        if base.get("IpProtocol") == "-1":  # all traffic: EC2 reports no ports
            base = {"IpProtocol": "-1"}
        head = tuple(sorted(base.items()))
        for kind, field in (("IpRanges", "CidrIp"), ("Ipv6Ranges", "CidrIpv6"),
                            ("UserIdGroupPairs", "GroupId"), ("PrefixListIds", "PrefixListId")):
            for source in perm.get(kind) or []:
                keys[head + ((kind, source.get(field)),)] = dict(base, **{kind: [dict(source)]})
    return keys


def rules_change(current: Sequence[Mapping[str, Any]], wanted: Sequence[Mapping[str, Any]]
                 ) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """(permissions to revoke, permissions to authorize) so that `current` becomes exactly
    `wanted` (descriptions aside)."""
    have, want = _rule_keys(current), _rule_keys(wanted)
    return ([have[k] for k in sorted(have) if k not in want],
            [want[k] for k in sorted(want) if k not in have])


def ssh_rule(cidr: str) -> Dict[str, Any]:
    return {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
            "IpRanges": [{"CidrIp": cidr, "Description": SSH_RULE_DESCRIPTION}]}


def tags_change(have: Mapping[str, str], wanted: Mapping[str, str]
                ) -> Tuple[Dict[str, str], List[str]]:
    """(tags to set, tag keys to remove) so that a resource carries exactly `wanted` (AWS's
    own aws: tags aside)."""
    to_set = {k: v for k, v in sorted(wanted.items()) if have.get(k) != v}
    to_remove = sorted(k for k in have if k not in wanted and not k.lower().startswith("aws:"))
    return to_set, to_remove


def teardown_plan(found: Mapping[str, Any], session: str, region: str,
                  terminate: bool = False, snapshot: bool = False, delete_volume: bool = False
                  ) -> Dict[str, Any]:
    """What stop does to the session's resources (`found`: aws_session_info's answer), and
    why it cannot (problem). A data volume is deleted only when both delete_volume and
    terminate are asked (the running instance keeps it attached otherwise)."""
    volumes = [v["volume_id"] for v in (found or {}).get("volumes") or []
               if isinstance(v, Mapping) and v.get("role") == "data"]
    problem = ""
    if delete_volume and not terminate:
        problem = ("rlops_aws_delete_volume needs rlops_aws_terminate: true, since the session's"
                   " instance keeps the volume attached otherwise (the volume is never deleted"
                   " unless both are asked)")
    elif (snapshot or delete_volume) and not volumes:
        problem = (f"session {session} has no data volume in {region} to "
                   f"{'snapshot' if snapshot else 'delete'}")
    return {"problem": problem, "terminate": bool(terminate), "volumes": volumes,
            "snapshot": volumes if snapshot else [],
            "delete": volumes if delete_volume and terminate else []}


def teardown_report(plan: Mapping[str, Any], running: Sequence[str] = (),
                    terminated: Sequence[str] = (), snapshots: Sequence[str] = (),
                    check_mode: bool = False, workers: Sequence[str] = ()) -> List[str]:
    """Two lines: the instance and the volumes, as stop left them (or would leave them),
    and a third about the rollout workers when there were any.

    running: the ids of the head that ran before stop; terminated: those terminated (or
    that would be); snapshots: the ids of the snapshots made (none in check mode);
    workers: the rollout workers terminated (or that would be), whatever the settings.
    """
    running, terminated = list(running or []), list(terminated or [])
    if plan["terminate"] and terminated:
        instance = ("would terminate " if check_mode else "terminated ") + ", ".join(terminated)
    elif plan["terminate"] or not running:
        instance = "none running"
    else:
        instance = (f"{', '.join(running)} still running, and billed: terminate it with -e "
                    "rlops_aws_terminate=true (the volume stays)")
    fate = "deleted" if plan["delete"] else "kept"
    if check_mode:
        volume = "would be " + " and ".join((["snapshotted"] if plan["snapshot"] else []) + [fate])
    else:
        volume = fate + (", snapshot " + ", ".join(snapshots or []) if plan["snapshot"] else "")
    lines = ["instance: " + instance,
             f"volume: {', '.join(plan['volumes']) or 'none'} {volume}"]
    if workers:
        lines.append(f"rollout workers: {'would terminate' if check_mode else 'terminated'} "
                     f"{', '.join(sorted(workers))}")
    return lines
