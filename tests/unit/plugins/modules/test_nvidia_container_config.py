"""plugins/modules/nvidia_container_config.py run in-process on files in a temporary folder,
with an nvidia-ctk that is a script printing what the real one prints (or failing): Docker's
daemon.json combined and written only when it changes, refused when it is not an object, and
podman's CDI spec regenerated; check mode writes nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ansible_collections.rlops.fleet.plugins.modules import nvidia_container_config as ncc

USER = {"bridge": "none", "log-opts": {"max-file": "3"}, "runtimes": {"custom": {"path": "runc"}}}
NVIDIA = {"nvidia": {"args": [], "path": "nvidia-container-runtime"}}


def fake_ctk(folder: Path, stdout: str, rc: int = 0) -> str:
    """An nvidia-ctk that logs its arguments and prints `stdout`."""
    program = folder / "nvidia-ctk"
    (folder / "out.txt").write_text(stdout)
    program.write_text(
        f'#!/bin/sh\necho "$@" >> {folder}/args.txt\ncat {folder}/out.txt\nexit {rc}\n')
    program.chmod(0o755)
    return str(program)


def test_docker_without_nvidia_ctk_combines_the_entry_into_the_users_keys(tmp_path, run_module):
    path = tmp_path / "docker" / "daemon.json"
    path.parent.mkdir()
    path.write_text(json.dumps(USER))
    args = {"engine": "docker", "path": str(path), "nvidia_ctk": str(tmp_path / "absent")}

    result, failed = run_module(ncc.main, args, check_mode=True, common={})
    assert not failed and result["changed"]
    assert json.loads(path.read_text()) == USER  # check mode writes nothing

    result, failed = run_module(ncc.main, args, diff=True, common={})
    assert not failed and result["changed"]
    written = json.loads(path.read_text())
    assert written == {**USER, "runtimes": {"custom": {"path": "runc"}, **NVIDIA}}
    assert result["config"] == written and '"nvidia"' in result["diff"]["after"]
    assert oct(path.stat().st_mode & 0o777) == "0o644"

    # A re-run changes nothing; a file that has the entry is not even reformatted.
    path.write_text(json.dumps(written))
    before = path.read_text()
    result, failed = run_module(ncc.main, args, common={})
    assert (failed, result["changed"], path.read_text()) == (False, False, before)


def test_docker_default_runtime_and_a_missing_file(tmp_path, run_module):
    path = tmp_path / "etc-docker" / "daemon.json"
    args = {"engine": "docker", "path": str(path), "nvidia_ctk": str(tmp_path / "absent"),
            "default_runtime": True}
    result, failed = run_module(ncc.main, args, common={})
    assert not failed and result["changed"]
    assert json.loads(path.read_text()) == {"default-runtime": "nvidia", "runtimes": NVIDIA}
    assert oct(path.parent.stat().st_mode & 0o777) == "0o755"


def test_docker_takes_the_configuration_nvidia_ctk_proposes(tmp_path, run_module):
    proposed = {**USER, "default-runtime": "nvidia",
                "runtimes": {"custom": {"path": "runc"}, **NVIDIA}}
    ctk = fake_ctk(tmp_path, "INFO[0000] Loading config\n" + json.dumps(proposed, indent=4))
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps(USER))
    result, failed = run_module(ncc.main, {"engine": "docker", "path": str(path), "nvidia_ctk": ctk,
                                           "default_runtime": True}, common={})
    assert not failed and result["changed"]
    assert json.loads(path.read_text()) == proposed
    assert (tmp_path / "args.txt").read_text() == (
        "runtime configure --runtime=docker --dry-run --set-as-default\n")


def test_docker_refuses_a_daemon_json_that_is_not_an_object(tmp_path, run_module):
    path = tmp_path / "daemon.json"
    path.write_text('{"bridge": "none",')
    args = {"engine": "docker", "path": str(path), "nvidia_ctk": str(tmp_path / "absent")}
    result, failed = run_module(ncc.main, args, common={})
    assert failed and result["msg"] == (
        f"{path} is not a JSON object: fix it by hand, the role does not overwrite it")
    assert path.read_text() == '{"bridge": "none",'


def test_nvidia_ctk_failing_is_said(tmp_path, run_module):
    ctk = fake_ctk(tmp_path, "ERRO[0000] failed to load config", rc=1)
    result, failed = run_module(ncc.main, {"engine": "podman", "path": str(tmp_path / "cdi.yaml"),
                                           "nvidia_ctk": ctk}, common={})
    assert failed and result["msg"] == (
        f"{ctk} cdi generate --format=yaml exited 1: ERRO[0000] failed to load config")
    assert not (tmp_path / "cdi.yaml").exists()


def test_podman_writes_the_cdi_spec_when_it_differs(tmp_path, run_module):
    spec = "cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices:\n- name: all\n"
    ctk = fake_ctk(tmp_path, spec)
    path = tmp_path / "cdi" / "nvidia.yaml"
    args = {"engine": "podman", "path": str(path), "nvidia_ctk": ctk}
    result, failed = run_module(ncc.main, args, check_mode=True, common={})
    assert not failed and result["changed"] and not path.exists()
    result, failed = run_module(ncc.main, args, common={})
    assert not failed and result["changed"] and path.read_text() == spec
    result, failed = run_module(ncc.main, args, common={})
    assert not failed and not result["changed"]
    (tmp_path / "out.txt").write_text(spec + "- name: '0'\n")  # a driver upgrade
    result, failed = run_module(ncc.main, args, common={})
    assert not failed and result["changed"] and path.read_text().endswith("- name: '0'\n")


def test_podman_without_nvidia_ctk_says_so(tmp_path, run_module):
    missing = str(tmp_path / "nvidia-ctk")
    result, failed = run_module(ncc.main, {"engine": "podman", "path": str(tmp_path / "n.yaml"),
                                           "nvidia_ctk": missing}, common={})
    assert failed and result["msg"] == (
        f"{missing} is not on this host: install the NVIDIA Container Toolkit")
    assert not os.path.exists(tmp_path / "n.yaml")
