# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""Pure decisions of the spot-launch engine behind ec2_spot_request: which arguments are
wrong, what RunInstances gets, the order of (candidate, market) to try, what an instance
and its spot request say while waiting, and what a found instance of the session needs.

ec2_placement ranks the candidates; ec2_spot_launch is the I/O shell that reads (ec2_read),
calls these and acts. Nothing here calls AWS, so every decision has a unit test without
mocks. The launch options' argument spec is here, documented by the doc fragment
rlops.fleet.ec2_launch.
"""

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.rlops.fleet.plugins.module_utils.aws_common import (
    ROLE_TAG,
    tag_specifications,
    tags_error,
)
from ansible_collections.rlops.fleet.plugins.module_utils.ec2_placement import (
    STATE_REASON_NEXT,
    Candidate,
    after_request_status,
    spot_options_error,
)
from ansible_collections.rlops.fleet.plugins.module_utils.session_checks import (
    session_id_error,
)

# EC2's answers when a ClientToken was used before by an instance that no longer runs.
TOKEN_REUSED = ("IdempotentInstanceTerminated", "IdempotentParameterMismatch")
MAX_TOKEN_GENERATIONS = 20
# IMDSv2 only; hop limit 2 so that a job in a container on the host reaches it too.
METADATA_OPTIONS = {"HttpTokens": "required", "HttpEndpoint": "enabled",
                    "HttpPutResponseHopLimit": 2}

# What to launch and on which market (plugins/doc_fragments/ec2_launch.py documents these).
LAUNCH_ARGUMENT_SPEC = dict(
    max_price=dict(type="str"),
    spot_type=dict(type="str", choices=["one-time", "persistent"], default="one-time"),
    instance_interruption_behavior=dict(
        type="str", choices=["terminate", "stop", "hibernate"], default="terminate"),
    on_demand_fallback=dict(type="bool", default=False),
    launch_template=dict(type="dict", options=dict(
        id=dict(type="str"), name=dict(type="str"),
        version=dict(type="str", default="$Default"))),
    image_id=dict(type="str"),
    key_name=dict(type="str", no_log=False),
    security_group_ids=dict(type="list", elements="str"),
    subnet_ids=dict(type="dict"),
    iam_instance_profile=dict(type="str"),
    user_data=dict(type="str"),
    root_volume_size=dict(type="int"),
)

Plan = List[Tuple[Candidate, str]]  # (candidate, market) in the order to try


def params_error(params: Mapping[str, Any]) -> str:
    """The first problem found without calling AWS, or ''."""
    problems = [session_id_error(params["session"]), tags_error(params["tags"])]
    if params["state"] == "present":
        if not params["instance_types"]:
            problems.append("instance_types is required with state=present")
        problems.append(
            spot_options_error(params["spot_type"], params["instance_interruption_behavior"]))
        template = params["launch_template"]
        if not params["image_id"] and not template:
            problems.append("give image_id or launch_template: there is nothing to launch")
        if template and bool(template.get("id")) == bool(template.get("name")):
            problems.append("launch_template needs exactly one of id and name")
        if params["max_price"] is not None:
            try:
                positive = float(params["max_price"]) > 0
            except ValueError:
                positive = False
            if not positive:
                problems.append(f"max_price {params['max_price']!r} is not a positive number "
                                "of USD per hour")
        if params["root_volume_size"] is not None and params["root_volume_size"] < 1:
            problems.append("root_volume_size must be at least 1 GiB")
    problems = [p for p in problems if p]
    return problems[0] if problems else ""


def template_image_error(data: Mapping[str, Any], template: Mapping[str, Any]) -> Optional[str]:
    """Why the template version's image cannot be read for its root volume, or None."""
    image_id = data.get("ImageId")
    if image_id and image_id.startswith("ami-"):
        return None
    return (f"Read launch template {template.get('id') or template.get('name')}: version "
            f"{template['version']} names no AMI id ({image_id or 'none'}), so the root volume "
            "cannot be encrypted; give image_id")


def root_device(image: Mapping[str, Any], wanted: Optional[int]
                ) -> Tuple[str, Optional[int], Optional[str]]:
    """(device name, size in GiB, problem) of the root volume the image boots from: exactly
    that volume is made encrypted and sized."""
    device = image.get("RootDeviceName") or "/dev/xvda"
    image_size = next((m.get("Ebs", {}).get("VolumeSize")
                       for m in image.get("BlockDeviceMappings") or []
                       if m.get("DeviceName") == device), None)
    if wanted and image_size and wanted < image_size:
        return device, None, (f"root_volume_size {wanted} GiB is smaller than the image's "
                              f"root snapshot ({image_size} GiB)")
    return device, wanted or image_size, None


def base_request(params: Mapping[str, Any], device: str, size: Optional[int]
                 ) -> Dict[str, Any]:
    """RunInstances parameters every candidate shares."""
    ebs: Dict[str, Any] = {"Encrypted": True, "VolumeType": "gp3", "DeleteOnTermination": True}
    if size:
        # The image's size when none is asked for: an override without a size is
        # refused by some EC2 implementations (moto) and means the same on AWS.
        ebs["VolumeSize"] = size
    launch: Dict[str, Any] = {
        "MinCount": 1, "MaxCount": 1, "MetadataOptions": dict(METADATA_OPTIONS),
        "BlockDeviceMappings": [{"DeviceName": device, "Ebs": ebs}]}
    template = params["launch_template"]
    if template:
        launch["LaunchTemplate"] = {"Version": template["version"]}
        if template.get("id"):
            launch["LaunchTemplate"]["LaunchTemplateId"] = template["id"]
        else:
            launch["LaunchTemplate"]["LaunchTemplateName"] = template["name"]
    for key, name in (("image_id", "ImageId"), ("key_name", "KeyName"),
                      ("security_group_ids", "SecurityGroupIds"), ("user_data", "UserData")):
        if params[key]:
            launch[name] = params[key]
    profile = params["iam_instance_profile"]
    if profile:
        launch["IamInstanceProfile"] = (
            {"Arn": profile} if profile.startswith("arn:") else {"Name": profile})
    return launch


def candidate_request(base: Mapping[str, Any], params: Mapping[str, Any],
                      tags: Mapping[str, str], candidate: Candidate, market: str
                      ) -> Dict[str, Any]:
    """RunInstances parameters of one candidate on one market (without the ClientToken)."""
    launch = dict(base, InstanceType=candidate.instance_type)
    subnet = (params["subnet_ids"] or {}).get(candidate.availability_zone)
    if subnet:
        launch["SubnetId"] = subnet
    else:
        launch["Placement"] = {"AvailabilityZone": candidate.availability_zone}
    kinds = ["instance"]
    if market == "spot":
        options = {"SpotInstanceType": params["spot_type"],
                   "InstanceInterruptionBehavior": params["instance_interruption_behavior"]}
        if params["max_price"]:
            options["MaxPrice"] = str(params["max_price"])
        launch["InstanceMarketOptions"] = {"MarketType": "spot", "SpotOptions": options}
        kinds.append("spot-instances-request")
    # Root volumes carry the session tag too; rlops:role=root keeps ebs_volume_attachment
    # from taking one of them for the session's data volume.
    launch["TagSpecifications"] = (
        tag_specifications(tags, kinds)
        + tag_specifications(dict(tags, **{ROLE_TAG: "root"}), ["volume"]))
    return launch


def candidate_record(candidate: Candidate, market: str, outcome: str, message: str = ""
                     ) -> Dict[str, Any]:
    return {"instance_type": candidate.instance_type,
            "availability_zone": candidate.availability_zone, "market": market,
            "price": candidate.price, "outcome": outcome, "message": message}


def launch_plan(ranked: Sequence[Candidate], to_try: Sequence[Candidate],
                too_dear: Sequence[Candidate], max_price: Optional[str],
                on_demand_fallback: bool) -> Tuple[Plan, List[Dict[str, Any]]]:
    """(what to try in order, the records of candidates skipped for their price)."""
    skipped = [candidate_record(c, "spot", "skipped",
                                f"latest price {c.price} is above max_price {max_price}")
               for c in too_dear]
    plan: Plan = [(c, "spot") for c in to_try]
    if on_demand_fallback:
        plan += [(c, "on-demand") for c in ranked]
    return plan, skipped


def no_capacity_message(session: str, tried: Sequence[Mapping[str, Any]],
                        on_demand_fallback: bool) -> str:
    summary = "; ".join(f"{t['market']} {t['instance_type']} in {t['availability_zone']}: "
                        f"{t['outcome']}" for t in tried)
    hint = ("add instance types or zones" if on_demand_fallback else
            "add instance types or zones, raise max_price, or set on_demand_fallback: true")
    return (f"Launch an instance for session {session}: no candidate had capacity "
            f"({summary}); {hint}")


def instance_summary(instance: Mapping[str, Any]) -> Dict[str, Any]:
    return {
        "instance_id": instance.get("InstanceId"),
        "instance_type": instance.get("InstanceType"),
        "availability_zone": (instance.get("Placement") or {}).get("AvailabilityZone"),
        "instance_state": (instance.get("State") or {}).get("Name"),
        "request_id": instance.get("SpotInstanceRequestId"),
        "lifecycle": "spot" if instance.get("InstanceLifecycle") == "spot" else "on-demand",
        "public_ip": instance.get("PublicIpAddress"),
        "private_ip": instance.get("PrivateIpAddress"),
    }


def planned_result(plan: Plan, tried: Sequence[Mapping[str, Any]],
                   max_price: Optional[str]) -> Dict[str, Any]:
    """The result in check mode: the first candidate, and every one to be tried."""
    first, market = plan[0]
    return {"changed": True, "instance_id": None, "request_id": None,
            "availability_zone": first.availability_zone, "instance_type": first.instance_type,
            "lifecycle": market, "spot_price": first.price, "max_price": max_price,
            "public_ip": None, "private_ip": None, "instance_state": None,
            "candidates": list(tried) + [candidate_record(c, m, "planned") for c, m in plan]}


def running_verdict(instance: Mapping[str, Any], request: Optional[Mapping[str, Any]]
                    ) -> Tuple[str, str, str]:
    """What a launched instance and its spot request say while waiting for it to run:
    ("done" | "wait" | "next" | "fail", code, message).

    "next": no capacity for it (the request's status, or the state reason of an instance
    the spot market took back before it ran) - another candidate may do better.
    """
    name = (instance.get("State") or {}).get("Name")
    if name == "running":
        return "done", "", ""
    status = (request or {}).get("Status") or {}
    if after_request_status(status.get("Code")) == "next":  # don't sit out the timeout
        return "next", status["Code"], status.get("Message", "")
    if name in (None, "pending"):
        return "wait", "", ""
    reason = instance.get("StateReason") or {}
    if reason.get("Code") in STATE_REASON_NEXT:
        return "next", reason["Code"], reason.get("Message", "")
    why = reason.get("Message") or reason.get("Code") or "no reason given"
    if status.get("Code"):
        why += f"; spot request status {status['Code']}"
    return "fail", name, f"instance {instance.get('InstanceId')} went {name} before it ran ({why})"


def still_pending_message(instance: Mapping[str, Any], request: Optional[Mapping[str, Any]],
                          elapsed: float) -> str:
    name = (instance.get("State") or {}).get("Name")
    status = ((request or {}).get("Status") or {}).get("Code", "none")
    return (f"instance {instance.get('InstanceId')} is still {name} after {elapsed:.0f}s (spot "
            f"request status: {status}); it carries the session tag, so running this task "
            "again picks it up")


def found_instance_problem(instance: Mapping[str, Any], wanted_zone: Optional[str]
                           ) -> Optional[str]:
    """Why the session's instance, found by its tag, cannot be used as it is, or None."""
    zone = (instance.get("Placement") or {}).get("AvailabilityZone")
    if wanted_zone and zone and zone != wanted_zone:
        return (f"it runs in {zone} but availability_zone is {wanted_zone} (where the "
                "session's volume is); terminate it (state: absent, terminate_instance: true) "
                "and run again")
    if (instance.get("State") or {}).get("Name") == "stopping":
        return "it is stopping; run again once it has stopped"
    return None


def restart_problem(request: Optional[Mapping[str, Any]]) -> Optional[str]:
    """Why a stopped instance of the session must not be started by us, given its spot
    request (None: an on-demand instance), or None."""
    status = ((request or {}).get("Status") or {}).get("Code")
    if request and status != "instance-stopped-by-user":
        return (f"EC2 stopped it ({status or 'no status'}) and starts it again when capacity "
                "returns; wait, or terminate it (state: absent, terminate_instance: true) and "
                "run again elsewhere")
    return None


def instance_diff(result: Mapping[str, Any], before: Optional[Mapping[str, Any]]
                  ) -> Dict[str, Any]:
    keys = ("instance_id", "instance_type", "availability_zone", "lifecycle")
    return {"before": {k: instance_summary(before)[k] for k in keys} if before else {},
            "after": {k: result.get(k) for k in keys}}
