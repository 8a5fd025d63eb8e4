"""ec2_spot_request and ebs_volume_attachment through real ansible-playbook runs against a
moto server on 127.0.0.1: check mode -> create -> unchanged re-run -> absent.

Each step is its own ansible-playbook run (as a user runs it), with AWS_URL pointing the
modules at moto; boto3 then checks what really exists between the steps.

moto gaps these tests live with (see docs/modules/*.md): RunInstances with spot market
options records no spot request (request_id is null, nothing to cancel), spot prices are
fake, and moto accepts cross-zone attaches - the module refuses them before calling it.
"""

import json
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from harness import ansible_env
from servers import moto_server

REPO = Path(__file__).resolve().parents[3]
PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_REGION": REGION}
FAST = {"poll_interval": 0.2, "wait_timeout": 60}


@pytest.fixture(scope="module")
def moto_url():
    with moto_server() as url:
        yield url


@pytest.fixture(scope="module")
def ec2(moto_url):
    return boto3.client("ec2", endpoint_url=moto_url, region_name=REGION,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture(scope="module")
def ami(ec2):
    return ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]


class Runner:
    """Run module tasks through one ansible-playbook run; return their registered results.

    Steps that need no look from boto3 in between share a run: every run costs an
    ansible-playbook start, which dominates the time of this file.
    """

    def __init__(self, moto_url: str, workdir: Path):
        # The json callback prints every task result: no extra task to save them.
        self.env = ansible_env(None, **CREDENTIALS, AWS_URL=moto_url,
                               ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
        self.workdir = workdir
        self.count = 0

    def __call__(self, module: str, args: dict, check: bool = False) -> dict:
        return self.steps((module, args, check))[0]

    def steps(self, *steps) -> list:
        self.count += 1
        tasks = [
            {"name": f"Step {n}: rlops.fleet.{module}", f"rlops.fleet.{module}": args,
             "check_mode": check, "ignore_errors": True}
            for n, (module, args, check) in enumerate(steps)
        ]
        play = [{"name": "Run the steps", "hosts": "localhost", "gather_facts": False,
                 "tasks": tasks}]
        playbook = self.workdir / f"play-{self.count}.yml"
        playbook.write_text(json.dumps(play))  # JSON is YAML
        proc = subprocess.run(
            [str(PLAYBOOK), "-i", "localhost,", "-c", "local",
             "-e", f"ansible_python_interpreter={sys.executable}", str(playbook)],
            cwd=REPO, env=self.env, capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        report = json.loads(proc.stdout)
        return [task["hosts"]["localhost"] for task in report["plays"][0]["tasks"]]


@pytest.fixture
def run(moto_url, tmp_path):
    return Runner(moto_url, tmp_path)


def session_instances(ec2, session, states=("pending", "running")):
    pages = ec2.describe_instances(Filters=[
        {"Name": "tag:rlops:session", "Values": [session]},
        {"Name": "instance-state-name", "Values": list(states)}])
    return [i for r in pages["Reservations"] for i in r["Instances"]]


def tags(resource):
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def test_spot_request_check_create_rerun_absent(run, ec2, ami):
    session = "moto-spot-1"
    args = dict(FAST, session=session, instance_types=["g4dn.xlarge", "t3.micro"],
                image_id=ami, availability_zones=["us-east-1b", "us-east-1c"],
                root_volume_size=30, tags={"project": "rl"})

    # Check mode, then the real run: that the real run launches (changed, one candidate
    # tried) shows the check-mode step left nothing behind.
    planned, made = run.steps(("ec2_spot_request", args, True),
                              ("ec2_spot_request", args, False))
    assert planned["changed"] is True and planned["instance_id"] is None
    assert planned["candidates"][0]["outcome"] == "planned"
    assert not made.get("failed"), made.get("msg")
    assert [c["outcome"] for c in made["candidates"]] == ["launched"]
    assert made["changed"] is True and made["lifecycle"] == "spot"
    assert made["availability_zone"] in ("us-east-1b", "us-east-1c")
    assert made["instance_type"] == "g4dn.xlarge"  # ties keep the listed order
    (found,) = session_instances(ec2, session)
    assert found["InstanceId"] == made["instance_id"]
    assert found["MetadataOptions"]["HttpTokens"] == "required"
    assert tags(found)["rlops:session"] == session and tags(found)["project"] == "rl"
    root = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id",
                                          "Values": [found["InstanceId"]]}])["Volumes"]
    assert [(v["Encrypted"], v["Size"], tags(v).get("rlops:role")) for v in root] == [
        (True, 30, "root")]

    absent = dict(FAST, session=session, state="absent", terminate_instance=True)
    again, would = run.steps(("ec2_spot_request", args, False),
                             ("ec2_spot_request", absent, True))
    assert again["changed"] is False and again["instance_id"] == made["instance_id"]
    assert would["changed"] is True and would["terminated_instances"] == [made["instance_id"]]
    assert len(session_instances(ec2, session)) == 1

    gone, gone_again = run.steps(("ec2_spot_request", absent, False),
                                 ("ec2_spot_request", absent, False))
    assert gone["changed"] is True and gone_again["changed"] is False
    assert session_instances(ec2, session) == []


def test_spot_request_refuses_bad_input_before_launching(run, ec2, ami):
    session = "moto-spot-bad"
    unknown_type, wrong_zone = run.steps(
        ("ec2_spot_request", dict(FAST, session=session, image_id=ami,
                                  instance_types=["g4dn.xlarge", "zz.nope"]), False),
        ("ec2_spot_request", dict(FAST, session=session, image_id=ami,
                                  instance_types=["t3.micro"], availability_zone="us-west-2a"),
         False))
    assert unknown_type["failed"] is True
    assert unknown_type["msg"].startswith("Check instance types g4dn.xlarge, zz.nope:")
    assert "zz.nope" in unknown_type["msg"]
    assert wrong_zone["failed"] is True
    assert "availability zone us-west-2a is not in us-east-1" in wrong_zone["msg"]
    assert session_instances(ec2, session, states=("pending", "running", "terminated")) == []


def _instance(ec2, ami, session, zone):
    """A session instance made directly, as ec2_spot_request would have left it."""
    found = ec2.run_instances(
        ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t3.micro",
        Placement={"AvailabilityZone": zone},
        TagSpecifications=[{"ResourceType": "instance",
                            "Tags": [{"Key": "rlops:session", "Value": session}]}],
    )["Instances"][0]
    return found["InstanceId"]


def _data_volumes(ec2, session):
    found = ec2.describe_volumes(Filters=[{"Name": "tag:rlops:session", "Values": [session]},
                                          {"Name": "tag:rlops:role", "Values": ["data"]}])
    return found["Volumes"]


def test_volume_attachment_check_create_rerun_absent(run, ec2, ami):
    session = "moto-vol-1"
    instance_id = _instance(ec2, ami, session, "us-east-1b")
    args = dict(FAST, session=session, instance_id=instance_id, size=20, throughput=250,
                tags={"project": "rl"})

    # Check mode, then the real run: that the real run creates the volume shows the
    # check-mode step left nothing behind.
    planned, made = run.steps(("ebs_volume_attachment", args, True),
                              ("ebs_volume_attachment", args, False))
    assert planned["changed"] is True and planned["created"] is True
    assert planned["volume_id"] is None
    assert not made.get("failed"), made.get("msg")
    assert made["changed"] is True and made["attached"] is True and made["created"] is True
    assert made["device_name"] == "/dev/sdf" and made["availability_zone"] == "us-east-1b"
    vid = made["volume_id"]
    assert made["host_device_candidates"] == [
        "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_" + vid.replace("-", "")]
    (volume,) = _data_volumes(ec2, session)
    assert (volume["VolumeId"], volume["Encrypted"], volume["VolumeType"], volume["Size"]) == (
        vid, True, "gp3", 20)
    assert [(a["InstanceId"], a["State"]) for a in volume["Attachments"]] == [
        (instance_id, "attached")]

    absent = dict(FAST, session=session, state="absent")
    again, would = run.steps(("ebs_volume_attachment", args, False),
                             ("ebs_volume_attachment", absent, True))
    assert again["changed"] is False and again["volume_id"] == vid and again["attached"]
    assert would["changed"] is True
    assert ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0]["Attachments"]

    gone, gone_again = run.steps(("ebs_volume_attachment", absent, False),
                                 ("ebs_volume_attachment", absent, False))
    assert gone["changed"] is True and gone["attached"] is False
    assert gone_again["changed"] is False
    kept = ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0]
    assert kept["State"] == "available" and not kept.get("Attachments")  # never deleted


def test_volume_follows_the_session_to_a_new_instance(run, ec2, ami):
    """Resume: the old spot instance is gone, the volume moves to the new one."""
    session = "moto-vol-resume"
    old = _instance(ec2, ami, session, "us-east-1c")
    first = run("ebs_volume_attachment", dict(FAST, session=session, instance_id=old, size=8))
    assert first["attached"], first.get("msg")
    ec2.terminate_instances(InstanceIds=[old])
    new = _instance(ec2, ami, session, "us-east-1c")

    moved = run("ebs_volume_attachment", dict(FAST, session=session, instance_id=new))

    assert not moved.get("failed"), moved.get("msg")
    assert moved["changed"] is True and moved["volume_id"] == first["volume_id"]
    volume = ec2.describe_volumes(VolumeIds=[first["volume_id"]])["Volumes"][0]
    assert [(a["InstanceId"], a["State"]) for a in volume["Attachments"]] == [(new, "attached")]


def test_volume_in_another_zone_is_refused(run, ec2, ami):
    # moto itself would accept this attach; the module must refuse it before calling EC2.
    session = "moto-vol-zone"
    volume = ec2.create_volume(
        AvailabilityZone="us-east-1a", Size=8, VolumeType="gp3", Encrypted=True,
        TagSpecifications=[{"ResourceType": "volume",
                            "Tags": [{"Key": "rlops:session", "Value": session}]}])
    instance_id = _instance(ec2, ami, session, "us-east-1b")

    refused = run("ebs_volume_attachment", dict(FAST, session=session, instance_id=instance_id))

    assert refused["failed"] is True
    assert refused["msg"] == (
        f"Attach volume {volume['VolumeId']} to {instance_id} at /dev/sdf: volume is in "
        "us-east-1a, instance in us-east-1b; resume in us-east-1a")
    assert not ec2.describe_volumes(VolumeIds=[volume["VolumeId"]])["Volumes"][0].get(
        "Attachments")
