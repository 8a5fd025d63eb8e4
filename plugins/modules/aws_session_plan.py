#!/usr/bin/python
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)

DOCUMENTATION = r"""
---
module: aws_session_plan
short_description: Check a session's request in AWS and plan its instance and volume
version_added: 0.1.0
description:
  - The preflight of the AWS provider (rlops.fleet.provider_aws, entry point C(provision)) in
    one call, before anything is created. Fails with one message that says what and why on
    the first problem; changes nothing, in check mode or not.
  - Reads the session's instances and volumes by their C(rlops:session) tag (the first AWS
    call, so missing credentials end here). O(mode=new) refuses a session that already has
    resources; O(mode=resume) takes the session's data volume (refused when it has none,
    naming the sessions that have resources in the region, or several without
    C(rlops_aws_volume_id)). The volume taken (or the one C(rlops_aws_volume_id) names) must
    be one the session can use (its zone, its owner, who holds it).
  - Runs the engines of M(rlops.fleet.ec2_spot_request) and M(rlops.fleet.ebs_volume_attachment)
    in check mode on the arguments the provider's launch gives them (everything those modules
    refuse is refused here, in their words); then requires the key pair (or a public key to
    import), the VPC (C(rlops_aws_vpc_id), else the default one) and an IPv4 address that may
    SSH in (C(rlops_aws_ssh_cidr), else the controller's address as C(rlops_aws_address_url)
    answers it, as a /32).
  - With C(rlops_aws_rollout_workers) above 0, also runs the engine of
    M(rlops.fleet.ec2_spot_request) in check mode for the first rollout worker
    (C(rlops_aws_rollout_instance_types), C(rlops_aws_rollout_max_price)) in the zone the
    instance goes to; its refusal names those settings.
author:
  - rlops.fleet developers (!UNKNOWN)
options:
  session:
    description: The training session id.
    type: str
    required: true
  mode:
    description: V(new) for train_new, V(resume) for resume.
    type: str
    required: true
    choices: [new, resume]
  settings:
    description:
      - The playbooks' C(rlops_aws_*) settings by name (docs/aws.md), as the session role's
        defaults and the inventory set them. Read here - C(instance_types),
        C(availability_zones), C(image_id), C(subnet_ids), C(max_price), C(spot_type),
        C(interruption_behavior), C(on_demand_fallback), C(root_volume_size), C(tags),
        C(volume_id), C(volume_size), C(volume_type), C(volume_device), C(force_detach),
        C(key_name), C(public_key_file), C(vpc_id), C(ssh_cidr), C(address_url); the filter
        rlops.fleet.aws_settings_problem checks their form first.
    type: dict
    required: true
notes:
  - The controller's address is asked over HTTPS only when C(rlops_aws_ssh_cidr) is empty.
extends_documentation_fragment:
  - rlops.fleet.attributes.info_module
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
seealso:
  - module: rlops.fleet.aws_session_info
  - module: rlops.fleet.ec2_spot_request
  - module: rlops.fleet.ebs_volume_attachment
"""

EXAMPLES = r"""
- name: Check the request in AWS before anything is created
  rlops.fleet.aws_session_plan:
    region: us-east-1
    session: cartpole-20261122t051500z
    mode: new
    settings:
      rlops_aws_instance_types: [g4dn.xlarge]
      rlops_aws_image_id: ami-0123456789abcdef0
      rlops_aws_volume_size: 100
      rlops_aws_key_name: rlops
      rlops_aws_public_key_file: ~/.ssh/id_ed25519.pub
      rlops_aws_ssh_cidr: 203.0.113.7/32
  register: plan
"""

RETURN = r"""
found:
  description: What rlops.fleet.aws_session_info returns for the session.
  returned: always
  type: dict
volume:
  description: The session's volume to attach (a volume record of aws_session_info); null
    when a new one is made.
  returned: always
  type: dict
availability_zone:
  description: Zone of RV(volume), where the instance must run; empty without a volume.
  returned: always
  type: str
  sample: us-east-1b
instance:
  description: ec2_spot_request's check-mode answer (the instance kept, or the candidate that
    would be launched, with C(availability_zone), C(instance_type), C(lifecycle) and
    C(spot_price)).
  returned: always
  type: dict
rollout_worker:
  description: With C(rlops_aws_rollout_workers) above 0, ec2_spot_request's check-mode answer
    for the first rollout worker (C(rlops_aws_rollout_instance_types) in the zone of
    RV(instance)); null without workers.
  returned: always
  type: dict
attachment:
  description: ebs_volume_attachment's check-mode answer in the zone of RV(instance).
  returned: always
  type: dict
vpc_id:
  description: The VPC the session's security group goes to.
  returned: always
  type: str
  sample: vpc-0123456789abcdef0
ssh_cidr:
  description: Who may SSH in.
  returned: always
  type: str
  sample: 203.0.113.7/32
"""

from datetime import datetime, timezone

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.rlops.fleet.plugins.module_utils.aws_common import run_module
from ansible_collections.rlops.fleet.plugins.module_utils.aws_provision_plan import ProvisionPlan
from ansible_collections.rlops.fleet.plugins.module_utils.session_checks import session_id_error


def main():
    argument_spec = dict(
        session=dict(type="str", required=True),
        mode=dict(type="str", required=True, choices=["new", "resume"]),
        settings=dict(type="dict", required=True),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    session = module.params["session"]
    problem = session_id_error(session)
    run_module(module, lambda ec2: ProvisionPlan(module, ec2, datetime.now(timezone.utc)).run(),
               problem and f"aws_session_plan for session {session}: {problem}")


if __name__ == "__main__":
    main()
