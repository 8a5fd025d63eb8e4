"""rlops.fleet.deepracer_stack through real ansible-playbook runs on localhost.

upload, against a moto server on 127.0.0.1: the shipped custom files pass validation and land
under DRfC's keys with the training params, a second run changes nothing, check mode writes
nothing, a prefix holding a trained model is refused (and kept), and a bad setting fails
before any upload. start and stop, with a stand-in `docker` on PATH (this machine has no
compose plugin; the lab hosts run the real one): the upload, the files, the network created
with the SDK's labels (an unlabelled one refused), `compose config` and `up` with the project
name, a re-run unchanged; stop finds this run's trainers by docker inspect (the compose file's
label under the SageMaker folder, RUN_ID and the model prefix), stops the running one and
removes both, leaves another run's and another model's, then takes the project down; check
mode only looks, and a second stop changes nothing. The secret appears
nowhere in the output.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
import yaml
from servers import moto_server

REPO = Path(__file__).resolve().parents[3]
PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
SECRET = "moto-secret-Zq81-known"
TRACK = "2022_reinvent_champ_ccw"


@pytest.fixture(scope="module")
def moto():
    with moto_server() as endpoint:
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key=SECRET)
        client.create_bucket(Bucket="bucket")
        yield endpoint, client


def _play(tmp_path, endpoint, check=False, entry="upload", env=None, **settings):
    variables = {"deepracer_stack_local_s3_endpoint_url": endpoint,
                 "deepracer_stack_local_access_key_id": "testing",
                 "deepracer_stack_local_secret_access_key": SECRET,
                 "deepracer_stack_validate_tracks": [TRACK], **settings}
    play = [{"name": "DeepRacer upload", "hosts": "localhost", "gather_facts": False,
             "tasks": [{"name": "Upload", "ansible.builtin.include_role": {
                 "name": "rlops.fleet.deepracer_stack", "tasks_from": entry},
                 "vars": variables}]}]
    path = tmp_path / "play.yml"
    path.write_text(json.dumps(play))
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           **(env or {})}
    proc = subprocess.run(
        [str(PLAYBOOK), "-i", "localhost,", "-c", "local",
         "-e", f"ansible_python_interpreter={sys.executable}", str(path)]
        + (["--check"] if check else []),
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    output = proc.stdout + proc.stderr
    assert SECRET not in output
    return proc.returncode, output


def _keys(client, prefix=""):
    answer = client.list_objects_v2(Bucket="bucket", Prefix=prefix)
    return sorted(o["Key"] for o in answer.get("Contents", []))


def test_upload_check_mode_then_real_then_unchanged(moto, tmp_path):
    endpoint, client = moto
    rc, output = _play(tmp_path, endpoint, check=True,
                       deepracer_stack_local_s3_model_prefix="dr-a")
    assert rc == 0, output[-3000:]
    assert _keys(client, "dr-a/") == [] and _keys(client, "custom_files/") == []
    rc, output = _play(tmp_path, endpoint, deepracer_stack_local_s3_model_prefix="dr-a")
    assert rc == 0, output[-3000:]
    assert "changed=1" in output
    assert _keys(client, "dr-a/") == ["dr-a/reward_function.py", "dr-a/training_params.yaml"]
    assert _keys(client, "custom_files/") == ["custom_files/hyperparameters.json",
                                              "custom_files/model_metadata.json",
                                              "custom_files/reward_function.py"]
    shipped = (REPO / "roles/deepracer_stack/files/custom_files/reward_function.py").read_bytes()
    body = client.get_object(Bucket="bucket", Key="custom_files/reward_function.py")["Body"]
    assert body.read() == shipped
    params = yaml.safe_load(
        client.get_object(Bucket="bucket", Key="dr-a/training_params.yaml")["Body"].read())
    assert params["SAGEMAKER_SHARED_S3_PREFIX"] == "dr-a"
    assert params["METRICS_S3_OBJECT_KEY"] == "dr-a/metrics/TrainingMetrics.json"
    rc, output = _play(tmp_path, endpoint, deepracer_stack_local_s3_model_prefix="dr-a")
    assert rc == 0 and "changed=0" in output, output[-3000:]


def test_a_trained_prefix_is_refused_and_kept(moto, tmp_path):
    endpoint, client = moto
    client.put_object(Bucket="bucket", Key="dr-b/model/model_5.pb", Body=b"trained")
    rc, output = _play(tmp_path, endpoint, deepracer_stack_local_s3_model_prefix="dr-b")
    assert rc != 0
    assert "model prefix dr-b/ holds 1 object(s) this upload does not write" in output
    assert _keys(client, "dr-b/") == ["dr-b/model/model_5.pb"]


def test_bad_settings_fail_before_any_upload(moto, tmp_path):
    endpoint, client = moto
    rc, output = _play(tmp_path, endpoint, deepracer_stack_local_s3_model_prefix="dr-c",
                       deepracer_stack_workers=12,
                       deepracer_stack_extra_env={"DR_WORLD_NAME": "x"})
    assert rc != 0
    assert "deepracer_stack_extra_env: DR_WORLD_NAME is modelled" in output
    assert "deepracer_stack_workers is '12': 1 to 10 robomaker workers" in output
    assert _keys(client, "dr-c/") == []


FAKE_DOCKER = "#!" + sys.executable + r"""
# A stand-in docker CLI: records its arguments; keeps networks and containers in a state folder.
# Containers as docker and compose make them: compose up makes one per service of the file,
# labelled with the project and the file (com.docker.compose.project.config_files) and with
# the file's environment; ps filters by label (K=V, or K present), running ones unless --all;
# inspect answers docker's JSON (a missing id: the others, an error, exit 1); stop, rm --force.
import json, os, sys
import yaml
state = os.environ["FAKE_DOCKER_STATE"]
args = sys.argv[1:]
with open(os.path.join(state, "calls.jsonl"), "a") as log:
    log.write(json.dumps(args) + "\n")
net = os.path.join(state, "network.json")
containers_file = os.path.join(state, "containers.json")
containers = json.load(open(containers_file)) if os.path.exists(containers_file) else {}
PROJECT, FILES = "com.docker.compose.project", "com.docker.compose.project.config_files"
ids = [a for a in args[1:] if not a.startswith("-")]


def matches(labels, wanted):
    return all(labels.get(w.split("=", 1)[0]) == w.split("=", 1)[1] if "=" in w
               else w in labels for w in wanted)


if args[:2] == ["network", "inspect"]:
    if not os.path.exists(net):
        sys.exit("Error response from daemon: network %s not found" % args[2])
    print(open(net).read())
elif args[:2] == ["network", "create"]:
    labels = dict(a[len("--label="):].split("=", 1) for a in args if a.startswith("--label="))
    gateway = [a.split("=", 1)[1] for a in args if a.startswith("--gateway=")]
    json.dump([{"Name": args[-1], "Labels": labels,
                "IPAM": {"Config": [{"Gateway": gateway[0]}]}}], open(net, "w"))
elif args[0] == "ps":
    wanted = [a.split("=", 1)[1] for a in args if a.startswith("label=")]
    for ident, c in containers.items():
        if ("--all" in args or c["running"]) and matches(c["labels"], wanted):
            print(ident)
elif args[0] == "inspect":
    known = [i for i in ids if i in containers]
    print(json.dumps([{"Id": i, "Name": "/" + containers[i]["name"],
                       "Config": {"Labels": containers[i]["labels"], "Env": containers[i]["env"]},
                       "State": {"Running": containers[i]["running"]}} for i in known], indent=4))
    for i in ids:
        if i not in containers:
            print("Error: No such object: " + i, file=sys.stderr)
    sys.exit(0 if len(known) == len(ids) else 1)
elif args[0] in ("stop", "rm"):
    for i in ids:
        if i not in containers:
            sys.exit("Error response from daemon: No such container: " + i)
        if containers[i]["running"] and args[0] == "rm" and "--force" not in args:
            sys.exit("Error response from daemon: cannot remove a running container " + i)
        containers[i]["running"] = False
        if args[0] == "rm":
            del containers[i]
        print(i)
elif args[0] == "compose":
    path = args[args.index("--file") + 1]
    services = yaml.safe_load(open(path))["services"]
    project = (args[args.index("--project-name") + 1] if "--project-name" in args
               else os.path.basename(os.path.dirname(path)))
    verb = [a for a in args if a in ("config", "up", "down")][0]
    mine = [i for i, c in containers.items() if c["labels"][PROJECT] == project]
    if verb == "up" and not mine:
        for name, service in services.items():
            env = service.get("environment") or {}
            env = ["%s=%s" % item for item in env.items()] if isinstance(env, dict) else env
            containers["id-%s-%s" % (project, name)] = {
                "name": "%s-%s-1" % (project, name), "running": True, "env": env,
                "labels": {PROJECT: project, FILES: path}}
    elif verb == "down":
        for i in mine:
            del containers[i]
else:
    sys.exit("unexpected: %s" % args)
json.dump(containers, open(containers_file, "w"))
"""


def test_compose_refuses_a_network_without_the_sdk_labels(tmp_path):
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    state.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    (state / "network.json").write_text(json.dumps(
        [{"Name": "sagemaker-local", "Labels": {}, "IPAM": {"Config": [{"Gateway": "10.9.0.1"}]}}]))
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_DOCKER_STATE": str(state)}
    rc, output = _play(tmp_path, "http://127.0.0.1:9000", entry="compose", env=env,
                       deepracer_stack_dir=str(tmp_path / "deepracer"))
    assert rc != 0
    assert "The docker network sagemaker-local exists without the labels" in output
    assert "gateways ['10.9.0.1']" in output
    calls = [json.loads(line) for line in (state / "calls.jsonl").read_text().splitlines()]
    assert calls == [["network", "inspect", "sagemaker-local"]]


def _calls(state):
    return [json.loads(line) for line in (state / "calls.jsonl").read_text().splitlines()]


def _trainer(sagemaker, folder, run_id, job, running=True):
    """The container compose makes of the SageMaker SDK's compose file (rl_coach's trainer)."""
    return {"name": f"{folder}_algo-1-ab12c_1", "running": running,
            "labels": {"com.docker.compose.project": folder,
                       "com.docker.compose.project.config_files":
                       f"{sagemaker}/{folder}/docker-compose.yaml"},
            "env": [f"RUN_ID={run_id}", f"TRAINING_JOB_NAME={job}",
                    f"AWS_SECRET_ACCESS_KEY={SECRET}"]}


def test_start_and_stop_with_a_stand_in_docker(moto, tmp_path):
    endpoint, client = moto
    bin_dir, state, sagemaker = tmp_path / "bin", tmp_path / "state", tmp_path / "sagemaker"
    bin_dir.mkdir()
    state.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_DOCKER_STATE": str(state)}
    home = tmp_path / "deepracer"
    settings = {"deepracer_stack_dir": str(home), "deepracer_stack_local_s3_model_prefix": "dr-e",
                "__deepracer_stack_sagemaker_dir": str(sagemaker)}
    # Check mode: looks only (docker ps, start's and the upload's, the network), writes and
    # starts nothing.
    running = ["ps", "--quiet", "--filter", "label=com.docker.compose.project=deepracer-0"]
    rc, output = _play(tmp_path, endpoint, check=True, entry="start", env=env,
                       deepracer_stack_workers=2, **settings)
    assert rc == 0, output[-3000:]
    assert _calls(state) == [running, running, ["network", "inspect", "sagemaker-local"]]
    assert not home.exists() and _keys(client, "dr-e/") == []
    (state / "calls.jsonl").unlink()
    rc, output = _play(tmp_path, endpoint, entry="start", env=env, deepracer_stack_workers=2,
                       **settings)
    assert rc == 0, output[-3000:]
    calls = _calls(state)
    assert calls == [
        running, running,
        ["network", "inspect", "sagemaker-local"],
        ["network", "create", "--driver=bridge", "--subnet=172.30.213.0/24",
         "--gateway=172.30.213.1", "--label=com.docker.compose.network=sagemaker-local",
         "--label=com.docker.compose.project=sagemaker-local", "sagemaker-local"],
        ["compose", "--project-name", "deepracer-0", "--file", f"{home}/compose/training.yml",
         "config", "--quiet"],
        ["compose", "--project-name", "deepracer-eval-0", "--file",
         f"{home}/compose/evaluation.yml", "config", "--quiet"],
        ["compose", "--project-name", "deepracer-0", "--file", f"{home}/compose/training.yml",
         "up", "--detach"]]
    training = yaml.safe_load((home / "compose" / "training.yml").read_text())
    assert oct((home / "compose" / "training.yml").stat().st_mode & 0o777) == "0o600"
    robomaker = training["services"]["robomaker"]
    assert robomaker["scale"] == 2 and robomaker["volumes"] == [f"{home}/tmp/comms.0:/mnt/comms"]
    port = endpoint.rsplit(":", 1)[1]  # moto's, on 127.0.0.1: the gateway in the containers
    assert robomaker["environment"]["S3_ENDPOINT_URL"] == f"http://172.30.213.1:{port}"
    assert robomaker["environment"]["AWS_SECRET_ACCESS_KEY"] == SECRET
    assert (home / "tmp" / "comms.0").is_dir() and sagemaker.is_dir()
    assert _keys(client, "dr-e/") == ["dr-e/reward_function.py", "dr-e/training_params.yaml"]
    # Running: a second start changes nothing (and does not refuse its own model prefix).
    client.put_object(Bucket="bucket", Key="dr-e/model/model_0.pb", Body=b"trained")
    rc, output = _play(tmp_path, endpoint, entry="start", env=env, deepracer_stack_workers=2,
                       **settings)
    assert rc == 0 and "changed=0" in output, output[-3000:]
    assert len(_calls(state)) == len(calls) + 1
    # rl_coach's trainers outside the project: this run's (and an exited one of it), another
    # run's and another model's (DRfC's grep would take run 10's for run 0, dr-e2's for dr-e).
    containers = json.loads((state / "containers.json").read_text())
    project_ids = list(containers)
    assert project_ids == ["id-deepracer-0-rl_coach", "id-deepracer-0-robomaker"]
    containers.update({"c-old": _trainer(sagemaker, "tmpmine0000", "0", "dr-e", running=False),
                       "c-mine": _trainer(sagemaker, "tmpmine0001", "0", "dr-e"),
                       "c-run10": _trainer(sagemaker, "tmpother002", "10", "dr-e"),
                       "c-model": _trainer(sagemaker, "tmpother003", "0", "dr-e2")})
    (state / "containers.json").write_text(json.dumps(containers))
    composed = ["ps", "--all", "--quiet", "--filter",
                "label=com.docker.compose.project.config_files"]
    inspect = ["inspect", *project_ids, "c-old", "c-mine", "c-run10", "c-model"]
    project_ps = ["ps", "--all", "--quiet", "--filter",
                  "label=com.docker.compose.project=deepracer-0"]
    # Check mode: looks only.
    before = len(_calls(state))
    rc, output = _play(tmp_path, endpoint, check=True, entry="stop", env=env,
                       deepracer_stack_workers=2, **settings)
    assert rc == 0, output[-3000:]
    assert _calls(state)[before:] == [composed, inspect, project_ps]
    assert json.loads((state / "containers.json").read_text()) == containers
    before = len(_calls(state))
    rc, output = _play(tmp_path, endpoint, entry="stop", env=env, deepracer_stack_workers=2,
                       **settings)
    assert rc == 0, output[-3000:]
    assert _calls(state)[before:] == [
        composed, inspect, ["stop", "c-mine"], ["rm", "--force", "c-old"],
        ["rm", "--force", "c-mine"], project_ps,
        ["compose", "--project-name", "deepracer-0", "--file", f"{home}/compose/training.yml",
         "down"]]
    assert sorted(json.loads((state / "containers.json").read_text())) == ["c-model", "c-run10"]
    assert "dr-e/model/model_0.pb" in _keys(client, "dr-e/")
    before = len(_calls(state))
    rc, output = _play(tmp_path, endpoint, entry="stop", env=env, deepracer_stack_workers=2,
                       **settings)
    assert rc == 0 and "changed=0" in output, output[-3000:]
    assert _calls(state)[before:] == [composed, ["inspect", "c-run10", "c-model"], project_ps]
