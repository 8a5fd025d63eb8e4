"""A spot training session on the AWS path, end to end (moto + lab hosts, see conftest.py):
train_new provisions a spot instance and a volume, mounts it and trains; a spot
interruption notice makes the job flush its checkpoint to S3; EC2 takes the instance;
resume finds the volume by its tags, launches a new instance in its zone, re-attaches the
volume, and training continues from the checkpoint; status shows the instance and its cost;
retrieve works from the running instance and, once stop terminated it, from S3.

Along the way, every playbook runs with --check where it has something to plan (before the
session exists; with its instance running and its job interrupted; with the instance gone)
and must change nothing in moto, in S3, on the lab hosts or in the results folder
(checkmode.py)."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timezone
from decimal import Decimal

import boto3
from awslab import (
    BUCKET,
    MOUNT,
    REGION,
    SPOT_PRICE,
    TRAINER_VENV,
    AwsPlaybooks,
    EbsBridge,
    log,
    run,
)
from checkmode import unchanged_on_aws
from harness import debug_lines, in_state, status_table, wait_until

PREFIX = "sessions"
# Long enough to still be training when stop.yml comes (~2-5k steps/s here under load);
# a checkpoint every few seconds.
BUDGET = {"trainer_total_timesteps": 3_000_000, "trainer_checkpoint_interval": 20480,
          "trainer_sync_interval": 5}


def session_instances(ec2, session, states=("pending", "running")):
    pages = ec2.describe_instances(Filters=[
        {"Name": "tag:rlops:session", "Values": [session]},
        {"Name": "instance-state-name", "Values": list(states)}])
    return [i for r in pages["Reservations"] for i in r["Instances"]]


def data_volume(ec2, session):
    (volume,) = ec2.describe_volumes(Filters=[
        {"Name": "tag:rlops:session", "Values": [session]},
        {"Name": "tag:rlops:role", "Values": ["data"]}])["Volumes"]
    return volume


def ended(instance) -> float:
    """When EC2 took the instance: the time in its StateTransitionReason (to the second)."""
    match = re.search(r"\((\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) (?:UTC|GMT)\)",
                      instance["StateTransitionReason"])
    assert match, instance["StateTransitionReason"]
    return datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S").replace(
        tzinfo=timezone.utc).timestamp()


def assert_cost(row: list[str], shortest: float, longest: float) -> None:
    """A status row (... HOURS USD/H COST) of a spot instance that ran between `shortest`
    and `longest` seconds, at the stubbed SPOT_PRICE. The hours are shown to 0.01 h and
    the cost to $0.000001: the tolerances are those roundings, and the run time's range."""
    hours, usd_h, cost = Decimal(row[6]), row[7], Decimal(row[8].removeprefix("$"))
    price, half_hour_digit = Decimal(SPOT_PRICE), Decimal("0.005")
    low, high = Decimal(str(shortest)) / 3600, Decimal(str(longest)) / 3600

    def shown(usd: Decimal) -> Decimal:  # rounded as status rounds it (half to even)
        return usd.quantize(Decimal("0.000001"))

    assert usd_h == f"{price:.4f}", row
    assert low - half_hour_digit <= hours <= high + half_hour_digit, (row, low, high)
    # The price times the run time, as the test measured it and as status shows it.
    assert shown(price * low) <= cost <= shown(price * high), (row, low, high)
    assert abs(cost - price * hours) <= price * half_hour_digit + Decimal("0.0000005"), row
    # A run long enough that a cost of zero fails the first of the two.
    assert shown(price * low) > 0, (row, low)


def s3_client(url: str):
    return boto3.client("s3", endpoint_url=url, region_name=REGION,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def test_spot_session_survives_an_interruption(lab, storage, wheelhouse, ec2, ami, moto_url,
                                               tmp_path):
    started = time.monotonic()
    s3_url, s3 = storage
    session = "aws-e2e-" + time.strftime("%Y%m%dt%H%M%Sz", time.gmtime())
    first, second = lab.host(1), lab.host(2)
    # Each lab host is an instance with its own metadata service; nothing runs a notice yet.
    imds = lab.start_imds(first)
    lab.start_imds(second)
    results = tmp_path / "results"
    playbooks = AwsPlaybooks(moto_url, tmp_path, lab=lab, extra={
        **BUDGET,
        "rlops_results_dir": str(results),
        "rlops_aws_region": REGION,
        "rlops_aws_image_id": ami,
        "rlops_aws_instance_types": ["g4dn.xlarge", "g5.xlarge"],
        "rlops_aws_iam_instance_profile": "",
        "rlops_aws_tags": {"project": "aws-e2e"},
        "rlops_aws_ssh_cidr": "127.0.0.1/32",
        "rlops_aws_public_key_file": str(lab.key) + ".pub",
        "rlops_aws_volume_size": 4,
        "rlops_aws_poll_interval": 0.5,
        "rlops_storage_uri": f"s3://{BUCKET}/{PREFIX}",
        "rlops_storage_credentials": {
            # Values no output holds otherwise: Ansible masks each occurrence of a no_log
            # value in a result, and "lab" is the instances' user.
            "AWS_ACCESS_KEY_ID": "LABKEYEXAMPLE0000000",
            "AWS_SECRET_ACCESS_KEY": "lab-secret-Zq81-known",
            "AWS_DEFAULT_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true",
            "RLOPS_S3_ENDPOINT_URL": s3_url,
            # The supervisor watches this IMDS (docs/contract.md, "Notices").
            "RLOPS_IMDS_ENDPOINT": imds},
        "trainer_wheelhouse": str(wheelhouse),
        **TRAINER_VENV,
    })
    bridge = EbsBridge(ec2, lab, session)
    s3_clients = {"moto": s3_client(moto_url), "storage": s3}
    bridge.start()
    try:
        # --- check mode before anything exists: what train_new would create ------------
        unchanged = unchanged_on_aws(ec2, s3_clients, lab, [first, second], results)
        out = playbooks.run("train_new", check=True, rlops_session=session,
                            rlops_aws_connect=lab.connect(first)).stdout
        unchanged.check("train_new --check")
        would = debug_lines(out, "would launch")
        assert f"session {session}: would import the key pair rlops from {lab.key}.pub" in would
        assert (f"session {session}: would create the security group rlops-{session}: "
                "tcp/22 from 127.0.0.1/32") in would
        assert any(f"session {session}: would launch a spot g4dn.xlarge in {REGION}" in line
                   and f"({SPOT_PRICE} USD/h)" in line for line in would), would
        assert any(f"would create a 4 GiB gp3 volume in {REGION}" in line
                   and "attach it at /dev/sdf" in line for line in would), would
        assert "its host can be neither checked nor prepared" in would[-1]
        assert "PLAY [Start the training job] ***" in out and "skipping: no hosts matched" in out

        # --- provision -> attach -> mount -> train -------------------------------------
        bridge.target = first
        out = playbooks.run("train_new", rlops_session=session,
                            rlops_aws_connect=lab.connect(first)).stdout
        assert bridge.error is None, bridge.error
        (instance,) = session_instances(ec2, session)
        first_id, zone = instance["InstanceId"], instance["Placement"]["AvailabilityZone"]
        assert instance["InstanceLifecycle"] == "spot"
        assert f"session {session} on {first_id}" in out
        volume = data_volume(ec2, session)
        assert volume["AvailabilityZone"] == zone
        assert [a["InstanceId"] for a in volume["Attachments"]] == [first_id]
        assert bridge.plays == {first_id: first}
        (group,) = ec2.describe_security_groups(
            Filters=[{"Name": "group-name", "Values": [f"rlops-{session}"]}])["SecurityGroups"]
        assert [(p["FromPort"], [r["CidrIp"] for r in p["IpRanges"]])
                for p in group["IpPermissions"]] == [(22, ["127.0.0.1/32"])]
        mount = lab.exec(first, f"findmnt -n -o FSTYPE,OPTIONS {MOUNT}").stdout
        assert mount.startswith("ext4"), mount

        before = playbooks.wait(
            session, lambda s: s.get("state") == "running" and (s.get("last_synced_step") or 0) > 0,
            300, "checkpointed and synced", host=first)
        log(f"training on {first}: step {before['step']}, synced {before['last_synced_step']}")

        # --- spot notice -> checkpoint flushed and synced ------------------------------
        lab.imds(first, "PUT", "/_control/spot/instance-action",
                 {"action": "terminate", "time": "2026-11-22T08:00:00Z"})
        interrupted = playbooks.wait(session, in_state("interrupted"), 180,
                                     "interrupted by the spot notice", host=first)
        log(f"interrupted at step {interrupted['last_checkpoint_step']}")
        assert "spot instance-action: terminate" in interrupted["exit_reason"]
        step = interrupted["last_checkpoint_step"]
        assert step > before["last_checkpoint_step"]  # a checkpoint made for the notice
        assert interrupted["last_synced_step"] == step
        latest = s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}/{session}/checkpoints/LATEST")
        assert int(latest["Body"].read()) == step
        manifest = json.loads(s3.get_object(
            Bucket=BUCKET, Key=f"{PREFIX}/{session}/checkpoints/{step:012d}/manifest.json"
        )["Body"].read())
        assert manifest["step"] == step and manifest["files"]

        # --- check mode with the instance running and its job interrupted -------------
        wait_until(lambda: not lab.exec(first, "pgrep -af '[r]lops' || true").stdout.strip(),
                   60, "the supervisor gone")
        unchanged = unchanged_on_aws(ec2, s3_clients, lab, [first], results)
        connect = lab.connect(first)
        out = playbooks.run("status", check=True, rlops_aws_connect=connect).stdout
        jobs = status_table(out)
        assert jobs.get((session, first_id), {}).get("state") == "interrupted", jobs
        out = playbooks.run("resume", check=True, rlops_session=session,
                            rlops_aws_connect=connect).stdout
        assert (f"session {session}: spot g4dn.xlarge {first_id} in {zone} ({SPOT_PRICE} USD/h) "
                f"with volume {volume['VolumeId']} at /dev/sdf") in out, out[-3000:]
        assert "would launch" not in out
        playbooks.run("retrieve", check=True, rlops_session=session, rlops_aws_connect=connect)
        playbooks.run("evaluate", check=True, rlops_session=session, rlops_aws_connect=connect)
        out = playbooks.run("stop", check=True, rlops_session=session, rlops_aws_terminate=True,
                            rlops_aws_snapshot=True, rlops_aws_connect=connect).stdout
        assert f"instance: would terminate {first_id}" in out, out[-3000:]
        assert f"volume: {volume['VolumeId']} would be snapshotted and kept" in out
        unchanged.check("status, resume, retrieve, evaluate, stop --check on a running instance")

        # --- EC2 takes the instance away ------------------------------------------------
        ec2.terminate_instances(InstanceIds=[first_id])
        lab.unplug(first, volume["VolumeId"])
        run(["podman", "stop", "-t", "10", first])

        # --- check mode with the instance gone: resume would launch and attach ---------
        unchanged = unchanged_on_aws(ec2, s3_clients, lab, [second], results)
        connect = lab.connect(second)
        out = playbooks.run("resume", check=True, rlops_session=session,
                            rlops_aws_connect=connect).stdout
        would = debug_lines(out, "would launch")
        assert would[:2] == [
            f"session {session}: would launch a spot g4dn.xlarge in {zone} ({SPOT_PRICE} USD/h)",
            f"session {session}: would attach volume {volume['VolumeId']} at /dev/sdf"], would
        assert "the trainer resume the session there" in would[-1]
        out = playbooks.run("retrieve", check=True, rlops_session=session,
                            rlops_aws_connect=connect).stdout
        assert f"from storage s3://{BUCKET}/{PREFIX}" in out and "not copied in check mode" in out
        out = playbooks.run("stop", check=True, rlops_session=session, rlops_aws_terminate=True,
                            rlops_aws_snapshot=True, rlops_aws_delete_volume=True,
                            rlops_aws_connect=connect).stdout
        assert "instance: none running" in out, out[-3000:]
        assert f"volume: {volume['VolumeId']} would be snapshotted and deleted" in out
        unchanged.check("resume, retrieve, stop --check without an instance")

        # --- resume on a new instance, same volume -------------------------------------
        bridge.target = second
        out = playbooks.run("resume", rlops_session=session,
                            rlops_aws_connect=lab.connect(second)).stdout
        assert bridge.error is None, bridge.error
        (instance,) = session_instances(ec2, session)
        second_id = instance["InstanceId"]
        assert second_id != first_id
        assert instance["Placement"]["AvailabilityZone"] == zone
        assert [a["InstanceId"] for a in data_volume(ec2, session)["Attachments"]] == [second_id]
        assert bridge.plays[second_id] == second
        assert f"session {session} on {second_id}" in out

        resumed = playbooks.wait(
            session, lambda s: s.get("state") == "running" and (s.get("step") or 0) > step,
            240, "training on after the resume", host=second)
        assert resumed["resumed_from_step"] == step
        log(f"resumed on {second} from step {step}, now at {resumed['step']}")

        # Both instances, each with its cost so far, the session's job on the running one,
        # and the volume attached to it.
        asked = time.time()
        out = playbooks.run("status", rlops_aws_connect=lab.connect(second)).stdout
        answered = time.time()
        jobs = status_table(out)
        assert jobs.get((session, second_id), {}).get("state") == "running", jobs
        lines = debug_lines(out, "COST SO FAR")
        rows = {line.split()[1]: line.split() for line in lines[1:] if line.startswith(session)}
        assert rows[first_id][5] == "terminated" and rows[second_id][5] == "running", lines
        ran = {i["InstanceId"]: i
               for i in session_instances(ec2, session, ("running", "terminated"))}
        # The first ran from its launch until EC2 took it, to the second; the second runs
        # until status reads the clock, somewhere during the status run.
        first_run = ended(ran[first_id]) - ran[first_id]["LaunchTime"].timestamp()
        assert_cost(rows[first_id], first_run, first_run)
        launched = ran[second_id]["LaunchTime"].timestamp()
        assert_cost(rows[second_id], asked - launched, answered - launched)
        assert (f"volume {volume['VolumeId']} of {session}: 4 GiB gp3 in {zone}, in-use, "
                f"attached to {second_id} (running)") in lines

        # --- retrieve from the running instance ----------------------------------------
        playbooks.run("retrieve", rlops_session=session, rlops_aws_connect=lab.connect(second))
        home = results / session
        assert (home / "checkpoints" / f"{step:012d}" / "manifest.json").is_file()
        assert (home / "report" / "learning_curve.png").is_file()

        # --- stop: terminate the instance, snapshot and keep the volume ----------------
        out = playbooks.run("stop", rlops_session=session, rlops_aws_terminate=True,
                            rlops_aws_snapshot=True, rlops_aws_connect=lab.connect(second)).stdout
        assert f"instance: terminated {second_id}" in out, out[-3000:]
        stopped = playbooks.status(session, host=second)
        assert stopped["state"] == "stopped" and stopped["last_checkpoint_step"] > step
        assert session_instances(ec2, session) == []
        kept = data_volume(ec2, session)
        assert kept["State"] == "available"
        snapshots = ec2.describe_snapshots(Filters=[
            {"Name": "tag:rlops:session", "Values": [session]}])["Snapshots"]
        assert [s["VolumeId"] for s in snapshots] == [kept["VolumeId"]]

        # --- retrieve from S3 once the instance is gone --------------------------------
        out = playbooks.run("retrieve", rlops_session=session,
                            rlops_aws_connect=lab.connect(second)).stdout
        assert "from storage" in out, out[-3000:]
        last = stopped["last_checkpoint_step"]
        assert int((home / "checkpoints" / "LATEST").read_text()) == last
        assert (home / "checkpoints" / f"{last:012d}" / "manifest.json").is_file()
        assert json.loads((home / "status.json").read_text())["state"] == "stopped"
    finally:
        bridge.stop()
        log(f"whole flow: {time.monotonic() - started:.0f} s")
    assert bridge.error is None, bridge.error
