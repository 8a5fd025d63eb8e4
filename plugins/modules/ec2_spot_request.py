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
    description: Can run in check mode and report what would change without changing it.
    support: full
    details:
      - Reports the candidates in the order they would be tried.
  diff_mode:
    description: Reports the instance before and after when run with C(--diff).
    support: full
  idempotent:
    description: A second run with the same arguments reports no change.
    support: full
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
      description: Instance type.
      type: str
    availability_zone:
      description: Zone.
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

from datetime import datetime, timedelta, timezone  # noqa: E402

from ansible_collections.amazon.aws.plugins.module_utils.modules import (  # noqa: E402
    AnsibleAWSModule,
)
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry  # noqa: E402
from ansible_collections.rlops.fleet.plugins.module_utils.aws_common import (  # noqa: E402
    ROLE_TAG,
    FleetAWSError,
    aws_errors,
    error_code,
    fail_module,
    session_filter,
    session_tags,
    tag_specifications,
    tags_error,
)
from ansible_collections.rlops.fleet.plugins.module_utils.aws_wait import (  # noqa: E402
    WaitTimeout,
    describe_or_none,
    wait_for,
)
from ansible_collections.rlops.fleet.plugins.module_utils.ec2_placement import (  # noqa: E402
    STATE_REASON_NEXT,
    Candidate,
    after_launch_error,
    after_request_status,
    client_token,
    latest_prices,
    rank_candidates,
    split_by_max_price,
    spot_options_error,
    zones_to_try,
)
from ansible_collections.rlops.fleet.plugins.module_utils.session_checks import (  # noqa: E402
    session_id_error,
)

LIVE_STATES = ["pending", "running", "stopping", "stopped"]
OPEN_REQUEST_STATES = ["open", "active", "disabled"]
PRODUCTS = ["Linux/UNIX", "Linux/UNIX (Amazon VPC)"]
# EC2's answers when a ClientToken was used before by an instance that no longer runs.
TOKEN_REUSED = ("IdempotentInstanceTerminated", "IdempotentParameterMismatch")
MAX_TOKEN_GENERATIONS = 20
# IMDSv2 only; hop limit 2 so that a job in a container on the host reaches it too.
METADATA_OPTIONS = {"HttpTokens": "required", "HttpEndpoint": "enabled",
                    "HttpPutResponseHopLimit": 2}


class NextCandidate(Exception):
    """This candidate has no capacity (now); `code` is EC2's verdict."""

    def __init__(self, code, message=""):
        super().__init__(message or code)
        self.code = code
        self.message = message


def params_error(params):
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


def instance_summary(instance):
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


def candidate_record(candidate: Candidate, market, outcome, message=""):
    return {"instance_type": candidate.instance_type,
            "availability_zone": candidate.availability_zone, "market": market,
            "price": candidate.price, "outcome": outcome, "message": message}


class SpotRequest:
    """Read, plan, apply for one session's instance. Methods raise; main() exits."""

    def __init__(self, module, ec2):
        self.module = module
        self.ec2 = ec2
        self.params = module.params
        self.session = self.params["session"]
        self.tags = session_tags(self.session, self.params["tags"], f"rlops-{self.session}")

    # ---- reads -----------------------------------------------------------------------

    def region_zones(self):
        with aws_errors(f"List the availability zones of region {self.module.region}"):
            zones = self.ec2.describe_availability_zones(
                Filters=[{"Name": "zone-type", "Values": ["availability-zone"]}],
                aws_retry=True)["AvailabilityZones"]
        return [z["ZoneName"] for z in zones if z.get("State", "available") == "available"]

    def check_instance_types(self, types):
        what = f"Check instance types {', '.join(types)}"
        try:
            with aws_errors(what):
                self.ec2.describe_instance_types(InstanceTypes=list(types), aws_retry=True)
        except FleetAWSError as err:
            if error_code(err.exception) != "InvalidInstanceType":
                raise
            aws_says = err.exception.response["Error"].get("Message", "unknown type")
            raise FleetAWSError(f"{what}: {aws_says}") from err

    def offerings(self, types, zones):
        with aws_errors(f"List where {', '.join(types)} are offered"):
            pages = self.ec2.get_paginator("describe_instance_type_offerings").paginate(
                LocationType="availability-zone",
                Filters=[{"Name": "instance-type", "Values": list(types)},
                         {"Name": "location", "Values": list(zones)}],
            ).build_full_result()
        return {(o.get("InstanceType"), o.get("Location"))
                for o in pages.get("InstanceTypeOfferings", [])}

    def price_records(self, types, zones):
        query = {"InstanceTypes": list(types), "ProductDescriptions": PRODUCTS,
                 "StartTime": datetime.now(timezone.utc) - timedelta(hours=3)}
        if len(zones) == 1:
            query["AvailabilityZone"] = zones[0]
        with aws_errors(f"Read the spot price history of {', '.join(types)}"):
            pages = self.ec2.get_paginator("describe_spot_price_history").paginate(
                **query).build_full_result()
        return pages.get("SpotPriceHistory", [])

    def live_instances(self):
        with aws_errors(f"Find the instances of session {self.session}"):
            pages = self.ec2.get_paginator("describe_instances").paginate(
                Filters=[session_filter(self.session),
                         {"Name": "instance-state-name", "Values": LIVE_STATES}],
            ).build_full_result()
        return [i for r in pages.get("Reservations", []) for i in r.get("Instances", [])]

    def describe_instance(self, instance_id):
        def call():
            reservations = self.ec2.describe_instances(
                InstanceIds=[instance_id], aws_retry=True)["Reservations"]
            found = [i for r in reservations for i in r.get("Instances", [])]
            return found[0] if found else None

        with aws_errors(f"Read instance {instance_id}"):
            return describe_or_none(call, ("InvalidInstanceID.NotFound",))

    def describe_request(self, request_id):
        if not request_id:
            return None

        def call():
            found = self.ec2.describe_spot_instance_requests(
                SpotInstanceRequestIds=[request_id], aws_retry=True)["SpotInstanceRequests"]
            return found[0] if found else None

        with aws_errors(f"Read spot request {request_id}"):
            return describe_or_none(call, ("InvalidSpotInstanceRequestID.NotFound",))

    def session_request_ids(self, live):
        """Open requests of the session: by tag, plus each live instance's own request
        (requests made without tags, or APIs that do not filter on them)."""
        with aws_errors(f"Find the spot requests of session {self.session}"):
            tagged = self.ec2.describe_spot_instance_requests(
                Filters=[session_filter(self.session),
                         {"Name": "state", "Values": OPEN_REQUEST_STATES}],
                aws_retry=True)["SpotInstanceRequests"]
        found = {r["SpotInstanceRequestId"] for r in tagged}
        for instance in live:
            request_id = instance.get("SpotInstanceRequestId")
            if request_id and request_id not in found:
                request = self.describe_request(request_id)
                if request and request.get("State") in OPEN_REQUEST_STATES:
                    found.add(request_id)
        return sorted(found)

    def root_device(self):
        """(device name, size in GiB) of the root volume of the image the instance boots, so
        that exactly that volume is made encrypted and sized."""
        image_id = self.params["image_id"]
        template = self.params["launch_template"]
        if not image_id:
            what = f"Read launch template {template.get('id') or template.get('name')}"
            ref = ({"LaunchTemplateId": template["id"]} if template.get("id")
                   else {"LaunchTemplateName": template["name"]})
            with aws_errors(what):
                versions = self.ec2.describe_launch_template_versions(
                    Versions=[template["version"]], aws_retry=True, **ref
                )["LaunchTemplateVersions"]
            data = (versions[0] if versions else {}).get("LaunchTemplateData") or {}
            image_id = data.get("ImageId")
            if not image_id or not image_id.startswith("ami-"):
                raise FleetAWSError(
                    f"{what}: version {template['version']} names no AMI id "
                    f"({image_id or 'none'}), so the root volume cannot be encrypted; "
                    "give image_id")
        what = f"Read image {image_id}"
        with aws_errors(what):
            images = self.ec2.describe_images(ImageIds=[image_id], aws_retry=True)["Images"]
        if not images:
            raise FleetAWSError(f"{what}: it does not exist in {self.module.region} or is "
                                "not shared with this account")
        device = images[0].get("RootDeviceName") or "/dev/xvda"
        image_size = next((m.get("Ebs", {}).get("VolumeSize")
                           for m in images[0].get("BlockDeviceMappings") or []
                           if m.get("DeviceName") == device), None)
        wanted = self.params["root_volume_size"]
        if wanted and image_size and wanted < image_size:
            raise FleetAWSError(f"{what}: root_volume_size {wanted} GiB is smaller than the "
                                f"image's root snapshot ({image_size} GiB)")
        return device, wanted or image_size

    # ---- plan ------------------------------------------------------------------------

    def validated_zones(self):
        region_zones = self.region_zones()
        zones, problem = zones_to_try(region_zones, self.params["availability_zones"],
                                      self.params["availability_zone"], self.module.region)
        what = f"Launch an instance for session {self.session}"
        if problem:
            raise FleetAWSError(f"{what}: {problem}")
        subnets = self.params["subnet_ids"]
        if subnets:
            unknown = ", ".join(sorted(set(subnets) - set(region_zones)))
            if unknown:
                raise FleetAWSError(
                    f"{what}: subnet_ids names zones not in {self.module.region}: {unknown}")
            zones = [z for z in zones if z in subnets]
            if not zones:
                raise FleetAWSError(f"{what}: subnet_ids has no subnet in the zones to use")
        return zones

    def ranked_candidates(self, zones):
        types = self.params["instance_types"]
        offered = self.offerings(types, zones)
        prices = latest_prices(self.price_records(types, zones))
        ranked = rank_candidates(prices, types, zones, offered)
        if not ranked:
            raise FleetAWSError(
                f"Launch an instance for session {self.session}: none of {', '.join(types)} "
                f"is offered in {', '.join(zones)}")
        return ranked

    def launch_parameters(self, root_device, root_size):
        p = self.params
        ebs = {"Encrypted": True, "VolumeType": "gp3", "DeleteOnTermination": True}
        if root_size:
            # The image's size when none is asked for: an override without a size is
            # refused by some EC2 implementations (moto) and means the same on AWS.
            ebs["VolumeSize"] = root_size
        launch = {"MinCount": 1, "MaxCount": 1, "MetadataOptions": dict(METADATA_OPTIONS),
                  "BlockDeviceMappings": [{"DeviceName": root_device, "Ebs": ebs}]}
        template = p["launch_template"]
        if template:
            launch["LaunchTemplate"] = {"Version": template["version"]}
            if template.get("id"):
                launch["LaunchTemplate"]["LaunchTemplateId"] = template["id"]
            else:
                launch["LaunchTemplate"]["LaunchTemplateName"] = template["name"]
        for key, name in (("image_id", "ImageId"), ("key_name", "KeyName"),
                          ("security_group_ids", "SecurityGroupIds"), ("user_data", "UserData")):
            if p[key]:
                launch[name] = p[key]
        profile = p["iam_instance_profile"]
        if profile:
            launch["IamInstanceProfile"] = (
                {"Arn": profile} if profile.startswith("arn:") else {"Name": profile})
        return launch

    def candidate_parameters(self, base, candidate, market):
        launch = dict(base, InstanceType=candidate.instance_type)
        subnet = (self.params["subnet_ids"] or {}).get(candidate.availability_zone)
        if subnet:
            launch["SubnetId"] = subnet
        else:
            launch["Placement"] = {"AvailabilityZone": candidate.availability_zone}
        kinds = ["instance"]
        if market == "spot":
            options = {"SpotInstanceType": self.params["spot_type"],
                       "InstanceInterruptionBehavior":
                           self.params["instance_interruption_behavior"]}
            if self.params["max_price"]:
                options["MaxPrice"] = str(self.params["max_price"])
            launch["InstanceMarketOptions"] = {"MarketType": "spot", "SpotOptions": options}
            kinds.append("spot-instances-request")
        # Root volumes carry the session tag too; rlops:role=root keeps ebs_volume_attachment
        # from taking one of them for the session's data volume.
        launch["TagSpecifications"] = (
            tag_specifications(self.tags, kinds)
            + tag_specifications(dict(self.tags, **{ROLE_TAG: "root"}), ["volume"]))
        return launch

    # ---- apply -----------------------------------------------------------------------

    def launch(self, base, candidate, market):
        """Launch one candidate and wait until it runs; NextCandidate when it has no room."""
        what = f"Launch {market} {candidate.label()} for session {self.session}"
        launch = self.candidate_parameters(base, candidate, market)
        for generation in range(MAX_TOKEN_GENERATIONS):
            token = client_token(self.session, candidate, market, generation)
            try:
                with aws_errors(what):
                    reservation = self.ec2.run_instances(ClientToken=token, **launch)
            except FleetAWSError as err:
                code = error_code(err.exception)
                if code in TOKEN_REUSED:
                    continue  # that token's instance is gone: use the next generation's
                if after_launch_error(code) == "next":
                    message = err.exception.response["Error"].get("Message", "")
                    raise NextCandidate(code, message) from err
                raise
            instance = reservation["Instances"][0]
            break
        else:
            raise FleetAWSError(f"{what}: the last {MAX_TOKEN_GENERATIONS} launch tokens of this "
                                "candidate belong to terminated instances")
        try:
            return self.wait_running(instance, what)
        except NextCandidate:
            self.clean_up(instance)
            raise

    def wait_running(self, instance, what):
        instance_id = instance["InstanceId"]

        def read():
            current = self.describe_instance(instance_id) or instance
            request_id = (current.get("SpotInstanceRequestId")
                          or instance.get("SpotInstanceRequestId"))
            return current, self.describe_request(request_id)

        def done(state):
            current, request = state
            name = (current.get("State") or {}).get("Name")
            if name == "running":
                return True
            status = (request or {}).get("Status") or {}
            request_says = after_request_status(status.get("Code"))
            if request_says == "next":  # no capacity: don't sit out the timeout
                raise NextCandidate(status["Code"], status.get("Message", ""))
            if name in (None, "pending"):
                return False
            # Stopped or terminated before it ran: the state reason tells whether another
            # candidate may do better.
            reason = current.get("StateReason") or {}
            if reason.get("Code") in STATE_REASON_NEXT:
                raise NextCandidate(reason["Code"], reason.get("Message", ""))
            why = reason.get("Message") or reason.get("Code") or "no reason given"
            if status.get("Code"):
                why += f"; spot request status {status['Code']}"
            raise FleetAWSError(f"{what}: instance {instance_id} went {name} before it ran "
                                f"({why})")

        try:
            (current, _request), _elapsed = wait_for(read, done, self.params["wait_timeout"],
                                                     self.params["poll_interval"])
        except WaitTimeout as exc:
            current, request = exc.last
            name = (current.get("State") or {}).get("Name")
            status = ((request or {}).get("Status") or {}).get("Code", "none")
            raise FleetAWSError(
                f"{what}: instance {instance_id} is still {name} after {exc.elapsed:.0f}s "
                f"(spot request status: {status}); it carries the session tag, so running "
                "this task again picks it up") from exc
        return current

    def clean_up(self, instance):
        """Leave nothing behind from a candidate that had no capacity."""
        instance_id = instance["InstanceId"]
        request_id = instance.get("SpotInstanceRequestId")
        with aws_errors(f"Clean up instance {instance_id} after its launch failed"):
            if request_id:
                self.ec2.cancel_spot_instance_requests(SpotInstanceRequestIds=[request_id],
                                                       aws_retry=True)
            self.ec2.terminate_instances(InstanceIds=[instance_id], aws_retry=True)

    def wait_terminated(self, instance_ids, what):
        def read():
            return {i: ((self.describe_instance(i) or {}).get("State") or {}).get(
                "Name", "terminated") for i in instance_ids}

        try:
            wait_for(read, lambda states: all(s == "terminated" for s in states.values()),
                     self.params["wait_timeout"], self.params["poll_interval"])
        except WaitTimeout as exc:
            states = ", ".join(f"{i} is {s}" for i, s in exc.last.items())
            raise FleetAWSError(
                f"{what}: not terminated after {exc.elapsed:.0f}s: {states}") from exc

    # ---- states ----------------------------------------------------------------------

    def present(self):
        zones = self.validated_zones()
        self.check_instance_types(self.params["instance_types"])
        live = self.live_instances()
        if len(live) > 1:
            ids = ", ".join(i["InstanceId"] for i in live)
            raise FleetAWSError(
                f"Find the instance of session {self.session}: {len(live)} live instances "
                f"carry its tag ({ids}); terminate the extra ones")
        if live:
            return self.keep(live[0])

        ranked = self.ranked_candidates(zones)
        to_try, too_dear = split_by_max_price(ranked, self.params["max_price"])
        base = self.launch_parameters(*self.root_device())
        max_price = self.params["max_price"]
        tried = [candidate_record(c, "spot", "skipped",
                                  f"latest price {c.price} is above max_price {max_price}")
                 for c in too_dear]
        plan = [(c, "spot") for c in to_try]
        if self.params["on_demand_fallback"]:
            plan += [(c, "on-demand") for c in ranked]
        if not plan:
            raise FleetAWSError(
                f"Launch a spot instance for session {self.session}: every candidate's latest "
                f"price is above max_price {max_price}", candidates=tried)

        if self.module.check_mode:
            first, market = plan[0]
            result = {"changed": True, "instance_id": None, "request_id": None,
                      "availability_zone": first.availability_zone,
                      "instance_type": first.instance_type, "lifecycle": market,
                      "spot_price": first.price, "max_price": max_price, "public_ip": None,
                      "private_ip": None, "instance_state": None,
                      "candidates": tried + [candidate_record(c, m, "planned") for c, m in plan]}
            return self.with_diff(result, None)

        for candidate, market in plan:
            try:
                instance = self.launch(base, candidate, market)
            except NextCandidate as verdict:
                tried.append(candidate_record(candidate, market, verdict.code, verdict.message))
                continue
            tried.append(candidate_record(candidate, market, "launched"))
            result = self.describe_result(instance, candidate.price, changed=True)
            result["candidates"] = tried
            return self.with_diff(result, None)

        summary = "; ".join(f"{t['market']} {t['instance_type']} in {t['availability_zone']}: "
                            f"{t['outcome']}" for t in tried)
        hint = ("add instance types or zones" if self.params["on_demand_fallback"] else
                "add instance types or zones, raise max_price, or set on_demand_fallback: true")
        raise FleetAWSError(f"Launch an instance for session {self.session}: no candidate had "
                            f"capacity ({summary}); {hint}", candidates=tried)

    def keep(self, instance):
        """The session already has an instance: check that it fits, start or wait for it."""
        instance_id = instance["InstanceId"]
        zone = (instance.get("Placement") or {}).get("AvailabilityZone")
        wanted = self.params["availability_zone"]
        what = f"Use instance {instance_id} of session {self.session}"
        if wanted and zone and zone != wanted:
            raise FleetAWSError(
                f"{what}: it runs in {zone} but availability_zone is {wanted} (where the "
                "session's volume is); terminate it (state: absent, terminate_instance: true) "
                "and run again")
        if instance.get("InstanceType") not in self.params["instance_types"]:
            self.module.warn(f"{what}: its type {instance.get('InstanceType')} is not in "
                             "instance_types; keeping it")
        state = (instance.get("State") or {}).get("Name")
        changed = False
        if state == "stopping":
            raise FleetAWSError(f"{what}: it is stopping; run again once it has stopped")
        if state == "stopped":
            request = self.describe_request(instance.get("SpotInstanceRequestId"))
            status = ((request or {}).get("Status") or {}).get("Code")
            if request and status != "instance-stopped-by-user":
                raise FleetAWSError(
                    f"{what}: EC2 stopped it ({status or 'no status'}) and starts it again "
                    "when capacity returns; wait, or terminate it (state: absent, "
                    "terminate_instance: true) and run again elsewhere")
            changed = True
            if not self.module.check_mode:
                with aws_errors(f"{what}: start it"):
                    self.ec2.start_instances(InstanceIds=[instance_id], aws_retry=True)
        if state != "running" and not self.module.check_mode:
            try:
                instance = self.wait_running(instance, what)
            except NextCandidate as verdict:
                raise FleetAWSError(
                    f"{what}: EC2 has no capacity for it ({verdict.code}: {verdict.message}); "
                    "terminate it (state: absent, terminate_instance: true) and run again "
                    "elsewhere") from verdict
        result = self.describe_result(instance, None, changed=changed)
        result["candidates"] = []
        return self.with_diff(result, instance)

    def absent(self):
        live = self.live_instances()
        request_ids = self.session_request_ids(live)
        instance_ids = [i["InstanceId"] for i in live]
        terminate = instance_ids if self.params["terminate_instance"] else []
        result = {"changed": bool(request_ids or terminate), "cancelled_requests": request_ids,
                  "terminated_instances": terminate, "instance_ids": instance_ids}
        if self.module._diff:
            kept = [i for i in instance_ids if i not in terminate]
            result["diff"] = {"before": {"instances": instance_ids, "requests": request_ids},
                              "after": {"instances": kept, "requests": []}}
        if self.module.check_mode or not result["changed"]:
            return result
        what = f"Stop session {self.session}"
        if request_ids:
            with aws_errors(f"{what}: cancel spot requests {', '.join(request_ids)}"):
                self.ec2.cancel_spot_instance_requests(SpotInstanceRequestIds=request_ids,
                                                       aws_retry=True)
        if terminate:
            with aws_errors(f"{what}: terminate {', '.join(terminate)}"):
                self.ec2.terminate_instances(InstanceIds=terminate, aws_retry=True)
            self.wait_terminated(terminate, what)
        return result

    # ---- results ---------------------------------------------------------------------

    def describe_result(self, instance, price, changed):
        """Read the instance again for the result (addresses appear once it runs)."""
        instance = self.describe_instance(instance["InstanceId"]) or instance
        result = dict(instance_summary(instance), changed=changed, max_price=None)
        request = self.describe_request(result["request_id"])
        if request:
            result["max_price"] = request.get("SpotPrice")
        spot = result["lifecycle"] == "spot"
        if spot and price is None and result["availability_zone"]:
            zone, kind = result["availability_zone"], result["instance_type"]
            price = latest_prices(self.price_records([kind], [zone])).get((kind, zone))
        result["spot_price"] = price if spot else None
        return result

    def with_diff(self, result, before):
        if self.module._diff:
            keys = ("instance_id", "instance_type", "availability_zone", "lifecycle")
            result["diff"] = {
                "before": {k: instance_summary(before)[k] for k in keys} if before else {},
                "after": {k: result.get(k) for k in keys},
            }
        return result


def main():
    argument_spec = dict(
        state=dict(type="str", choices=["present", "absent"], default="present"),
        session=dict(type="str", required=True),
        instance_types=dict(type="list", elements="str"),
        availability_zones=dict(type="list", elements="str"),
        availability_zone=dict(type="str"),
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
        tags=dict(type="dict", default={}),
        terminate_instance=dict(type="bool", default=False),
        wait_timeout=dict(type="int", default=600, aliases=["timeout"]),
        poll_interval=dict(type="float", default=5),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    problem = params_error(module.params)
    if problem:
        module.fail_json(msg=f"ec2_spot_request for session {module.params['session']}: "
                             f"{problem}")
    ec2 = module.client("ec2", retry_decorator=AWSRetry.jittered_backoff(retries=5))
    manager = SpotRequest(module, ec2)
    try:
        result = manager.present() if module.params["state"] == "present" else manager.absent()
    except FleetAWSError as err:
        fail_module(module, err)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
