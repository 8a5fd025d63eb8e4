#!/usr/bin/python
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)

DOCUMENTATION = r"""
---
module: ec2_spot_request
short_description: Get one EC2 spot instance for a training session, cheapest place first
version_added: 0.1.0
description:
  - Finds the instance of a training session by its C(rlops:session) tag, or launches one.
  - Candidates are every pair of O(instance_types) and availability zones the region offers,
    ranked by the latest spot price (cheapest first; equal prices keep the order of
    O(instance_types), then of the zones). When a candidate has no capacity (for example
    C(InsufficientInstanceCapacity), C(MaxSpotInstanceCountExceeded), C(SpotMaxPriceTooLow), or a
    request status such as C(capacity-not-available) or C(price-too-low)), the next one is
    tried; with O(on_demand_fallback=true) an on-demand instance is launched when no spot
    candidate succeeds.
  - Launches through EC2 RunInstances with spot market options, which (unlike the legacy
    RequestSpotInstances call) takes launch templates, IMDSv2 settings and tags for the
    instance, its volumes and the spot request in one call. The metadata service always
    requires IMDSv2 tokens (C(HttpTokens=required), hop limit 2 so containers reach it) and
    the root volume is always encrypted.
  - The ClientToken of each launch is derived from the session, the candidate and the
    market, so a run cut short and started again gets the instance the first run launched.
  - Waits until the instance is C(running) and returns where it runs, what it costs and
    every candidate tried.
  - With O(state=absent), cancels the session's spot requests and, with
    O(terminate_instance=true), terminates its instances and waits until they are gone.
    Volumes tagged for the session other than root volumes are never touched.
  - Everything is checked before the first change is made (instance types, zones, image,
    tags, credentials); a bad value ends the task with one message.
author:
  - rlops.fleet developers (!UNKNOWN)
attributes:
  check_mode:
    details:
      - Reports the candidates in the order they would be tried.
  idempotent:
    details:
      - The session's running instance is found by its tag, and launches use a ClientToken
        derived from the session.
options:
  state:
    description:
      - V(present) finds or launches the session's instance and waits until it runs.
      - V(absent) cancels the session's spot requests (and terminates its instances with
        O(terminate_instance=true)).
    type: str
    choices: [present, absent]
    default: present
  session:
    description:
      - The training session id. Tagged as C(rlops:session) on the spot request, the
        instance and its volumes; the instance is found by this tag.
    type: str
    required: true
  instance_types:
    description:
      - Candidate instance types, in order of preference for equal prices.
      - Required with O(state=present).
    type: list
    elements: str
  availability_zones:
    description:
      - Zones to consider. Defaults to every zone of the region.
    type: list
    elements: str
  availability_zone:
    description:
      - The only zone to consider, typically where the session's EBS volume lives (a volume
        attaches only to an instance in its own zone). Wins over O(availability_zones).
      - A running instance of the session in another zone is an error.
    type: str
  tags:
    description:
      - Extra tags for the instance, its volumes and the spot request. C(rlops:session) and
        C(rlops:role) are set by the module; a C(Name) of C(rlops-<session>) is added unless
        given.
    type: dict
    default: {}
  terminate_instance:
    description:
      - With O(state=absent), also terminate the session's instances and wait until they are
        terminated. Root volumes go with them; data volumes are kept.
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait for the instance to run (or to terminate).
    type: int
    default: 600
    aliases: [timeout]
  poll_interval:
    description: Seconds between two reads while waiting.
    type: float
    default: 5
notes:
  - Spot prices come from C(DescribeSpotPriceHistory) for C(Linux/UNIX); the price returned in
    RV(spot_price) is the latest market price for the instance's type and zone, which is
    what the hour is billed at.
  - Instances launched from earlier runs are found by tag in the states C(pending),
    C(running), C(stopping) and C(stopped); a stopped persistent spot instance is started
    again only when it was stopped by a user.
extends_documentation_fragment:
  - rlops.fleet.attributes
  - rlops.fleet.ec2_launch
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
seealso:
  - module: rlops.fleet.ebs_volume_attachment
"""

EXAMPLES = r"""
- name: Get a GPU spot instance for the session
  rlops.fleet.ec2_spot_request:
    session: cartpole-20261122t051500z
    instance_types: [g4dn.xlarge, g5.xlarge, g4dn.2xlarge]
    image_id: ami-0123456789abcdef0
    key_name: rlops
    security_group_ids: [sg-0123456789abcdef0]
    iam_instance_profile: rlops-trainer
    root_volume_size: 100
    on_demand_fallback: true
    tags:
      project: rl
  register: spot

- name: Resume in the zone where the session's volume lives, from a launch template
  rlops.fleet.ec2_spot_request:
    session: "{{ rlops_session }}"
    availability_zone: "{{ volume.availability_zone }}"
    instance_types: [g4dn.xlarge]
    launch_template:
      name: rlops-trainer
    spot_type: persistent
    instance_interruption_behavior: stop
    max_price: "0.40"

- name: Stop paying for the session's instance (the data volume stays)
  rlops.fleet.ec2_spot_request:
    session: "{{ rlops_session }}"
    state: absent
    terminate_instance: true
"""

RETURN = r"""
instance_id:
  description: The session's instance.
  returned: state=present, outside check mode or when an instance exists
  type: str
  sample: i-0123456789abcdef0
request_id:
  description: The spot instance request of the instance; null for on-demand instances.
  returned: state=present
  type: str
  sample: sir-0123abcd
availability_zone:
  description: Zone the instance runs in (or would be launched in, in check mode).
  returned: state=present
  type: str
  sample: us-east-1b
instance_type:
  description: Instance type of the instance (or of the first candidate, in check mode).
  returned: state=present
  type: str
  sample: g4dn.xlarge
lifecycle:
  description: V(spot) or V(on-demand).
  returned: state=present
  type: str
  sample: spot
spot_price:
  description: Latest spot market price in USD per hour for the type and zone; null when unknown.
  returned: state=present
  type: str
  sample: "0.2133"
max_price:
  description: The spot request's maximum price, when EC2 reports it.
  returned: state=present
  type: str
  sample: "0.526"
public_ip:
  description: Public IPv4 address; null when the instance has none.
  returned: state=present
  type: str
  sample: 203.0.113.10
private_ip:
  description: Private IPv4 address.
  returned: state=present
  type: str
  sample: 10.0.1.23
instance_state:
  description: State of the instance when the module finished.
  returned: state=present
  type: str
  sample: running
candidates:
  description:
    - Candidates in the order tried (or to be tried, in check mode). Empty when the session's
      instance already existed.
  returned: state=present
  type: list
  elements: dict
  contains:
    instance_type:
      description: Instance type of the candidate.
      type: str
    availability_zone:
      description: Zone of the candidate.
      type: str
    market:
      description: V(spot) or V(on-demand).
      type: str
    price:
      description: Latest spot price, null when unknown.
      type: str
    outcome:
      description: V(launched), V(planned), V(skipped) or the error / request status code.
      type: str
    message:
      description: Why the candidate was skipped or failed.
      type: str
  sample:
    - {instance_type: g4dn.xlarge, availability_zone: us-east-1a, market: spot, price: "0.21",
       outcome: InsufficientInstanceCapacity, message: "We currently do not have capacity"}
    - {instance_type: g4dn.xlarge, availability_zone: us-east-1c, market: spot, price: "0.23",
       outcome: launched, message: ""}
cancelled_requests:
  description: Spot requests cancelled (or to be cancelled, in check mode).
  returned: state=absent
  type: list
  elements: str
  sample: [sir-0123abcd]
terminated_instances:
  description: Instances terminated (or to be terminated, in check mode).
  returned: state=absent
  type: list
  elements: str
  sample: [i-0123456789abcdef0]
instance_ids:
  description: Live instances of the session that were found.
  returned: state=absent
  type: list
  elements: str
  sample: [i-0123456789abcdef0]
"""

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.rlops.fleet.plugins.module_utils import ec2_launch
from ansible_collections.rlops.fleet.plugins.module_utils.aws_common import run_module
from ansible_collections.rlops.fleet.plugins.module_utils.ec2_spot_launch import (
    ARGUMENT_SPEC,
    SpotRequest,
)


def main():
    module = AnsibleAWSModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    problem = ec2_launch.params_error(module.params)
    run_module(module, lambda ec2: SpotRequest(module, ec2).run(),
               problem and f"ec2_spot_request for session {module.params['session']}: {problem}")


if __name__ == "__main__":
    main()
