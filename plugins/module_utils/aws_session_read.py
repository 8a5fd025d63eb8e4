# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""What EC2 holds of a training session (or of every session): its instances and volumes
by tag, with the cost so far of its spot instances. The reads of aws_session_info and
aws_session_plan; the records and the cost are aws_session's pure functions."""

from datetime import datetime
from typing import Any, Dict, Optional

from ansible_collections.rlops.fleet.plugins.module_utils import aws_session, ec2_read
from ansible_collections.rlops.fleet.plugins.module_utils.aws_common import FleetAWSError


class SessionReader:
    """Reads only; methods raise FleetAWSError."""

    def __init__(self, ec2, region: str, session: Optional[str], now: datetime):
        self.ec2 = ec2
        self.region = region
        self.session = session
        self.now = now

    def volume(self, volume_id):
        volume = ec2_read.volume(self.ec2, volume_id, also_missing=("InvalidVolumeID.Malformed",))
        if volume is None:
            raise FleetAWSError(f"Read volume {volume_id}: it does not exist in {self.region}")
        return volume

    def instance_states(self, volumes, known):
        """State of every instance a volume is attached to (None when EC2 forgot it)."""
        states = {i["InstanceId"]: (i.get("State") or {}).get("Name") for i in known}
        wanted = sorted({a["InstanceId"] for v in volumes for a in v.get("Attachments") or []
                         if a.get("InstanceId") and a["InstanceId"] not in states})
        states.update(ec2_read.instance_states(self.ec2, wanted))
        return states

    def prices(self, instance, window):
        """(cost so far, latest price) of a spot instance's run."""
        kind = instance.get("InstanceType")
        zone = (instance.get("Placement") or {}).get("AvailabilityZone")
        start, end = window
        records = ec2_read.spot_prices(self.ec2, [kind], start, zone, end)
        points = aws_session.price_points(records, kind, zone)
        return aws_session.spot_cost(points, start, end), (points[-1][1] if points else None)

    def find(self, volume_id: Optional[str] = None, cost: bool = False) -> Dict[str, Any]:
        """aws_session_info's result: sessions, instances, volumes, and `volume` (the one
        named by volume_id, tagged or not; a missing one is an error)."""
        which = f"session {self.session}" if self.session else "every session"
        where = f"{which} in {self.region}"
        instances = sorted(
            ec2_read.session_instances(self.ec2, self.session, f"Find the instances of {where}"),
            key=lambda i: (str(i.get("LaunchTime") or ""), i["InstanceId"]))
        volumes = sorted(
            ec2_read.session_volumes(self.ec2, self.session, f"Find the volumes of {where}"),
            key=lambda v: v["VolumeId"])
        extra = None
        if volume_id:
            extra = next((v for v in volumes if v["VolumeId"] == volume_id), None)
            extra = extra or self.volume(volume_id)
        states = self.instance_states(volumes + ([extra] if extra else []), instances)
        volume_records = [aws_session.volume_record(v, states) for v in volumes]
        attached = aws_session.data_volumes_by_instance(volume_records)
        records = []
        for instance in instances:
            spent = price = None
            window = aws_session.run_window(instance, self.now)
            if cost and window and instance.get("InstanceLifecycle") == "spot":
                spent, price = self.prices(instance, window)
            records.append(aws_session.instance_record(
                instance, self.now, spent, price, attached.get(instance["InstanceId"])))
        sessions = sorted({r["session"] for r in records + volume_records if r["session"]})
        return {"changed": False, "sessions": sessions, "instances": records,
                "volumes": volume_records,
                "volume": aws_session.volume_record(extra, states) if extra else None}
