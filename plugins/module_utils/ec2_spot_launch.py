# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""The I/O shell of the spot-launch engine (ec2_spot_request): read (ec2_read), decide
(ec2_placement, ec2_launch), act, wait (aws_wait). Methods raise FleetAWSError; the
module's main() turns that into its one failure."""

from datetime import datetime, timedelta, timezone

from ansible_collections.rlops.fleet.plugins.module_utils import ec2_read
from ansible_collections.rlops.fleet.plugins.module_utils.aws_common import (
    FleetAWSError,
    SessionResource,
    aws_errors,
    error_code,
    session_tags,
)
from ansible_collections.rlops.fleet.plugins.module_utils.aws_wait import wait_until
from ansible_collections.rlops.fleet.plugins.module_utils.ec2_launch import (
    LAUNCH_ARGUMENT_SPEC,
    MAX_TOKEN_GENERATIONS,
    TOKEN_REUSED,
    base_request,
    candidate_record,
    candidate_request,
    found_instance_problem,
    instance_diff,
    instance_summary,
    launch_plan,
    no_capacity_message,
    planned_result,
    restart_problem,
    root_device,
    running_verdict,
    still_pending_message,
    template_image_error,
)
from ansible_collections.rlops.fleet.plugins.module_utils.ec2_placement import (
    after_launch_error,
    client_token,
    latest_prices,
    rank_candidates,
    split_by_max_price,
    zones_to_try,
)

PRICE_LOOKBACK = timedelta(hours=3)

# ec2_spot_request's options (aws_session_plan runs the same request in check mode).
ARGUMENT_SPEC = dict(
    state=dict(type="str", choices=["present", "absent"], default="present"),
    session=dict(type="str", required=True),
    instance_types=dict(type="list", elements="str"),
    availability_zones=dict(type="list", elements="str"),
    availability_zone=dict(type="str"),
    tags=dict(type="dict", default={}),
    terminate_instance=dict(type="bool", default=False),
    wait_timeout=dict(type="int", default=600, aliases=["timeout"]),
    poll_interval=dict(type="float", default=5),
    **LAUNCH_ARGUMENT_SPEC,
)


class NextCandidate(Exception):
    """This candidate has no capacity (now); `code` is EC2's verdict."""

    def __init__(self, code, message=""):
        super().__init__(message or code)
        self.code = code
        self.message = message


class SpotRequest(SessionResource):
    """Read, plan, apply for one session's instance: present() and absent()."""

    def __init__(self, module, ec2):
        super().__init__(module, ec2)
        self.tags = session_tags(self.session, self.params["tags"], f"rlops-{self.session}")

    # ---- reads -----------------------------------------------------------------------

    def live_instances(self):
        return ec2_read.session_instances(self.ec2, self.session,
                                          f"Find the instances of session {self.session}",
                                          ec2_read.LIVE_STATES)

    def price_records(self, types, zones):
        return ec2_read.spot_prices(self.ec2, types,
                                    datetime.now(timezone.utc) - PRICE_LOOKBACK,
                                    zones[0] if len(zones) == 1 else None)

    def session_request_ids(self, live):
        """Open requests of the session: by tag, plus each live instance's own request
        (requests made without tags, or APIs that do not filter on them)."""
        tagged = ec2_read.session_requests(
            self.ec2, self.session, f"Find the spot requests of session {self.session}")
        found = {r["SpotInstanceRequestId"] for r in tagged}
        for instance in live:
            request_id = instance.get("SpotInstanceRequestId")
            if request_id and request_id not in found:
                request = ec2_read.spot_request(self.ec2, request_id)
                if request and request.get("State") in ec2_read.OPEN_REQUEST_STATES:
                    found.add(request_id)
        return sorted(found)

    def root_device(self):
        """(device name, size in GiB) of the root volume of the image the instance boots."""
        image_id = self.params["image_id"]
        template = self.params["launch_template"]
        if not image_id:
            data = ec2_read.launch_template_data(self.ec2, template)
            problem = template_image_error(data, template)
            if problem:
                raise FleetAWSError(problem)
            image_id = data["ImageId"]
        image = ec2_read.image(self.ec2, image_id)
        what = f"Read image {image_id}"
        if not image:
            raise FleetAWSError(f"{what}: it does not exist in {self.module.region} or is "
                                "not shared with this account")
        device, size, problem = root_device(image, self.params["root_volume_size"])
        if problem:
            raise FleetAWSError(f"{what}: {problem}")
        return device, size

    def zones(self):
        region_zones = ec2_read.region_zones(self.ec2, self.module.region)
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
        offered = ec2_read.offerings(self.ec2, types, zones)
        prices = latest_prices(self.price_records(types, zones))
        ranked = rank_candidates(prices, types, zones, offered)
        if not ranked:
            raise FleetAWSError(
                f"Launch an instance for session {self.session}: none of {', '.join(types)} "
                f"is offered in {', '.join(zones)}")
        return ranked

    # ---- apply -----------------------------------------------------------------------

    def token(self, candidate, market, generation):
        """The launch's ClientToken: one instance per session, candidate and market."""
        return client_token(self.session, candidate, market, generation)

    def launch(self, base, candidate, market):
        """Launch one candidate and wait until it runs; NextCandidate when it has no room."""
        what = f"Launch {market} {candidate.label()} for session {self.session}"
        launch = candidate_request(base, self.params, self.tags, candidate, market)
        for generation in range(MAX_TOKEN_GENERATIONS):
            token = self.token(candidate, market, generation)
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
        def read():
            current = ec2_read.instance(self.ec2, instance["InstanceId"]) or instance
            request_id = (current.get("SpotInstanceRequestId")
                          or instance.get("SpotInstanceRequestId"))
            return current, ec2_read.spot_request(self.ec2, request_id)

        def done(state):
            verdict, code, message = running_verdict(*state)
            if verdict == "next":
                raise NextCandidate(code, message)
            if verdict == "fail":
                raise FleetAWSError(f"{what}: {message}")
            return verdict == "done"

        current, _request = wait_until(
            read, done, self.params,
            lambda last, elapsed: f"{what}: {still_pending_message(*last, elapsed)}")
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
            states = ec2_read.instance_states(self.ec2, instance_ids)
            return {i: states[i] or "terminated" for i in instance_ids}

        wait_until(read, lambda states: all(s == "terminated" for s in states.values()),
                   self.params,
                   lambda last, elapsed: f"{what}: not terminated after {elapsed:.0f}s: "
                   + ", ".join(f"{i} is {s}" for i, s in last.items()))

    # ---- states ----------------------------------------------------------------------

    def present(self):
        zones = self.zones()
        ec2_read.check_instance_types(self.ec2, self.params["instance_types"])
        live = self.live_instances()
        if len(live) > 1:
            ids = ", ".join(i["InstanceId"] for i in live)
            raise FleetAWSError(
                f"Find the instance of session {self.session}: {len(live)} live instances "
                f"carry its tag ({ids}); terminate the extra ones")
        if live:
            return self.keep(live[0])

        ranked = self.ranked_candidates(zones)
        max_price = self.params["max_price"]
        to_try, too_dear = split_by_max_price(ranked, max_price)
        base = base_request(self.params, *self.root_device())
        plan, tried = launch_plan(ranked, to_try, too_dear, max_price,
                                  self.params["on_demand_fallback"])
        if not plan:
            raise FleetAWSError(
                f"Launch a spot instance for session {self.session}: every candidate's latest "
                f"price is above max_price {max_price}", candidates=tried)
        if self.module.check_mode:
            return self.with_diff(planned_result(plan, tried, max_price), None)

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
        raise FleetAWSError(no_capacity_message(self.session, tried,
                                                self.params["on_demand_fallback"]),
                            candidates=tried)

    def keep(self, instance):
        """The session already has an instance: check that it fits, start or wait for it."""
        instance_id = instance["InstanceId"]
        what = f"Use instance {instance_id} of session {self.session}"
        problem = found_instance_problem(instance, self.params["availability_zone"])
        if problem:
            raise FleetAWSError(f"{what}: {problem}")
        if instance.get("InstanceType") not in self.params["instance_types"]:
            self.module.warn(f"{what}: its type {instance.get('InstanceType')} is not in "
                             "instance_types; keeping it")
        state = (instance.get("State") or {}).get("Name")
        changed = state == "stopped"
        if changed:
            problem = restart_problem(
                ec2_read.spot_request(self.ec2, instance.get("SpotInstanceRequestId")))
            if problem:
                raise FleetAWSError(f"{what}: {problem}")
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
        instance = ec2_read.instance(self.ec2, instance["InstanceId"]) or instance
        result = dict(instance_summary(instance), changed=changed, max_price=None)
        request = ec2_read.spot_request(self.ec2, result["request_id"])
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
            result["diff"] = instance_diff(result, before)
        return result
