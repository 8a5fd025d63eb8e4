# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""The I/O shell of a session's instances by role: the head (the instance with the data
volume) and the rollout workers (rlops_aws_rollout_workers, one per slot, no volume), each
through the spot-launch engine of ec2_spot_request that sees only the instances of its own
role and slot. aws_session_resources calls it at launch (after the head) and at stop
(always: a worker holds nothing of the user's); the decisions are aws_rollout's. Methods
raise FleetAWSError."""

from typing import Any, Callable, Dict, List, Optional

from ansible_collections.rlops.fleet.plugins.module_utils import (
    ec2_launch,
    ec2_read,
    ec2_spot_launch,
)
from ansible_collections.rlops.fleet.plugins.module_utils.aws_common import (
    aws_errors,
    tag_dict,
)
from ansible_collections.rlops.fleet.plugins.module_utils.aws_rollout import (
    HEAD_ROLE,
    ROLLOUT_ROLE,
    instance_role,
    role_tags,
    token_key,
    worker_count,
    worker_host,
    worker_plan,
    worker_spot_params,
    workers_report,
)
from ansible_collections.rlops.fleet.plugins.module_utils.ec2_placement import client_token


class RoleInstance(ec2_spot_launch.SpotRequest):
    """ec2_spot_request's engine for the session's instance of one role: the head, or the
    rollout worker of one slot (slot None: every worker, for stop)."""

    def __init__(self, module, ec2, role: str = HEAD_ROLE, slot: Optional[int] = None):
        super().__init__(module, ec2)
        self.role, self.slot = role, slot
        self.tags = role_tags(self.session, self.params["tags"], role, slot)

    def holds(self, tags) -> bool:
        role, slot = instance_role(tags)
        return role == self.role and (self.slot is None or slot == self.slot)

    def live_instances(self):
        return [i for i in super().live_instances() if self.holds(tag_dict(i))]

    def session_request_ids(self, live):
        """Open requests of this role (and slot) only: the head's persistent request stays
        when the workers are stopped."""
        tagged = ec2_read.session_requests(
            self.ec2, self.session, f"Find the spot requests of session {self.session}")
        found = {r["SpotInstanceRequestId"] for r in tagged if self.holds(tag_dict(r))}
        found.update(i["SpotInstanceRequestId"] for i in live
                     if i.get("SpotInstanceRequestId"))
        return sorted(found)

    def token(self, candidate, market, generation):
        return client_token(token_key(self.session, self.role, self.slot), candidate, market,
                            generation)


def role_engine(role: str, slot: Optional[int] = None):
    """The engine class run_engine takes, bound to a role and slot."""
    return lambda view, ec2: RoleInstance(view, ec2, role, slot)


class RolloutWorkers:
    """present(): slots 1..N each with a running worker (launched, kept, extras
    terminated); absent(): every worker of the session terminated."""

    def __init__(self, module, ec2, settings: Dict[str, Any], waits: Dict[str, Any],
                 run_engine: Callable[..., Dict[str, Any]]):
        """run_engine: aws_provision_plan's, which runs an engine inside this module."""
        self.module, self.ec2, self.settings, self.waits = module, ec2, settings, waits
        self.run_engine = run_engine
        self.session = module.params["session"]
        self.check_mode = module.check_mode

    def engine(self, params: Dict[str, Any], slot: Optional[int], what: str
               ) -> Dict[str, Any]:
        return self.run_engine(
            self.module, self.ec2, role_engine(ROLLOUT_ROLE, slot), ec2_spot_launch.ARGUMENT_SPEC,
            params, ec2_launch.params_error,
            f"ec2_spot_request for {what} of session {self.session}", self.check_mode)

    def live(self) -> List[Dict[str, Any]]:
        found = ec2_read.session_instances(
            self.ec2, self.session, f"Find the rollout workers of session {self.session}",
            ec2_read.LIVE_STATES)
        workers = []
        for instance in found:
            role, slot = instance_role(tag_dict(instance))
            if role == ROLLOUT_ROLE:
                workers.append({"instance_id": instance["InstanceId"], "slot": slot})
        return workers

    def present(self, zone: Optional[str], group_id: Optional[str]) -> Dict[str, Any]:
        """Each slot's worker in the head's zone; {hosts, to_create, lines, changed,
        workers (the engine's answers), terminated}."""
        count = worker_count(self.settings)
        plan = worker_plan(count, self.live())
        params = worker_spot_params(self.settings, self.session, zone, group_id, self.waits)
        results = []
        for slot in range(1, count + 1):
            result = self.engine(params, slot, f"rollout worker {slot}")
            results.append(dict(result, slot=slot))
        if plan["terminate"] and not self.check_mode:
            self.terminate(plan["terminate"])
        running = [r for r in results if r.get("instance_id")
                   and (r.get("instance_state") == "running" or not self.check_mode)]
        return {
            "hosts": [worker_host(r, self.session, r["slot"]) for r in running],
            "to_create": [f"rollout worker {r['slot']} of session {self.session}"
                          for r in results if r not in running],
            "lines": workers_report(self.session, count, results, plan["terminate"],
                                    self.check_mode),
            "changed": bool(plan["terminate"]) or any(r.get("changed") for r in results),
            "workers": results, "terminated": plan["terminate"]}

    def terminate(self, instance_ids: List[str]) -> None:
        """Workers beyond the slots asked for: no volume, nothing to keep."""
        with aws_errors(f"Terminate the rollout workers {', '.join(instance_ids)} of session "
                        f"{self.session}"):
            self.ec2.terminate_instances(InstanceIds=instance_ids, aws_retry=True)

    def absent(self) -> Dict[str, Any]:
        """Cancel the workers' spot requests and terminate them (waiting until they are)."""
        return self.engine(dict(state="absent", session=self.session, terminate_instance=True,
                                **self.waits), None, "the rollout workers")
