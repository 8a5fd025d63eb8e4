#!/usr/bin/python
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)

DOCUMENTATION = r"""
---
module: aws_session_resources
short_description: Create and remove what a training session owns in AWS
version_added: 0.1.0
description:
  - The AWS provider's launch (rlops.fleet.provider_aws, entry point C(provision)) and its
    teardown (entry point C(teardown), in stop) in one call each, following the provider's
    C(rlops_aws_*) settings.
  - With O(state=present), first checks the request as M(rlops.fleet.aws_session_plan) does
    (the same code, with O(mode)) and fails with its one message before anything is created;
    then imports O(public_key) as the key pair C(rlops_aws_key_name) unless
    a key pair of that name exists (never replaced); sets the security group
    C(rlops-<session>) in the plan's VPC to SSH (tcp/22) from the plan's C(ssh_cidr) only
    (other ingress rules are removed; egress rules are left as they are) and the session's
    tags; gets the session's spot instance (in the zone
    of the plan's volume when it has one) with the engine of M(rlops.fleet.ec2_spot_request);
    attaches the session's volume (made in the instance's zone when it has none) with the
    engine of M(rlops.fleet.ebs_volume_attachment). A re-run finds what the first made.
  - With C(rlops_aws_rollout_workers) above 0 (a Ray session), the instance is the session's
    head (tag C(rlops:role=head)) and each of N slots gets a rollout worker - a spot instance
    of C(rlops_aws_rollout_instance_types) without a data volume, in the head's zone and
    security group, tagged C(rlops:role=rollout) and C(rlops:slot=<n>) - with the same engine,
    which sees only the instance of its slot (a running worker is kept, a missing one
    launched, workers beyond N terminated). The group then also lets all TCP in from itself.
  - With O(state=absent), reads the session's instances and volumes by their
    C(rlops:session) tag, terminates the rollout workers (always, since they hold no volume), and
    does what stop was asked about the head, each only when its own setting asks -
    C(rlops_aws_terminate) cancels the session's spot requests, terminates its instance
    (waiting until it is gone) and removes its security group; C(rlops_aws_snapshot)
    snapshots the data volume (tagged for the session, waiting until it completes);
    C(rlops_aws_delete_volume), with C(rlops_aws_terminate) only, deletes the data volume
    once the terminated instance let go of it. Nothing else is ever deleted - a volume or
    snapshot the user made stays unless both settings ask for its deletion.
  - Bad input is refused with one message before anything changes. With O(state=absent),
    C(rlops_aws_delete_volume) without C(rlops_aws_terminate), or a snapshot or delete of a
    session without a data volume, is refused; O(step=check) only refuses (stop runs it
    before the job stops), O(step=apply) acts.
author:
  - rlops.fleet developers (!UNKNOWN)
attributes:
  check_mode:
    description: Can run in check mode and report what would change without changing it.
    support: full
    details:
      - RV(lines) say what would be created or removed; nothing is.
  diff_mode:
    description: Reports the resource before and after when run with C(--diff).
    support: none
  idempotent:
    description: A second run with the same arguments reports no change.
    support: full
    details:
      - Each snapshot asked for is a new one.
options:
  session:
    description: The training session id (the C(rlops:session) tag of everything it owns).
    type: str
    required: true
  state:
    description: V(present) at launch, V(absent) at stop.
    type: str
    choices: [present, absent]
    default: present
  settings:
    description:
      - The playbooks' C(rlops_aws_*) settings by name (docs/aws.md). V(present) reads what
        M(rlops.fleet.aws_session_plan) reads, and C(key_name), C(iam_instance_profile),
        C(force_detach), C(wait_timeout), C(poll_interval); V(absent) reads C(terminate),
        C(snapshot), C(delete_volume), C(tags), C(wait_timeout), C(poll_interval).
    type: dict
    required: true
  mode:
    description:
      - V(new) for train_new (refuses a session that already has resources), V(resume) for
        resume (takes the session's data volume). Required with V(present).
    type: str
    choices: [new, resume]
  public_key:
    description:
      - The SSH public key to import as the key pair C(rlops_aws_key_name) when none of that
        name exists (the content of C(rlops_aws_public_key_file)). V(present) only.
    type: str
  step:
    description:
      - With V(absent) - V(check) only refuses what stop cannot carry out and changes
        nothing; V(apply) does it.
    type: str
    choices: [check, apply]
    default: apply
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
seealso:
  - module: rlops.fleet.aws_session_plan
  - module: rlops.fleet.ec2_spot_request
  - module: rlops.fleet.ebs_volume_attachment
"""

EXAMPLES = r"""
- name: Check the request, then create the key pair, the security group, the instance and its volume
  rlops.fleet.aws_session_resources:
    session: "{{ rlops_session }}"
    mode: new
    settings: "{{ settings }}"
    public_key: "{{ lookup('ansible.builtin.file', '~/.ssh/id_ed25519.pub') }}"
  register: launched

- name: Terminate the instance and snapshot the data volume (kept)
  rlops.fleet.aws_session_resources:
    session: "{{ rlops_session }}"
    state: absent
    settings:
      rlops_aws_terminate: true
      rlops_aws_snapshot: true
"""

RETURN = r"""
hosts:
  description: V(present) - the instances that train, as M(rlops.fleet.aws_session_info)
    records an instance, with C(role) (C(head), C(rollout)), C(slot) (a worker's) and
    C(data_volume) (C(volume_id), C(device); null for a worker); none in check mode for one
    that would first be launched or started.
  returned: state=present
  type: list
  elements: dict
to_create:
  description: V(present) in check mode - what would first be created, and so cannot be
    reached (C(instance of session <id>), C(rollout worker <n> of session <id>)).
  returned: state=present
  type: list
  elements: str
lines:
  description: What was done (or would be, in check mode), each line naming the session;
    with V(absent), what is left (the instance, the volumes); empty for O(step=check).
  returned: always
  type: list
  elements: str
  sample: ["instance: terminated i-0123456789abcdef0", "volume: vol-0123 kept, snapshot snap-0123"]
key_pair_imported:
  description: Whether the key pair was (would be) imported.
  returned: state=present
  type: bool
plan:
  description: V(present) - the result of M(rlops.fleet.aws_session_plan)'s checks (the same
    keys); V(absent) - C(problem), C(terminate), C(volumes) (the data volumes), C(snapshot)
    and C(delete) (the volume ids to snapshot and to delete).
  returned: always
  type: dict
security_group:
  description: C(group_id) (null in check mode when it would be created) and C(changed).
  returned: state=present
  type: dict
instance:
  description: The result of the engine of M(rlops.fleet.ec2_spot_request).
  returned: state=present
  type: dict
attachment:
  description: The result of the engine of M(rlops.fleet.ebs_volume_attachment).
  returned: state=present
  type: dict
rollout_workers:
  description: The engine's result for each rollout worker's slot (with C(slot)).
  returned: state=present
  type: list
  elements: dict
terminated_workers:
  description: The rollout workers terminated (would be, in check mode).
  returned: state=absent and step=apply
  type: list
  elements: str
terminated_instances:
  description: Instances terminated (would be, in check mode).
  returned: state=absent
  type: list
  elements: str
snapshots:
  description: Snapshots made (none in check mode).
  returned: state=absent
  type: list
  elements: str
removed_groups:
  description: Security groups removed (would be, in check mode).
  returned: state=absent
  type: list
  elements: str
"""

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.rlops.fleet.plugins.module_utils.aws_common import run_module
from ansible_collections.rlops.fleet.plugins.module_utils.aws_resources_apply import (
    SessionResources,
)
from ansible_collections.rlops.fleet.plugins.module_utils.session_checks import session_id_error


def main():
    argument_spec = dict(
        session=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        settings=dict(type="dict", required=True),
        mode=dict(type="str", choices=["new", "resume"]),
        public_key=dict(type="str", no_log=False),
        step=dict(type="str", choices=["check", "apply"], default="apply"),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True,
                              required_if=[("state", "present", ["mode"])])
    session = module.params["session"]
    problem = session_id_error(session)
    run_module(module, lambda ec2: SessionResources(module, ec2).run(),
               problem and f"aws_session_resources for session {session}: {problem}")


if __name__ == "__main__":
    main()
