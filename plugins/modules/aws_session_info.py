#!/usr/bin/python
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)

DOCUMENTATION = r"""
---
module: aws_session_info
short_description: Find a training session's EC2 instances and EBS volumes, with the cost so far
version_added: 0.1.0
description:
  - Reads the instances and volumes that carry a session's C(rlops:session) tag (or the tag
    of any session), and optionally one more volume by id. Changes nothing.
  - For every spot instance, the cost of its current run so far is the spot price history
    of its type and zone (C(DescribeSpotPriceHistory), Linux/UNIX) integrated over the time
    it has been running, to the second (Linux spot instances are billed per second).
    On-demand instances get no cost (their price is not in that history).
  - Every volume attachment comes with the state of the instance it is attached to, so a
    playbook can tell a volume held by a running instance from one that a terminated spot
    instance is about to release.
  - The rlops.fleet playbooks run it first on the AWS path, so that missing credentials or
    an unknown volume end the run with one message before anything is created.
author:
  - rlops.fleet developers (!UNKNOWN)
options:
  session:
    description:
      - The training session id. Without it, the resources of every session in the region
        (everything tagged C(rlops:session)).
    type: str
  volume_id:
    description:
      - A volume to read as well, tagged or not (a volume given to a new session). A volume
        that does not exist is an error.
    type: str
  cost:
    description: Read the spot price history to compute each spot instance's cost so far.
    type: bool
    default: true
notes:
  - Terminated instances stay visible in EC2's answers for about an hour; after that the cost
    of their runs is no longer reported.
  - The cost is that of the instance's current run (since its C(LaunchTime)), and of compute
    only; EBS storage and data transfer are billed apart.
extends_documentation_fragment:
  - rlops.fleet.attributes.info_module
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
seealso:
  - module: rlops.fleet.ec2_spot_request
  - module: rlops.fleet.ebs_volume_attachment
"""

EXAMPLES = r"""
- name: Find the session's instance and volume
  rlops.fleet.aws_session_info:
    session: cartpole-20261122t051500z
    region: us-east-1
  register: found

- name: Show what the session's instances cost so far
  ansible.builtin.debug:
    msg: "{{ item.instance_id }} {{ item.state }}: {{ item.cost_so_far }} USD"
  loop: "{{ found.instances }}"

- name: Read a volume given for a new session, with the resources of every session
  rlops.fleet.aws_session_info:
    volume_id: vol-0123456789abcdef0
    cost: false
"""

RETURN = r"""
sessions:
  description: Session ids found on instances or volumes, sorted.
  returned: always
  type: list
  elements: str
  sample: [cartpole-20261122t051500z]
instances:
  description: Instances tagged for the session (or any session), every state, oldest first.
  returned: always
  type: list
  elements: dict
  contains:
    instance_id:
      description: Instance id.
      type: str
    session:
      description: Value of its C(rlops:session) tag.
      type: str
    state:
      description: C(pending), C(running), C(stopping), C(stopped), C(shutting-down) or
        C(terminated).
      type: str
    instance_type:
      description: Instance type.
      type: str
    availability_zone:
      description: Zone.
      type: str
    lifecycle:
      description: C(spot) or C(on-demand).
      type: str
    launch_time:
      description: Start of the current run (ISO 8601, UTC); null when unknown.
      type: str
    running_hours:
      description: Hours of the current run so far (to its stop or termination); null when unknown.
      type: float
    spot_price:
      description: Latest spot price in USD per hour of its type and zone; null for on-demand.
      type: str
    cost_so_far:
      description: USD of the current run so far at the spot price history; null when unknown.
      type: str
    public_ip:
      description: Public IPv4 address, null when none.
      type: str
    private_ip:
      description: Private IPv4 address.
      type: str
    key_name:
      description: Key pair name.
      type: str
    data_volume:
      description: The session's data volume attached to it, as C(volume_id) and C(device);
        null when none is.
      type: dict
    role:
      description: C(head) (the session's instance with the data volume, or one without a
        C(rlops:role) tag) or C(rollout) (a rollout worker of a Ray session, no volume).
      type: str
    slot:
      description: A rollout worker's slot (C(rlops:slot)), 1 to C(rlops_aws_rollout_workers);
        null for the head.
      type: int
    tags:
      description: Tags as a dict.
      type: dict
  sample:
    - instance_id: i-0123456789abcdef0
      session: cartpole-20261122t051500z
      state: running
      instance_type: g4dn.xlarge
      availability_zone: us-east-1b
      lifecycle: spot
      launch_time: "2026-11-22T05:15:00+00:00"
      running_hours: 1.5
      spot_price: "0.2133"
      cost_so_far: "0.319950"
volumes:
  description: Volumes tagged for the session (or any session), root volumes included.
  returned: always
  type: list
  elements: dict
  contains:
    volume_id:
      description: Volume id.
      type: str
    session:
      description: Value of its C(rlops:session) tag.
      type: str
    role:
      description: Value of its C(rlops:role) tag, C(data) or C(root).
      type: str
    availability_zone:
      description: Zone.
      type: str
    state:
      description: Volume state.
      type: str
    size:
      description: Size of the volume in GiB.
      type: int
    volume_type:
      description: Volume type.
      type: str
    attachments:
      description: Live attachments, each with C(instance_id), C(device), C(state) and the
        C(instance_state) of that instance (null when EC2 no longer knows it).
      type: list
      elements: dict
    tags:
      description: Tags as a dict.
      type: dict
volume:
  description: The volume named by O(volume_id), in the form of RV(volumes); null without it.
  returned: always
  type: dict
region_sessions:
  description: Every session with resources in the region, read (one more pass) only when
    O(session) has none, so that a playbook can name them; else RV(sessions).
  returned: always
  type: list
  elements: str
  sample: [cartpole-20261122t051500z]
"""

from datetime import datetime, timezone

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.rlops.fleet.plugins.module_utils.aws_common import run_module
from ansible_collections.rlops.fleet.plugins.module_utils.aws_session_read import SessionReader
from ansible_collections.rlops.fleet.plugins.module_utils.session_checks import session_id_error


def main():
    argument_spec = dict(
        session=dict(type="str"),
        volume_id=dict(type="str"),
        cost=dict(type="bool", default=True),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    session, params = module.params["session"], module.params
    problem = session_id_error(session) if session else None

    def find(ec2):
        now = datetime.now(timezone.utc)
        found = SessionReader(ec2, module.region, session, now).find(params["volume_id"],
                                                                     params["cost"])
        found["region_sessions"] = found["sessions"]
        if session and not found["sessions"]:
            found["region_sessions"] = SessionReader(ec2, module.region, None, now).find()[
                "sessions"]
        return found

    run_module(module, find, problem and f"aws_session_info for session {session}: {problem}")


if __name__ == "__main__":
    main()
