"""ebs_volume_attachment against botocore's Stubber: the exact EC2 call sequence per scenario."""

from ansible_collections.rlops.fleet.plugins.modules import ebs_volume_attachment

SESSION = "cartpole-20261122t051500z"
DATA_TAGS = ({"Key": "Name", "Value": f"rlops-{SESSION}-data"},
             {"Key": "rlops:role", "Value": "data"},
             {"Key": "rlops:session", "Value": SESSION})
NVME = "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0aaa"


def main():
    ebs_volume_attachment.main()


def volume(vid="vol-0aaa", zone="us-east-1a", state="available", attachments=(),
           tags=DATA_TAGS):
    return {"VolumeId": vid, "AvailabilityZone": zone, "State": state, "Size": 100,
            "VolumeType": "gp3", "Encrypted": True, "Tags": list(tags),
            "Attachments": [{"VolumeId": vid, "InstanceId": i, "Device": d, "State": s}
                            for i, d, s in attachments]}


def instance(iid="i-abc", zone="us-east-1a", state="running", kind="g4dn.xlarge"):
    return {"InstanceId": iid, "InstanceType": kind, "State": {"Name": state},
            "Placement": {"AvailabilityZone": zone},
            "BlockDeviceMappings": [{"DeviceName": "/dev/xvda",
                                     "Ebs": {"VolumeId": "vol-root"}}]}


def find_by_session(stub, volumes):
    stub.add_response("describe_volumes", {"Volumes": list(volumes)},
                      {"Filters": [{"Name": "tag:rlops:session", "Values": [SESSION]}]})


def read_volume(stub, found):
    stub.add_response("describe_volumes", {"Volumes": [found]},
                      {"VolumeIds": [found["VolumeId"]]})


def read_instance(stub, found):
    stub.add_response("describe_instances", {"Reservations": [{"Instances": [found]}]},
                      {"InstanceIds": [found["InstanceId"]]})


def attach(stub, vid="vol-0aaa", iid="i-abc", device="/dev/sdf"):
    stub.add_response("attach_volume", {"VolumeId": vid, "InstanceId": iid, "Device": device,
                                        "State": "attaching"},
                      {"VolumeId": vid, "InstanceId": iid, "Device": device})


def hypervisor(stub, kind="g4dn.xlarge", name="nitro"):
    stub.add_response("describe_instance_types",
                      {"InstanceTypes": [{"InstanceType": kind, "Hypervisor": name}]},
                      {"InstanceTypes": [kind]})


ARGS = {"session": SESSION, "instance_id": "i-abc"}


def test_waits_for_the_attachment_to_go_from_attaching_to_attached(ec2_stub, run_module):
    _client, stub = ec2_stub
    find_by_session(stub, [volume()])
    read_instance(stub, instance())
    attach(stub)
    read_volume(stub, volume(state="in-use", attachments=[("i-abc", "/dev/sdf", "attaching")]))
    read_volume(stub, volume(state="in-use", attachments=[("i-abc", "/dev/sdf", "attaching")]))
    done = volume(state="in-use", attachments=[("i-abc", "/dev/sdf", "attached")])
    read_volume(stub, done)
    read_volume(stub, done)  # the result is read once more
    hypervisor(stub)

    result, failed = run_module(main, ARGS)

    assert not failed, result["msg"]
    stub.assert_no_pending_responses()
    assert result["changed"] is True and result["attached"] is True
    assert result["created"] is False
    assert (result["volume_id"], result["instance_id"], result["availability_zone"],
            result["device_name"]) == ("vol-0aaa", "i-abc", "us-east-1a", "/dev/sdf")
    assert result["host_device_candidates"] == [NVME]


def test_volume_of_a_terminated_instance_is_waited_for_then_attached(ec2_stub, run_module):
    _client, stub = ec2_stub
    held = volume(state="in-use", attachments=[("i-old", "/dev/sdf", "attached")])
    find_by_session(stub, [held])
    read_instance(stub, instance("i-abc", kind="p2.xlarge"))
    read_instance(stub, instance("i-old", state="terminated"))
    read_volume(stub, held)
    read_volume(stub, volume(state="in-use", attachments=[("i-old", "/dev/sdf", "detaching")]))
    read_volume(stub, volume(state="available"))
    attach(stub)
    done = volume(state="in-use", attachments=[("i-abc", "/dev/sdf", "attached")])
    read_volume(stub, done)
    read_volume(stub, done)
    hypervisor(stub, "p2.xlarge", "xen")

    result, failed = run_module(main, ARGS)

    assert not failed, result["msg"]
    stub.assert_no_pending_responses()
    assert result["actions"] == [
        "wait until vol-0aaa is released by i-old", "attach vol-0aaa to i-abc at /dev/sdf",
        "wait until the attachment is attached"]
    assert result["host_device_candidates"] == ["/dev/xvdf", "/dev/sdf"]


def test_volume_in_another_zone_is_refused_before_any_change(ec2_stub, run_module):
    _client, stub = ec2_stub
    find_by_session(stub, [volume(zone="us-east-1a")])
    read_instance(stub, instance(zone="us-east-1b"))

    result, failed = run_module(main, dict(ARGS, size=100))

    assert failed
    stub.assert_no_pending_responses()
    assert result["msg"] == ("Attach volume vol-0aaa to i-abc at /dev/sdf: volume is in "
                             "us-east-1a, instance in us-east-1b; resume in us-east-1a")


def test_volume_on_a_running_instance_needs_force_detach(ec2_stub, run_module):
    _client, stub = ec2_stub
    held = volume(state="in-use", attachments=[("i-def", "/dev/sdf", "attached")])
    find_by_session(stub, [held])
    read_instance(stub, instance())
    read_instance(stub, instance("i-def"))

    result, failed = run_module(main, ARGS)

    assert failed
    stub.assert_no_pending_responses()
    assert result["msg"] == ("Attach volume vol-0aaa to i-abc at /dev/sdf: volume is attached "
                             "to i-def (running); stop the session there, or set "
                             "force_detach: true")


def test_force_detach_detaches_with_the_instance_id_then_attaches(ec2_stub, run_module):
    _client, stub = ec2_stub
    held = volume(state="in-use", attachments=[("i-def", "/dev/sdf", "attached")])
    find_by_session(stub, [held])
    read_instance(stub, instance())
    read_instance(stub, instance("i-def"))
    stub.add_response("detach_volume", {"State": "detaching"},
                      {"VolumeId": "vol-0aaa", "InstanceId": "i-def", "Force": True,
                       "Device": "/dev/sdf"})
    read_volume(stub, volume(state="available"))
    attach(stub)
    done = volume(state="in-use", attachments=[("i-abc", "/dev/sdf", "attached")])
    read_volume(stub, done)
    read_volume(stub, done)
    hypervisor(stub)

    result, failed = run_module(main, dict(ARGS, force_detach=True))

    assert not failed, result["msg"]
    stub.assert_no_pending_responses()
    assert result["actions"][0] == "force-detach vol-0aaa from i-def (/dev/sdf)"


def test_device_held_by_another_volume_is_refused(ec2_stub, run_module):
    _client, stub = ec2_stub
    find_by_session(stub, [volume()])
    busy = instance()
    busy["BlockDeviceMappings"].append({"DeviceName": "/dev/sdf",
                                        "Ebs": {"VolumeId": "vol-other"}})
    read_instance(stub, busy)

    result, failed = run_module(main, ARGS)

    assert failed
    stub.assert_no_pending_responses()
    assert result["msg"] == ("Attach volume vol-0aaa to i-abc at /dev/sdf: /dev/sdf already "
                             "holds vol-other on that instance; choose another device_name")


def test_creates_an_encrypted_gp3_volume_in_the_instance_zone(ec2_stub, run_module):
    _client, stub = ec2_stub
    root = volume("vol-root", tags=[{"Key": "rlops:session", "Value": SESSION},
                                    {"Key": "rlops:role", "Value": "root"}])
    find_by_session(stub, [root])  # the instance's root volume is never the data volume
    read_instance(stub, instance(state="pending"))
    stub.add_response(
        "create_volume", {"VolumeId": "vol-0aaa", "State": "creating"},
        {"AvailabilityZone": "us-east-1a", "Size": 50, "VolumeType": "gp3", "Encrypted": True,
         "Throughput": 250, "TagSpecifications": [
             {"ResourceType": "volume", "Tags": [{"Key": "Name", "Value": f"rlops-{SESSION}-data"},
                                                 {"Key": "project", "Value": "rl"},
                                                 {"Key": "rlops:role", "Value": "data"},
                                                 {"Key": "rlops:session", "Value": SESSION}]}]})
    read_volume(stub, volume(state="creating"))
    read_volume(stub, volume(state="available"))
    read_instance(stub, instance(state="running"))  # attach waits for a pending instance
    attach(stub)
    done = volume(state="in-use", attachments=[("i-abc", "/dev/sdf", "attached")])
    read_volume(stub, done)
    read_volume(stub, done)
    hypervisor(stub)

    result, failed = run_module(main, dict(ARGS, size=50, throughput=250,
                                           tags={"project": "rl"}))

    assert not failed, result["msg"]
    stub.assert_no_pending_responses()
    assert result["created"] is True and result["attached"] is True
    assert result["volume"]["encrypted"] is True


def test_found_volume_gets_the_session_tags_it_lacks(ec2_stub, run_module):
    _client, stub = ec2_stub
    mine = volume(attachments=[("i-abc", "/dev/sdf", "attached")], tags=[])
    read_volume(stub, mine)
    read_instance(stub, instance())
    stub.add_response("create_tags", {}, {"Resources": ["vol-0aaa"], "Tags": list(DATA_TAGS)})
    read_volume(stub, mine)
    hypervisor(stub)

    result, failed = run_module(main, dict(ARGS, volume_id="vol-0aaa"))

    assert not failed, result["msg"]
    stub.assert_no_pending_responses()
    assert result["changed"] is True
    assert result["actions"] == ["tag vol-0aaa with Name, rlops:role, rlops:session"]


def test_rerun_changes_nothing(ec2_stub, run_module):
    _client, stub = ec2_stub
    done = volume(state="in-use", attachments=[("i-abc", "/dev/sdf", "attached")])
    find_by_session(stub, [done])
    read_instance(stub, instance())
    read_volume(stub, done)
    hypervisor(stub)

    result, failed = run_module(main, ARGS)

    assert not failed, result["msg"]
    stub.assert_no_pending_responses()
    assert result["changed"] is False and result["actions"] == []


def test_check_mode_reports_the_plan_and_changes_nothing(ec2_stub, run_module):
    _client, stub = ec2_stub
    find_by_session(stub, [])
    read_instance(stub, instance())
    hypervisor(stub)

    result, failed = run_module(main, dict(ARGS, size=20), check_mode=True, diff=True)

    assert not failed, result["msg"]
    stub.assert_no_pending_responses()
    assert result["changed"] is True and result["created"] is True
    assert result["actions"] == ["create a new volume in us-east-1a",
                                 "attach a new volume to i-abc at /dev/sdf",
                                 "wait until the attachment is attached"]
    assert result["diff"] == {
        "before": {"volume_id": None, "attached_to": [], "device_name": None},
        "after": {"volume_id": None, "attached_to": ["i-abc"], "device_name": "/dev/sdf"}}


def test_absent_detaches_with_the_instance_id_and_waits(ec2_stub, run_module):
    _client, stub = ec2_stub
    held = volume(state="in-use", attachments=[("i-abc", "/dev/sdf", "attached")])
    read_volume(stub, held)
    stub.add_response("detach_volume", {"State": "detaching"},
                      {"VolumeId": "vol-0aaa", "InstanceId": "i-abc", "Force": False,
                       "Device": "/dev/sdf"})
    read_volume(stub, volume(state="in-use", attachments=[("i-abc", "/dev/sdf", "detaching")]))
    read_volume(stub, volume())
    read_volume(stub, volume())

    result, failed = run_module(main, {"volume_id": "vol-0aaa", "state": "absent"})

    assert not failed, result["msg"]
    stub.assert_no_pending_responses()
    assert result["changed"] is True and result["attached"] is False
    assert result["instance_id"] == "i-abc" and result["volume"]["state"] == "available"


def test_bad_arguments_fail_before_any_call(ec2_stub, run_module):
    _client, stub = ec2_stub
    for args, message in (
        ({"device_name": "/dev/nvme1n1"}, "is not a Linux EBS device name"),
        ({"volume_type": "io2"}, "volume_type io2 needs iops"),
        ({"throughput": 300, "volume_type": "gp2"}, "throughput applies to gp3 volumes only"),
        ({"tags": {"rlops:role": "x"}}, "is set by the module"),
    ):
        result, failed = run_module(main, dict(ARGS, **args))
        assert failed and message in result["msg"], result["msg"]
    stub.assert_no_pending_responses()
