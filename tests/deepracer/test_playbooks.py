"""DeepRacer as a backend of the session layer, end to end through the playbooks (issue 13):
train_new (rlops_backend deepracer) -> status -> a spot notice (the IMDS fake on the host:
the model's checkpoint saved and uploaded, the training stopped) -> resume (the increment: a
new model prefix pretrained from the last) -> stop -> evaluate (MP4s, metrics) -> retrieve
(model, metrics, simtrace), on one Docker lab host (`lab.sh up 1 --docker`) running the
stand-in simapp (tests/deepracer/README.md) with DRfC's stack as deepracer_stack renders it.

S3 is localbucket on the host, on 0.0.0.0:9000: the runtime reaches it at 127.0.0.1, the
containers at the sagemaker-local network's gateway (the role's rewrite of a loopback
endpoint). The runtime's venv is the deepracer set (the s3 extra, no torch) from a small
wheelhouse made on the controller (`pip download` under the set's lock), installed with
--no-index. Needs root and podman; `make deepracer-playbooks` (RLOPS_DEEPRACER_PLAYBOOKS=1;
`make deepracer-lab` runs only the bad-input test here, without a lab).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path, PurePosixPath

import pytest
from docker_lab import DockerLab
from dr_inputs import HYPER, METADATA, REWARD
from harness import PlaybookFailed, Playbooks, podman_exec, read_host_json, wait_until

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BUILD = HERE / "simapp" / "build.sh"
HOST = "rlops-drplay-1"
BUCKET = "rl-deepracer"
S3_ROOT = "/srv/s3"
IMDS_PORT = 9100
FIRST = "rl-deepracer-sagemaker"
SECOND = f"{FIRST}-1"
WHEELHOUSE = REPO / ".venv" / "lab-wheelhouse-s3"
LOCK = REPO / "runtime" / "locks" / "python3.11.txt"
ACTIVE = ("starting", "running")
UNIT = ("[Unit]\nDescription={what}\n\n[Service]\nExecStart={command}\nRestart=on-failure\n\n"
        "[Install]\nWantedBy=multi-user.target\n")


def s3_wheelhouse(folder: Path = WHEELHOUSE) -> Path:
    """The deepracer set's wheels (the runtime's s3 extra at the lock's versions), once."""
    if not (folder / ".complete").exists():
        folder.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q",
             "--only-binary=:all:", "--python-version", "3.11", "-c", str(LOCK),
             "-d", str(folder), "boto3"], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"pip download into {folder} failed: {proc.stderr[-1000:]}")
        (folder / ".complete").write_text("")
    return folder


def copy_runtime(dest: Path) -> Path:
    """runtime/ as the trainer role copies it (a snapshot: others edit the checkout)."""
    from lab_hosts import copy_runtime as copy

    return copy(dest)


def service(lab: DockerLab, name: str, what: str, command: str) -> None:
    lab.sh(f"cat > /etc/systemd/system/{name}.service && systemctl daemon-reload"
           f" && systemctl enable --now {name}.service >/dev/null 2>&1",
           stdin=UNIT.format(what=what, command=command))


class Host(Playbooks):
    """The playbooks against the Docker lab host; files read with podman exec."""

    def job_log_tail(self, session: str, host: str = HOST) -> str:
        proc = podman_exec(HOST, "tail", "-c", "3000",
                           str(self.session_dir(session) / "logs" / "job.log"), check=False)
        return proc.stdout.decode(errors="replace") if proc.returncode == 0 else "(no job log)"


def phase(name: str, started: float) -> None:
    print(f"[deepracer-playbooks] {name}: {time.monotonic() - started:.0f} s", flush=True)


@pytest.fixture(scope="module")
def lab():
    if os.environ.get("RLOPS_DEEPRACER_PLAYBOOKS") != "1":
        pytest.skip("the playbooks' DeepRacer life cycle runs in `make deepracer-playbooks`"
                    " (RLOPS_DEEPRACER_PLAYBOOKS=1)")
    if os.geteuid() != 0 or shutil.which("podman") is None:
        pytest.skip("a Docker lab host needs root and podman: tests/lab/lab.sh setup")
    if "--docker" not in (REPO / "tests" / "lab" / "lab.sh").read_text():
        pytest.skip("tests/lab/lab.sh has no `up --docker` yet")
    tar = Path(subprocess.run([str(BUILD)], capture_output=True, text=True, check=True,
                              timeout=900).stdout.strip())
    with DockerLab(HOST) as host:
        host.load_simapp(tar)
        import localbucket

        host.copy_in(Path(localbucket.__file__), "/opt/localbucket/localbucket.py")
        host.sh(f"mkdir -p {S3_ROOT}/{BUCKET}")
        service(host, "localbucket", "S3 for the DeepRacer stack and the session",
                f"/usr/bin/python3 /opt/localbucket/localbucket.py {S3_ROOT}"
                " --host 0.0.0.0 --port 9000")
        host.copy_in(REPO / "runtime" / "tests" / "fake_imds.py", "/opt/fake_imds/fake_imds.py")
        service(host, "fake-imds", "EC2 instance metadata stand-in",
                f"/usr/bin/python3 /opt/fake_imds/fake_imds.py --host 127.0.0.1"
                f" --port {IMDS_PORT}")
        for port in (9000, IMDS_PORT):
            wait_until(lambda port=port: host.sh(
                f"python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}),"
                " 1)\"", check=False).returncode == 0, 30, f"port {port} on the host",
                interval=0.5)
        yield host


@pytest.fixture
def playbooks(lab, tmp_path) -> Host:
    custom = tmp_path / "custom_files"
    custom.mkdir()
    (custom / "reward_function.py").write_text(REWARD)
    (custom / "model_metadata.json").write_text(json.dumps(METADATA))
    (custom / "hyperparameters.json").write_text(json.dumps(HYPER))
    extra = {
        "rlops_backend": "deepracer",
        "rlops_storage_uri": f"s3://{BUCKET}/sessions",
        "rlops_storage_check": "host",
        "rlops_storage_credentials": {
            "RLOPS_S3_ENDPOINT_URL": "http://127.0.0.1:9000",
            "AWS_ACCESS_KEY_ID": "DRLABKEYEXAMPLE00000",
            "AWS_SECRET_ACCESS_KEY": "dr-lab-secret-Qx7-known",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"},
        "rlops_name": "racer",
        "trainer_notices": "imds",
        "trainer_imds_endpoint": f"http://127.0.0.1:{IMDS_PORT}",
        "trainer_torch_requirement": "",
        "trainer_wheelhouse": str(s3_wheelhouse()),
        "trainer_pip_extra_args": "--no-index",
        "trainer_runtime_source_path": str(copy_runtime(tmp_path / "runtime")),
        "deepracer_stack_custom_files_dir": str(custom),
        "deepracer_stack_compose_command": ["docker-compose"],
        "deepracer_stack_world_name": "reInvent2019_track",
        # Not DRfC's default <prefix>-1, which is the increment's next model in this bucket.
        "deepracer_stack_upload_s3_bucket": BUCKET,
        "deepracer_stack_upload_s3_prefix": "uploaded/racer",
    }
    return Host(results=tmp_path / "results", inventory=lab.inventory, logs=tmp_path / "logs",
                data_root=PurePosixPath("/var/lib/rlops"), read_json=read_host_json,
                echo=lambda line: print(f"[deepracer-playbooks] {line}", flush=True),
                poll_interval=2.0, extra=extra)


def s3_keys(lab: DockerLab, prefix: str) -> list[str]:
    out = lab.sh(f"cd {S3_ROOT}/{BUCKET} && find {prefix} -type f 2>/dev/null | sort",
                 check=False).stdout
    return [line for line in out.splitlines() if line]


def stack_containers(lab: DockerLab) -> list[str]:
    return lab.sh("docker ps --format '{{.Names}}'").stdout.split()


def imds(lab: DockerLab, method: str, body: dict | None = None) -> None:
    """The fake IMDS's control path of the spot notice, on the host."""
    data = json.dumps(body).encode() if body is not None else None
    lab.sh("python3 -", stdin=(
        "import urllib.request as u\n"
        f"u.urlopen(u.Request('http://127.0.0.1:{IMDS_PORT}/_control/spot/instance-action',"
        f" method={method!r}, data={data!r}))\n"))


def model(status: dict) -> dict:
    return status.get("deepracer") or {}


def test_train_notice_resume_evaluate_retrieve(lab, playbooks):
    started = time.monotonic()
    out = playbooks.run("train_new").stdout
    session = playbooks.session_from(out)
    phase("train_new", started)
    # The stack runs: robomaker and rl_coach of the project, the trainer rl_coach started.
    running = playbooks.wait(session, lambda s: s.get("state") == "running"
                             and model(s).get("last_checkpoint"), 300,
                             "a DeepRacer checkpoint", host=HOST)
    assert model(running)["model_prefix"] == FIRST
    assert any(name.startswith("deepracer-0") for name in stack_containers(lab))
    assert s3_keys(lab, f"{FIRST}/training_params.yaml") == [f"{FIRST}/training_params.yaml"]
    phase("first checkpoint", started)

    table = playbooks.run("status").stdout
    assert f"DeepRacer model {FIRST}" in table and "iteration" in table, table[-3000:]

    # A spot notice: the supervisor checkpoints, the driver uploads the model and stops the
    # training (the trainer outside the project too); nothing of the stack is left.
    imds(lab, "PUT", {"action": "stop", "time": "2026-12-07T10:00:00Z"})
    stopped = playbooks.wait(session, lambda s: s.get("state") not in ACTIVE + ("stopping",),
                             240, "the session stopped by the notice", host=HOST)
    assert stopped.get("exit_reason"), stopped
    imds(lab, "DELETE")
    wait_until(lambda: not any("deepracer" in name or "algo-1" in name
                               for name in stack_containers(lab)), 60, "the stack down",
               interval=2.0)
    uploaded = s3_keys(lab, "uploaded/racer")
    assert any(key.endswith("model_metadata.json") for key in uploaded), uploaded
    phase("spot notice", started)

    # Resume is DRfC's increment: a new model, pretrained from the one the notice stopped.
    playbooks.run("resume", rlops_session=session)
    resumed = playbooks.wait(session, lambda s: s.get("state") == "running"
                             and model(s).get("model_prefix") == SECOND
                             and model(s).get("last_checkpoint"), 300,
                             "a checkpoint of the incremented model", host=HOST)
    assert resumed["step"] >= running["step"], (running, resumed)
    params = lab.sh(f"cat {S3_ROOT}/{BUCKET}/{SECOND}/training_params.yaml").stdout
    assert f"'SAGEMAKER_SHARED_S3_PREFIX': '{SECOND}'" in params, params
    phase("resume (increment)", started)

    playbooks.run("stop", rlops_session=session)
    wait_until(lambda: not any("deepracer" in name or "algo-1" in name
                               for name in stack_containers(lab)), 60, "the stack down",
               interval=2.0)
    phase("stop", started)

    try:
        out = playbooks.run("evaluate", rlops_session=session, rlops_eval_episodes=2).stdout
    except PlaybookFailed as exc:  # the evaluation project once more, in the foreground
        shown = lab.sh(f"find {S3_ROOT}/{BUCKET}/{SECOND} -type f | sort; "
                       f"cat {S3_ROOT}/{BUCKET}/{SECOND}/evaluation_params.yaml; "
                       "timeout 60 docker-compose --project-name deepracer-eval-0 --file "
                       "/opt/deepracer/compose/evaluation.yml up 2>&1 | tail -40", check=False)
        raise AssertionError(shown.stdout[-6000:]) from exc
    eval_dir = playbooks.results / session / "eval"
    files = sorted(p.relative_to(eval_dir).as_posix() for p in eval_dir.rglob("*") if p.is_file())
    assert any(name.endswith(".mp4") for name in files), (files, out[-3000:])
    phase("evaluate", started)

    playbooks.run("retrieve", rlops_session=session)
    home = playbooks.results / session
    mirrored = sorted(p.relative_to(home).as_posix()
                      for p in (home / "deepracer").rglob("*") if p.is_file())
    for prefix in (FIRST, SECOND):
        assert f"deepracer/{prefix}/metrics/TrainingMetrics.json" in mirrored, mirrored
        assert any(name.startswith(f"deepracer/{prefix}/") and name.endswith("-iteration.csv")
                   for name in mirrored), mirrored
    assert any((home / "checkpoints").iterdir()), "no session checkpoint brought home"
    phase("retrieve", started)


def test_file_storage_is_refused_before_anything_changes(tmp_path):
    """No lab: a deepracer session on file:// storage is refused by the session contract's
    rule on the controller, after the custom files' checks, before any folder is made."""
    local = Playbooks(results=tmp_path / "results", data_root=tmp_path / "data",
                      logs=tmp_path / "logs")
    out = local.run("train_new", ok=False, rlops_backend="deepracer",
                    rlops_data_root=str(tmp_path / "data")).stdout
    assert "the deepracer backend needs s3://bucket/prefix storage" in out, out[-3000:]
    assert not (tmp_path / "data").exists() and not (tmp_path / "results").exists()
