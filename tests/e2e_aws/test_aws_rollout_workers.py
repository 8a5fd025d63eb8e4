"""A Ray session's rollout workers on the AWS path (moto server + 3 plain lab hosts playing the
instances, see awslab.py): the provider's entry points as the playbooks call them
(rollout_provider.yml; the Ray cluster itself is tests/lab_ray's). provision --check creates
nothing and names the workers; provision launches the head with its volume and 2 workers
without one, tagged by role and slot, in the head's zone and security group, which lets its
members talk; the head is in ray_head, every instance in rlops_hosts, each reached on its
lab host; EC2 takes a worker; status counts it; resume relaunches it in its slot and keeps
the rest; stop terminates the workers and keeps the head, and stop with terminate the rest."""

from __future__ import annotations

import json
import time
from pathlib import Path

from awslab import REGION, AwsPlaybooks, log

PLAY = "rollout_provider"
KEY = "rlops-rollout-e2e"


class ProviderPlaybooks(AwsPlaybooks):
    """AwsPlaybooks running this folder's rollout_provider.yml for PLAY."""

    def command(self, name, variables, args=()):
        return [str(Path(__file__).with_name(f"{PLAY}.yml")) if part == f"playbooks/{PLAY}.yml"
                else part for part in super().command(name, variables, args)]


def tags(resource) -> dict:
    return {t["Key"]: t["Value"] for t in resource.get("Tags") or []}


def live(ec2, session) -> dict:
    found = ec2.describe_instances(Filters=[
        {"Name": "tag:rlops:session", "Values": [session]},
        {"Name": "instance-state-name", "Values": ["pending", "running"]}])
    return {i["InstanceId"]: i for r in found["Reservations"] for i in r["Instances"]}


def by_slot(instances: dict) -> dict:
    """{'head' | 1 | 2: instance}"""
    return {(int(tags(i)["rlops:slot"]) if tags(i).get("rlops:role") == "rollout" else "head"): i
            for i in instances.values()}


def test_rollout_workers_launch_resume_and_stop(plain_lab, ec2, ami, moto_url, tmp_path):
    started = time.monotonic()
    session = "ray-e2e-" + time.strftime("%Y%m%dt%H%M%Sz", time.gmtime())
    lab = plain_lab
    # Each role and slot is played by its own lab host (a relaunched slot by the same one).
    plays = {"head": lab.host(1), "rollout1": lab.host(2), "rollout2": lab.host(3)}
    ports = {key: lab.ssh_port(host) for key, host in plays.items()}
    which = "rlops_aws_instance.role ~ (rlops_aws_instance.slot | default('', true))"
    connect = dict(lab.connect(lab.host(1)),
                   ansible_port="{{ " + json.dumps(ports) + "[" + which + "] }}")
    playbooks = ProviderPlaybooks(moto_url, tmp_path, extra={
        "rlops_session": session, "rlops_backend": "ray",
        "rlops_results_dir": str(tmp_path / "results"), "rlops_aws_region": REGION,
        "rlops_aws_image_id": ami, "rlops_aws_instance_types": ["g4dn.xlarge"],
        "rlops_aws_rollout_workers": 2, "rlops_aws_rollout_instance_types": ["c6i.large"],
        "rlops_aws_iam_instance_profile": "", "rlops_aws_tags": {"project": "ray-e2e"},
        "rlops_aws_ssh_cidr": "127.0.0.1/32", "rlops_aws_public_key_file": str(lab.key) + ".pub",
        # A key pair of its own: the moto server is shared with the other tests, which expect
        # theirs to be imported.
        "rlops_aws_key_name": KEY,
        "rlops_aws_volume_size": 4, "rlops_aws_poll_interval": 0.5,
        "rlops_aws_connect": connect})
    runs = iter(range(100))

    def run(step, **extra):
        out = tmp_path / f"seen-{next(runs)}"
        out.mkdir()
        proc = playbooks.run(PLAY, rollout_step=step, rollout_out=str(out), **extra)
        seen = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
        return proc.stdout, seen

    # --check: nothing is made, the workers are named.
    out = playbooks.run(PLAY, check=True, rollout_step="provision", rollout_mode="new",
                        rollout_out=str(tmp_path)).stdout
    assert live(ec2, session) == {}
    assert f"session {session}: would launch rollout worker 2: spot c6i.large" in out, out[-3000:]

    # provision: the head with its volume, 2 workers without one.
    out, seen = run("provision", rollout_mode="new")
    first = by_slot(live(ec2, session))
    assert set(first) == {"head", 1, 2}, first
    head = first["head"]
    zone, group_id = head["Placement"]["AvailabilityZone"], head["SecurityGroups"][0]["GroupId"]
    assert tags(head)["rlops:role"] == "head" and tags(head)["project"] == "ray-e2e"
    for slot in (1, 2):
        worker = first[slot]
        assert tags(worker)["rlops:role"] == "rollout" and tags(worker)["rlops:session"] == session
        assert tags(worker)["Name"] == f"rlops-{session}-rollout-{slot}"
        assert worker["InstanceType"] == "c6i.large" and worker["InstanceLifecycle"] == "spot"
        assert worker["Placement"]["AvailabilityZone"] == zone
        assert [g["GroupId"] for g in worker["SecurityGroups"]] == [group_id]
        volumes = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id",
                                                 "Values": [worker["InstanceId"]]}])["Volumes"]
        assert [tags(v).get("rlops:role") for v in volumes] == ["root"]
    (data,) = ec2.describe_volumes(Filters=[{"Name": "tag:rlops:session", "Values": [session]},
                                            {"Name": "tag:rlops:role", "Values": ["data"]}]
                                   )["Volumes"]
    assert [a["InstanceId"] for a in data["Attachments"]] == [head["InstanceId"]]
    (group,) = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
    assert sorted((p["FromPort"], p["ToPort"], [g["GroupId"] for g in p.get("UserIdGroupPairs")],
                   [r["CidrIp"] for r in p.get("IpRanges")]) for p in group["IpPermissions"]) == [
        (0, 65535, [group_id], []), (22, 22, [], ["127.0.0.1/32"])]
    assert seen[head["InstanceId"]] == {
        "hostname": plays["head"], "groups": ["aws", "ray_head", "trainers"],  # aws: trainers'
        "prepare_volume": True, "role": "head", "slot": None, "volume_id": data["VolumeId"]}
    for slot in (1, 2):
        assert seen[first[slot]["InstanceId"]] == {
            "hostname": plays[f"rollout{slot}"], "groups": ["aws", "trainers"],
            "prepare_volume": False, "role": "rollout", "slot": slot, "volume_id": ""}
    log(f"provision: head + 2 workers reached after {time.monotonic() - started:.0f} s")

    # EC2 takes worker 2 (an interruption); status counts what it cost.
    ec2.terminate_instances(InstanceIds=[first[2]["InstanceId"]])
    out, seen = run("status")
    assert set(seen) == {head["InstanceId"], first[1]["InstanceId"], "report"}, seen
    assert any(line.startswith(f"session {session}: 1 head and 2 rollout worker instance(s), $")
               for line in seen["report"]), seen["report"]

    # resume: worker 2 comes back in its slot, on its lab host; the rest are kept.
    out, seen = run("provision", rollout_mode="resume")
    second = by_slot(live(ec2, session))
    assert second["head"]["InstanceId"] == head["InstanceId"]
    assert second[1]["InstanceId"] == first[1]["InstanceId"]
    assert second[2]["InstanceId"] != first[2]["InstanceId"]
    assert seen[second[2]["InstanceId"]]["hostname"] == plays["rollout2"]
    assert len(seen) == 3, seen

    # stop: the workers go whatever was asked; the head stays (not asked to terminate it).
    out, seen = run("stop")
    assert len(seen) == 3, seen  # the host plays still reach every instance
    assert list(live(ec2, session)) == [head["InstanceId"]]
    workers = sorted(second[s]["InstanceId"] for s in (1, 2))
    assert f"rollout workers: terminated {', '.join(workers)}" in out, out[-3000:]
    assert f"instance: {head['InstanceId']} still running, and billed" in out, out[-3000:]

    # ... and with terminate and delete, nothing of the session is left for the other tests.
    out, seen = run("stop", rlops_aws_terminate=True, rlops_aws_delete_volume=True)
    assert live(ec2, session) == {}
    assert ec2.describe_security_groups(Filters=[
        {"Name": "group-name", "Values": [f"rlops-{session}"]}])["SecurityGroups"] == []
    assert ec2.describe_volumes(Filters=[
        {"Name": "tag:rlops:session", "Values": [session]}])["Volumes"] == []
    ec2.delete_key_pair(KeyName=KEY)
    log(f"rollout workers end to end: {time.monotonic() - started:.0f} s")
