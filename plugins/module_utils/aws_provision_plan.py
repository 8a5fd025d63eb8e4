# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""The I/O shell of aws_session_plan: read what EC2 holds of the session (aws_session_read),
decide (aws_provision), run ec2_spot_request's and ebs_volume_attachment's own engines in
check mode on the arguments the provider's launch passes them, read the key pair and the
VPC, and ask for the controller's address. Methods raise FleetAWSError with the one message
that refuses the request; nothing is created."""

from datetime import datetime
from typing import Any, Callable, Dict, Mapping

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.urls import open_url
from ansible_collections.rlops.fleet.plugins.module_utils import (
    aws_ebs,
    aws_ebs_attach,
    ec2_launch,
    ec2_read,
    ec2_spot_launch,
)
from ansible_collections.rlops.fleet.plugins.module_utils.aws_common import FleetAWSError
from ansible_collections.rlops.fleet.plugins.module_utils.aws_provision import (
    choose_volume,
    key_problem,
    needs_region_sessions,
    spot_params,
    ssh_cidr,
    volume_params,
    vpc_problem,
)
from ansible_collections.rlops.fleet.plugins.module_utils.aws_rollout import (
    HEAD_ROLE,
    ROLLOUT_ROLE,
    worker_count,
    worker_spot_params,
)
from ansible_collections.rlops.fleet.plugins.module_utils.aws_rollout_apply import role_engine
from ansible_collections.rlops.fleet.plugins.module_utils.aws_session_read import SessionReader


class EngineView:
    """What another module's engine reads of its module, for a request run inside this one:
    its own arguments (validated and defaulted by its own spec), this module's region and
    warnings, and check mode (always, for the preflight)."""

    _diff = False

    def __init__(self, module, spec: Mapping[str, Any], params: Mapping[str, Any], what: str,
                 check_mode: bool = True):
        validated = ArgumentSpecValidator(dict(spec)).validate(dict(params))
        if validated.error_messages:
            raise FleetAWSError(f"{what}: {'; '.join(validated.error_messages)}")
        self.params = validated.validated_parameters
        self.region = module.region
        self.warn = module.warn
        self.check_mode = check_mode


def run_engine(module, ec2, engine, spec, params, params_error: Callable[[Mapping], str],
               what: str, check_mode: bool = True) -> Dict[str, Any]:
    """The engine's answer to `params` (in check mode unless told), or its refusal of them
    as one message, in the words of the module it is the engine of."""
    view = EngineView(module, spec, params, what, check_mode)
    problem = params_error(view.params)
    if problem:
        raise FleetAWSError(f"{what}: {problem}")
    return engine(view, ec2).run()


class ProvisionPlan:
    """Check a session's request in AWS before provision creates anything."""

    def __init__(self, module, ec2, now: datetime):
        self.module, self.ec2, self.now = module, ec2, now
        self.session = module.params["session"]
        self.settings = module.params["settings"]
        self.region = module.region

    def check(self, engine, spec, params, params_error: Callable[[Mapping], str], what: str):
        """The engine's check-mode answer to `params`, or its refusal as one message."""
        return run_engine(self.module, self.ec2, engine, spec, params, params_error, what)

    def worker(self, zone: str) -> Dict[str, Any]:
        """ec2_spot_request's check-mode answer for the first rollout worker in the head's
        zone; its refusal names the settings of the workers."""
        try:
            return self.check(role_engine(ROLLOUT_ROLE, 1), ec2_spot_launch.ARGUMENT_SPEC,
                              worker_spot_params(self.settings, self.session, zone, None, {}),
                              ec2_launch.params_error,
                              f"ec2_spot_request for rollout worker 1 of session {self.session}")
        except FleetAWSError as err:
            raise FleetAWSError(f"rollout workers (rlops_aws_rollout_instance_types, "
                                f"rlops_aws_rollout_max_price) in {zone}: {err}",
                                **err.kwargs) from err

    def address(self, url: str) -> str:
        """The controller's address as the internet sees it (a GET that changes nothing)."""
        try:
            return open_url(url, timeout=10).read().decode("utf-8", "replace")
        except Exception as exc:  # noqa: BLE001 - any failure to ask ends in one message
            raise FleetAWSError(f"Ask {url} for the controller's public address: {exc}; set "
                                "rlops_aws_ssh_cidr (e.g. 203.0.113.7/32)") from exc

    def run(self) -> Dict[str, Any]:
        mode, settings, session = self.module.params["mode"], self.settings, self.session
        volume_id = str(settings.get("rlops_aws_volume_id") or "")
        found = SessionReader(self.ec2, self.region, session, self.now).find(volume_id or None)
        region_sessions = []
        if needs_region_sessions(mode, found, volume_id):
            everything = SessionReader(self.ec2, self.region, None, self.now).find()
            region_sessions = everything["sessions"]
        volume, problem = choose_volume(mode, session, self.region, found, settings,
                                        region_sessions)
        if problem:
            raise FleetAWSError(problem)
        zone = volume["availability_zone"] if volume else ""
        instance = self.check(role_engine(HEAD_ROLE), ec2_spot_launch.ARGUMENT_SPEC,
                              spot_params(settings, session, zone), ec2_launch.params_error,
                              f"ec2_spot_request for session {session}")
        worker = self.worker(instance["availability_zone"]) if worker_count(settings) else None
        which = volume["volume_id"] if volume else f"session {session}"
        attachment = self.check(
            aws_ebs_attach.VolumeAttachment, aws_ebs_attach.ARGUMENT_SPEC,
            volume_params(settings, session, volume and volume["volume_id"],
                          instance["availability_zone"]),
            aws_ebs.params_error, f"ebs_volume_attachment for {which}")
        key_name = str(settings.get("rlops_aws_key_name") or "")
        problem = key_problem(settings, self.region, bool(ec2_read.key_pairs(self.ec2, key_name)))
        if problem:
            raise FleetAWSError(problem)
        vpc_id = str(settings.get("rlops_aws_vpc_id") or "")
        vpcs = ec2_read.vpcs(self.ec2, vpc_id)
        if not vpcs:
            raise FleetAWSError(vpc_problem(vpc_id, self.region))
        answer = None
        if not settings.get("rlops_aws_ssh_cidr"):
            answer = self.address(str(settings.get("rlops_aws_address_url") or ""))
        cidr, problem = ssh_cidr(settings, answer)
        if problem:
            raise FleetAWSError(problem)
        return {"changed": False, "found": found, "volume": volume, "availability_zone": zone,
                "instance": instance, "rollout_worker": worker, "attachment": attachment,
                "vpc_id": vpcs[0]["VpcId"], "ssh_cidr": cidr}
