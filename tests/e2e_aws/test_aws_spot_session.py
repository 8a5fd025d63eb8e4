"""A spot training session on the AWS path, end to end (moto + lab hosts, see conftest.py):
train_new provisions a spot instance and a volume, mounts it and trains; a spot
interruption notice makes the job flush its checkpoint to S3; EC2 takes the instance;
resume finds the volume by its tags, launches a new instance in its zone, re-attaches the
volume, and training continues from the checkpoint; status shows the instance and its cost;
retrieve works from the running instance and, once stop terminated it, from S3."""

from __future__ import annotations

import json
import time

from awslab import (
    BUCKET,
    DATA_ROOT,
    MOUNT,
    REGION,
    AwsPlaybooks,
    EbsBridge,
    log,
    run,
    wait_until,
)

PREFIX = "sessions"
# Long enough to still be training when stop.yml comes (~2-5k steps/s here under load);
# a checkpoint every few seconds.
BUDGET = {"trainer_total_timesteps": 3_000_000, "trainer_checkpoint_interval": 20480,
          "trainer_sync_interval": 5}


def debug_lines(output: str, marker: str) -> list[str]:
    """The lines of the debug message that holds `marker` (results are printed as JSON)."""
    at = output.find(marker)
    start = output.rfind("=> {", 0, at)
    if at < 0 or start < 0:
        raise AssertionError(f"no {marker!r} in:\n{output[-3000:]}")
    result, _end = json.JSONDecoder().raw_decode(output, start + 3)
    return result["msg"]


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
    playbooks = AwsPlaybooks(moto_url, tmp_path, {
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
            "AWS_ACCESS_KEY_ID": "lab", "AWS_SECRET_ACCESS_KEY": "lab",
            "AWS_DEFAULT_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true",
            "RLOPS_S3_ENDPOINT_URL": s3_url,
            # The supervisor watches this IMDS (docs/contract.md, "Notices").
            "RLOPS_IMDS_ENDPOINT": imds},
        "trainer_wheelhouse": str(wheelhouse),
    })
    status_file = f"{DATA_ROOT}/sessions/{session}/status.json"
    bridge = EbsBridge(ec2, lab, session)
    bridge.target = first
    bridge.start()
    try:
        # --- provision -> attach -> mount -> train -------------------------------------
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

        before = wait_until(
            lambda: (s := lab.read_json(first, status_file)).get("state") == "running"
            and (s.get("last_synced_step") or 0) > 0 and s, 300, "checkpointed and synced")
        log(f"training on {first}: step {before['step']}, synced {before['last_synced_step']}")

        # --- spot notice -> checkpoint flushed and synced ------------------------------
        lab.imds(first, "PUT", "/_control/spot/instance-action",
                 {"action": "terminate", "time": "2026-11-22T08:00:00Z"})
        interrupted = wait_until(
            lambda: (s := lab.read_json(first, status_file)).get("state") == "interrupted"
            and s, 180, "interrupted by the spot notice")
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

        # --- EC2 takes the instance away ------------------------------------------------
        ec2.terminate_instances(InstanceIds=[first_id])
        lab.unplug(first, volume["VolumeId"])
        run(["podman", "stop", "-t", "10", first])

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

        resumed = wait_until(
            lambda: (s := lab.read_json(second, status_file)).get("state") == "running"
            and (s.get("step") or 0) > step and s, 240, "training on after the resume")
        assert resumed["resumed_from_step"] == step
        log(f"resumed on {second} from step {step}, now at {resumed['step']}")

        # Both instances, each with its cost so far (moto's price: 0.00001 USD/h), the
        # session's job on the running one, and the volume attached to it.
        out = playbooks.run("status", rlops_aws_connect=lab.connect(second)).stdout
        jobs = {row.split()[1]: row.split() for row in debug_lines(out, "CHECKPOINT AGE")[1:]}
        assert jobs[second_id][:3] == [session, second_id, "running"], jobs
        lines = debug_lines(out, "COST SO FAR")
        rows = {line.split()[1]: line.split() for line in lines[1:] if line.startswith(session)}
        # moto's spot price is 0.00001 USD/h: a few millionths of a dollar so far.
        assert rows[first_id][5] == "terminated" and rows[first_id][8].startswith("$0.0000"), lines
        assert rows[second_id][5] == "running" and rows[second_id][8].startswith("$0.0000"), lines
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
        stopped = lab.read_json(second, status_file)
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
