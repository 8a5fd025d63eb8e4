# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""Pure decisions of the AWS provider's preflight (rlops.fleet.aws_session_plan): what the
playbooks' rlops_aws_* settings ask of ec2_spot_request and ebs_volume_attachment, which
volume a session takes, and the one message that refuses a request before anything is
created. The module feeds in what it read; nothing here calls AWS."""

import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.rlops.fleet.plugins.module_utils.aws_session import (
    RELEASING_STATES,
    instance_table,
    session_cost_lines,
    volume_problem,
)

_CIDR = re.compile(r"^([0-9]{1,3}[.]){3}[0-9]{1,3}/[0-9]{1,2}$")


def _setting(settings: Mapping[str, Any], name: str, default: Any = None) -> Any:
    value = settings.get("rlops_aws_" + name)
    return default if value is None else value


def _positive_int(value: Any) -> Optional[int]:
    try:
        number = int(float(str(value)))
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def spot_params(settings: Mapping[str, Any], session: str, zone: str) -> Dict[str, Any]:
    """ec2_spot_request's arguments for the session's instance (state present), as the
    provider's launch passes them, in the zone of the session's volume when it has one."""
    max_price = str(_setting(settings, "max_price", ""))
    return {
        "state": "present", "session": session,
        "instance_types": list(_setting(settings, "instance_types", [])),
        "availability_zones": list(_setting(settings, "availability_zones", [])) or None,
        "availability_zone": zone or None,
        "image_id": _setting(settings, "image_id"),
        "subnet_ids": dict(_setting(settings, "subnet_ids", {})) or None,
        "max_price": max_price or None,
        "spot_type": _setting(settings, "spot_type", "one-time"),
        "instance_interruption_behavior": _setting(settings, "interruption_behavior",
                                                   "terminate"),
        "on_demand_fallback": _setting(settings, "on_demand_fallback", False),
        "root_volume_size": _positive_int(_setting(settings, "root_volume_size")),
        "tags": dict(_setting(settings, "tags", {})),
    }


def volume_params(settings: Mapping[str, Any], session: str, volume_id: Optional[str],
                  zone: str) -> Dict[str, Any]:
    """ebs_volume_attachment's arguments for the session's volume in `zone`, no instance
    yet (the instance's zone is what the spot plan chose)."""
    return {
        "state": "present", "session": session, "volume_id": volume_id or None,
        "availability_zone": zone, "size": _positive_int(_setting(settings, "volume_size")),
        "volume_type": _setting(settings, "volume_type", "gp3"),
        "device_name": _setting(settings, "volume_device", "/dev/sdf"),
        "tags": dict(_setting(settings, "tags", {})),
    }


def data_volumes(found: Mapping[str, Any]) -> List[Dict[str, Any]]:
    return [v for v in found.get("volumes") or [] if v.get("role") == "data"]


def needs_region_sessions(mode: str, found: Mapping[str, Any], volume_id: str) -> bool:
    """Resume of a session without a data volume: the refusal names the sessions that
    have resources in the region (one more read)."""
    return mode == "resume" and not volume_id and not data_volumes(found)


def choose_volume(mode: str, session: str, region: str, found: Mapping[str, Any],
                  settings: Mapping[str, Any], region_sessions: Sequence[str] = ()
                  ) -> Tuple[Optional[Dict[str, Any]], str]:
    """(the volume the session takes or None for a new one, the problem or '').

    `found` is aws_session_info's answer for the session (with `volume` when
    rlops_aws_volume_id names one). A new session must have no resources yet; a resume
    takes its one data volume (or the one named); the volume must be usable by the session.
    """
    volume_id = str(_setting(settings, "volume_id", ""))
    instances, volumes = found.get("instances") or [], found.get("volumes") or []
    mine = data_volumes(found)
    if mode == "new" and (instances or volumes):
        held = [i["instance_id"] for i in instances] + [v["volume_id"] for v in volumes]
        return None, (f"session {session} already has {', '.join(held)} in {region}: run "
                      f"resume.yml -e rlops_session={session}")
    if needs_region_sessions(mode, found, volume_id):
        return None, (f"session {session} has no data volume in {region} (tag "
                      f"rlops:session={session}, rlops:role=data): nothing to resume there; "
                      f"sessions with resources in {region}: "
                      f"{', '.join(region_sessions) or 'none'}")
    if mode == "resume" and len(mine) > 1 and not volume_id:
        return None, (f"session {session} has {len(mine)} data volumes "
                      f"({', '.join(v['volume_id'] for v in mine)}): name the one to resume "
                      "with -e rlops_aws_volume_id=vol-...")
    volume = found.get("volume") or (mine[0] if mode == "resume" else None)
    if volume is None:
        return None, ""
    own = [i["instance_id"] for i in instances if i.get("state") not in RELEASING_STATES]
    problem = volume_problem(volume, session, list(_setting(settings, "availability_zones", [])),
                             bool(_setting(settings, "force_detach", False)), own)
    return volume, (f"session {session}: {problem}" if problem else "")


def key_problem(settings: Mapping[str, Any], region: str, key_exists: bool) -> str:
    """A key pair to log in with: the existing one, or a public key file to import."""
    if key_exists or _setting(settings, "public_key_file", ""):
        return ""
    return (f"key pair {_setting(settings, 'key_name')} does not exist in {region} and "
            "rlops_aws_public_key_file is empty: give your SSH public key file to import")


def vpc_problem(vpc_id: str, region: str) -> str:
    """The message when the VPC (rlops_aws_vpc_id, or the default one) is not found."""
    where = f"VPC {vpc_id} does not exist" if vpc_id else "there is no default VPC"
    return (f"{where} in {region}: set rlops_aws_vpc_id and rlops_aws_subnet_ids "
            "(zone: subnet id)")


def ssh_cidr(settings: Mapping[str, Any], answer: Optional[str]) -> Tuple[str, str]:
    """(who may SSH in, the problem or ''): rlops_aws_ssh_cidr, else the controller's
    address as rlops_aws_address_url answered it (`answer`), as a /32."""
    given = str(_setting(settings, "ssh_cidr", ""))
    if given:
        return given, ""
    cidr = (answer or "").strip() + "/32"
    if _CIDR.match(cidr):
        return cidr, ""
    shown = (answer or "").strip()
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    return "", (f"{_setting(settings, 'address_url')} answered {shown}, not an IPv4 address: "
                "set rlops_aws_ssh_cidr (e.g. 203.0.113.7/32)")


def launch_report(spot: Mapping[str, Any], attached: Mapping[str, Any], session: str,
                  settings: Mapping[str, Any], key_changed: bool = False,
                  group: Optional[Mapping[str, Any]] = None, ssh_cidr: str = "",
                  check_mode: bool = False) -> Dict[str, Any]:
    """What provision's launch did (or, in check mode, would do), from the results of
    ec2_key, ec2_security_group, ec2_spot_request and ebs_volume_attachment.

    `hosts`: the instance that trains, as add_hosts takes it (none when it would first be
    launched or started: check mode cannot reach it); `to_create`: what the playbook waits
    for instead (__rlops_hosts_to_create); `lines`: what to show, each naming the session.
    """
    instance_id, state = spot.get("instance_id"), spot.get("instance_state")
    price = spot.get("spot_price") or "unknown"
    what = f"{spot.get('lifecycle')} {spot.get('instance_type')}"
    where = f"in {spot.get('availability_zone')} ({price} USD/h)"
    prefix = f"session {session}: "
    if instance_id and (state == "running" or not check_mode):
        host = dict(spot, session=session, state=state, data_volume={
            "volume_id": attached.get("volume_id"), "device": attached.get("device_name")})
        line = (f"{what} {instance_id} {where} with volume {attached.get('volume_id')}"
                f"{' (new)' if attached.get('created') else ''} at {attached.get('device_name')}")
        return {"hosts": [host], "to_create": [], "lines": [prefix + line]}
    device = _setting(settings, "volume_device", "/dev/sdf")
    size, kind = _setting(settings, "volume_size"), _setting(settings, "volume_type")
    shown = (f"volume {attached['volume_id']}" if attached.get("volume_id") else
             f"a {size} GiB {kind} volume")
    attach_planned = any(str(a).startswith("attach ") for a in attached.get("actions") or [])
    group = group or {}
    lines = [
        f"would import the key pair {_setting(settings, 'key_name')} from "
        f"{_setting(settings, 'public_key_file')}" if key_changed else "",
        "" if not group.get("changed") else
        f"would {'set the rules of' if group.get('group_id') else 'create'} the security group "
        f"rlops-{session}: tcp/22 from {ssh_cidr}",
        f"would {f'start the {state} instance {instance_id}, a' if instance_id else 'launch a'} "
        f"{what} {where}",
        f"would create {shown} in {attached.get('availability_zone')} and attach it at {device}"
        if attached.get("created") else
        f"{shown} stays attached at {attached.get('device_name')}"
        if instance_id and not attach_planned else f"would attach {shown} at {device}",
        "check mode stops here: the instance "
        f"{'is not running' if instance_id else 'does not exist yet'}, so its host can be neither"
        " checked nor prepared; without --check, the volume is mounted on it and volume_mount,"
        f" gpu_host and the trainer {'start' if attached.get('created') else 'resume'} the"
        " session there",
    ]
    return {"hosts": [], "to_create": [f"instance of session {session}"],
            "lines": [prefix + line for line in lines if line]}


def locate_facts(found: Mapping[str, Any], session: str, purpose: str, region: str,
                 retrieve_from: str = "auto", hosts_group: str = "trainers",
                 hosts_listed: Sequence[str] = (), region_sessions: Sequence[str] = ()
                 ) -> Dict[str, Any]:
    """The provider contract's facts after `locate` (README.md of provider_aws), the hosts
    to add, and the one problem ('' when there is none).

    `found` is aws_session_info's answer for `session` ('' for every session);
    `region_sessions` the sessions with resources in the region, read only when `found`
    holds none of `session`'s.
    """
    instances = found.get("instances") or []
    running = [i for i in instances if i.get("state") == "running"]
    from_storage = purpose == "retrieve" and (
        retrieve_from == "storage" or (retrieve_from == "auto" and not running))
    problem = ""
    if hosts_listed:
        problem = (f"rlops_provider aws adds the sessions' instances to the group {hosts_group},"
                   f" but the inventory already lists hosts there ({', '.join(hosts_listed)}):"
                   f" use an inventory whose {hosts_group} group is empty (inventories/aws)")
    elif session and not found.get("sessions"):
        problem = (f"session {session} has no instance or volume in {region} (tag "
                   f"rlops:session={session}); sessions with resources there: "
                   f"{', '.join(region_sessions) or 'none'}")
    elif purpose == "evaluate" and not running:
        states = ", ".join(f"{i.get('instance_id')} {i.get('state')}" for i in instances)
        problem = (f"session {session} has no running instance in {region} ({states or 'none'}),"
                   f" and {purpose} needs one: run resume.yml -e rlops_session={session}")
    return {
        "problem": problem, "running": running, "hosts": [] if from_storage else running,
        "session_provided": bool(session), "retrieve_from_storage": from_storage,
        "report": (instance_table(instances, found.get("volumes") or [])
                   + session_cost_lines(instances) if purpose == "status" else []),
    }
