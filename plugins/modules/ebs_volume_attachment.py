#!/usr/bin/python
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)

DOCUMENTATION = r"""
---
module: ebs_volume_attachment
short_description: Keep a training session's EBS volume attached to its instance
version_added: 0.1.0
description:
  - Finds the session's data volume by its C(rlops:session) tag (or by O(volume_id)),
    creates it when there is none (encrypted, gp3 by default) in the instance's zone, and
    attaches it to O(instance_id) at O(device_name).
  - Waits until the attachment itself is C(attached), which is what the host needs before it
    can mount the disk (the volume's C(in-use) state comes earlier).
  - A volume in another zone than the instance is refused before anything changes, with
    the zone to resume in. A volume still attached to a terminated or shutting-down instance
    (an interrupted spot instance) is waited for until EC2 releases it. A volume attached to
    an instance that still runs is refused unless O(force_detach=true).
  - Returns the device name EC2 reports and where the disk appears on the host
    (RV(host_device_candidates)) - on Nitro instances an NVMe device named after the volume
    id, on Xen instances C(/dev/xvdX) for C(/dev/sdX).
  - With O(state=absent), detaches the volume and waits until it is released. The volume is
    never deleted, and the module has no option to delete it; delete a session's volume
    with M(amazon.aws.ec2_vol) once its results are retrieved.
  - Root volumes of the session's instances (tagged C(rlops:role=root) by
    M(rlops.fleet.ec2_spot_request)) are never taken for the data volume.
author:
  - rlops.fleet developers (!UNKNOWN)
attributes:
  check_mode:
    details:
      - RV(actions) lists the steps that would be taken; the other values describe the
        predicted outcome.
options:
  state:
    description:
      - V(present) finds or creates the volume and, with O(instance_id), attaches it.
      - V(absent) detaches the volume (from O(instance_id) only, when given). It never
        deletes the volume.
    type: str
    choices: [present, absent]
    default: present
  session:
    description:
      - The training session id. The volume is found by the C(rlops:session) tag, and a new
        volume gets it. Give this, O(volume_id), or both.
    type: str
  volume_id:
    description:
      - The volume to use. When O(session) is given too, the volume must not belong to
        another session, and it gets the session tag if it lacks it.
    type: str
  instance_id:
    description:
      - The instance to attach the volume to. Without it, O(state=present) only finds or
        creates the volume.
    type: str
  availability_zone:
    description:
      - Zone for a new volume when no O(instance_id) is given. With an instance, it must be
        the instance's zone.
    type: str
  device_name:
    description:
      - Device name to attach at, as EC2 names it. Refused when another volume holds that
        device on the instance. A volume already attached to the instance keeps its device.
    type: str
    default: /dev/sdf
  size:
    description:
      - Size in GiB of a new volume. Required when no volume exists yet; never changes an
        existing volume.
    type: int
  volume_type:
    description: Type of a new volume.
    type: str
    choices: [gp3, gp2, io1, io2, st1, sc1]
    default: gp3
  iops:
    description: Provisioned IOPS of a new gp3, io1 or io2 volume (required for io1 and io2).
    type: int
  throughput:
    description: Throughput in MiB/s of a new gp3 volume.
    type: int
  kms_key_id:
    description: KMS key for the encryption of a new volume. Defaults to the account's EBS key.
    type: str
  tags:
    description:
      - Extra tags for a new volume; set on a found volume where they differ.
        C(rlops:session) and C(rlops:role=data) are set by the module; a C(Name) of
        C(rlops-<session>-data) is added unless given.
    type: dict
    default: {}
  force_detach:
    description:
      - Detach the volume from another instance that still runs (EC2 C(Force) detach, which
        can lose data that instance has not written yet), and, with O(state=absent), force
        the detach.
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait for each step (volume created, released, attached, detached).
    type: int
    default: 300
    aliases: [timeout]
  poll_interval:
    description: Seconds between two reads while waiting.
    type: float
    default: 3
seealso:
  - module: rlops.fleet.ec2_spot_request
  - module: amazon.aws.ec2_vol
extends_documentation_fragment:
  - rlops.fleet.attributes
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Attach the session's volume (created on the first run)
  rlops.fleet.ebs_volume_attachment:
    session: "{{ rlops_session }}"
    instance_id: "{{ spot.instance_id }}"
    size: 200
    throughput: 250
  register: volume

# In a later play, on the training host:
- name: Mount the session's volume
  ansible.builtin.include_role:
    name: rlops.fleet.volume_mount
  vars:
    volume_mount_source: ebs
    volume_mount_ebs_volume_id: "{{ hostvars['localhost'].volume.volume_id }}"
    volume_mount_ebs_device_name: "{{ hostvars['localhost'].volume.device_name }}"

- name: Resume after a spot interruption (waits until the old instance lets go)
  rlops.fleet.ebs_volume_attachment:
    session: "{{ rlops_session }}"
    instance_id: "{{ new_spot.instance_id }}"
    wait_timeout: 600

- name: Detach the volume and keep it
  rlops.fleet.ebs_volume_attachment:
    session: "{{ rlops_session }}"
    state: absent
"""

RETURN = r"""
volume_id:
  description: The volume; null in check mode when it would be created.
  returned: success, unless no volume exists with O(state=absent)
  type: str
  sample: vol-0123456789abcdef0
instance_id:
  description: The instance the volume is attached to (O(state=present)) or was detached from.
  returned: success
  type: str
  sample: i-0123456789abcdef0
availability_zone:
  description: Zone of the volume.
  returned: success
  type: str
  sample: us-east-1b
device_name:
  description: Device name of the attachment as EC2 reports it.
  returned: state=present with an instance
  type: str
  sample: /dev/sdf
host_device_candidates:
  description:
    - Paths where the disk appears on the host, most likely first. Nitro -
      C(/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123...); Xen - C(/dev/xvdf),
      C(/dev/sdf). Both kinds when the instance type's hypervisor is unknown.
  returned: state=present with an instance
  type: list
  elements: str
  sample: [/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0]
created:
  description: Whether the volume was (or, in check mode, would be) created.
  returned: state=present
  type: bool
attached:
  description: Whether the volume is (or would be) attached to the instance.
  returned: success
  type: bool
actions:
  description: Steps taken (or, in check mode, to be taken), in order.
  returned: success
  type: list
  elements: str
  sample: ["create a new volume in us-east-1b", "attach vol-0123 to i-0abc at /dev/sdf",
           "wait until the attachment is attached"]
volume:
  description: The volume as read at the end.
  returned: when a volume exists
  type: dict
  contains:
    size:
      description: Size in GiB.
      type: int
    volume_type:
      description: Volume type.
      type: str
    iops:
      description: IOPS.
      type: int
    throughput:
      description: Throughput in MiB/s.
      type: int
    encrypted:
      description: Whether the volume is encrypted.
      type: bool
    state:
      description: Volume state.
      type: str
    tags:
      description: Tags of the volume.
      type: dict
"""

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.rlops.fleet.plugins.module_utils.aws_common import run_module
from ansible_collections.rlops.fleet.plugins.module_utils.aws_ebs import params_error
from ansible_collections.rlops.fleet.plugins.module_utils.aws_ebs_attach import (
    ARGUMENT_SPEC,
    VolumeAttachment,
)


def main():
    module = AnsibleAWSModule(argument_spec=ARGUMENT_SPEC,
                              required_one_of=[["session", "volume_id"]],
                              supports_check_mode=True)
    problem = params_error(module.params)
    which = module.params["volume_id"] or f"session {module.params['session']}"
    run_module(module, lambda ec2: VolumeAttachment(module, ec2).run(),
               problem and f"ebs_volume_attachment for {which}: {problem}")


if __name__ == "__main__":
    main()
