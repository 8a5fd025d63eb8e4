# -*- coding: utf-8 -*-
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""The options of the spot-launch engine (plugins/module_utils/ec2_launch.py,
LAUNCH_ARGUMENT_SPEC): what to launch and on which market."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  max_price:
    description:
      - Highest hourly price to pay for a spot instance, in USD, as a string (V("0.55")).
      - Candidates whose latest price is already higher are skipped. Defaults to the
        on-demand price (EC2's default).
    type: str
  spot_type:
    description:
      - V(one-time) requests end when the instance is interrupted; V(persistent) requests
        restart a stopped or hibernated instance when capacity returns.
      - EC2 RunInstances accepts V(persistent) only with
        O(instance_interruption_behavior=stop) or V(hibernate).
    type: str
    choices: [one-time, persistent]
    default: one-time
  instance_interruption_behavior:
    description:
      - What EC2 does to the instance when it takes the capacity back.
      - V(stop) and V(hibernate) need O(spot_type=persistent); V(hibernate) also needs an
        instance type and AMI that support hibernation.
    type: str
    choices: [terminate, stop, hibernate]
    default: terminate
  on_demand_fallback:
    description:
      - Launch an on-demand instance (candidates in the same order) when no spot candidate
        has capacity.
    type: bool
    default: false
  launch_template:
    description:
      - A launch template to launch from. The module still sets the instance type, zone,
        market options, metadata options, tags and the encrypted root volume.
      - The root device name is read from the image (O(image_id) or the template's).
    type: dict
    suboptions:
      id:
        description: Launch template id. Give this or O(launch_template.name).
        type: str
      name:
        description: Launch template name. Give this or O(launch_template.id).
        type: str
      version:
        description: Template version number, or V($Default) / V($Latest).
        type: str
        default: $Default
  image_id:
    description:
      - AMI id. Required unless O(launch_template) names an image.
    type: str
  key_name:
    description: EC2 key pair name for SSH access.
    type: str
  security_group_ids:
    description: Security group ids for the instance.
    type: list
    elements: str
  subnet_ids:
    description:
      - Subnet to use per zone, as a mapping C(zone -> subnet id). When given, only zones
        with a subnet are candidates; otherwise the default VPC's subnet of each zone is
        used.
    type: dict
  iam_instance_profile:
    description: IAM instance profile name or ARN for the instance (for example for S3 storage).
    type: str
  user_data:
    description: User data (plain text; the SDK base64-encodes it).
    type: str
  root_volume_size:
    description:
      - Size of the root volume in GiB. Defaults to the image's size. The root volume is
        always gp3, encrypted, and deleted with the instance.
    type: int
"""
