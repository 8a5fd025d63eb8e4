"""rlops.fleet.nvidia_docker's tables (vars/main.yml), rendered by Ansible's templating with
the facts of each OS family: the names a file per family gave before (vars/Debian.yml,
Ubuntu.yml, RedHat.yml, default.yml), the repositories of each family, and the deb822 sources
the one template writes, line for line as the two templates per repository wrote them."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest
import yaml
from role_templar import renderer

ROLE = Path(__file__).resolve().parents[3] / "roles" / "nvidia_docker"
CE = ["docker-ce", "docker-ce-cli", "containerd.io", "docker-buildx-plugin",
      "docker-compose-plugin"]
TOOLKIT = ["nvidia-container-toolkit", "nvidia-container-toolkit-base", "libnvidia-container-tools",
           "libnvidia-container1"]


def role(facts: dict, **inputs):
    """A function that renders an expression with the role's defaults, vars and `facts`.
    `gpu_host_gpu_count` goes into the facts, where rlops.fleet.gpu_host_detect publishes it."""
    if "gpu_host_gpu_count" in inputs:
        facts = {**facts, "gpu_host_gpu_count": inputs.pop("gpu_host_gpu_count")}
    variables = {**yaml.safe_load((ROLE / "defaults" / "main.yml").read_text()),
                 **yaml.safe_load((ROLE / "vars" / "main.yml").read_text()),
                 "ansible_facts": facts, **inputs}
    return renderer(variables)


def facts(distribution, family, release="", pkg_mgr="apt"):
    return {"distribution": distribution, "os_family": family, "distribution_release": release,
            "pkg_mgr": pkg_mgr}


# What vars/<file>.yml said before, for the hosts first_found sent to each file.
@pytest.mark.parametrize(("host", "family", "sep", "distro_docker", "repo_distro"), [
    (facts("Debian", "Debian", "bookworm"), "apt", "=", ["docker.io"], "debian"),
    (facts("Linuxmint", "Debian", "virginia"), "apt", "=", ["docker.io"], "debian"),
    (facts("Ubuntu", "Debian", "noble"), "apt", "=", ["docker.io"], "ubuntu"),
    (facts("RedHat", "RedHat", "Plow", "dnf"), "dnf", "-", [], "rhel"),
    (facts("Rocky", "RedHat", "Blue Onyx", "dnf"), "dnf", "-", [], "centos"),
    (facts("Fedora", "RedHat", "", "dnf5"), "dnf", "-", [], "centos"),
    (facts("Archlinux", "Archlinux", "", "pacman"), "apt", "=", [], "archlinux"),
    (facts("Mageia", "Mandrake", "", "dnf"), "dnf", "-", [], "mageia"),
])
def test_each_family_gets_the_names_its_file_gave(host, family, sep, distro_docker, repo_distro):
    render = role(host)
    assert render("__nvidia_docker_pkg_family") == family
    assert render("__nvidia_docker_version_sep") == sep
    assert render("__nvidia_docker_distro_docker_packages") == distro_docker
    docker_repo = "https://download.docker.com/linux/" + repo_distro
    assert render("__nvidia_docker_docker_repo") == docker_repo
    assert render("__nvidia_docker_engine_packages") == distro_docker


def test_packages_by_engine_source_and_toolkit():
    debian = facts("Debian", "Debian", "bookworm")
    assert role(debian)("__nvidia_docker_engine_packages + __nvidia_docker_toolkit_packages") == [
        "docker.io"]
    forced = role(debian, nvidia_docker_toolkit_force=True, nvidia_docker_docker_source="docker")
    assert forced("__nvidia_docker_engine_packages + __nvidia_docker_toolkit_packages") == CE + [
        name + "=1.17.8-1" for name in TOOLKIT]
    rocky = role(facts("Rocky", "RedHat", "", "dnf"), gpu_host_gpu_count=1,
                 nvidia_docker_engine="podman")
    assert rocky("__nvidia_docker_engine_packages + __nvidia_docker_toolkit_packages") == [
        "podman"] + [name + "-1.17.8-1" for name in TOOLKIT]
    unpinned = role(debian, gpu_host_gpu_count=2, nvidia_docker_toolkit_version="")
    assert unpinned("__nvidia_docker_toolkit_packages") == TOOLKIT
    baked = role(debian, gpu_host_gpu_count=2, nvidia_docker_toolkit_install=False)
    assert baked("__nvidia_docker_toolkit_packages") == []


def wanted(render):
    return [repo["name"] for repo in render("__nvidia_docker_repos_wanted")]


def test_repositories_only_where_wanted():
    debian = facts("Debian", "Debian", "bookworm")
    assert wanted(role(debian)) == []
    assert wanted(role(debian, nvidia_docker_docker_source="docker")) == ["docker"]
    assert wanted(role(debian, nvidia_docker_engine="podman",
                       nvidia_docker_docker_source="docker")) == []
    assert wanted(role(debian, gpu_host_gpu_count=1)) == ["nvidia-container-toolkit"]
    assert wanted(role(debian, gpu_host_gpu_count=1, nvidia_docker_toolkit_repo_url="")) == []
    assert wanted(role(debian, nvidia_docker_toolkit_force=True,
                       nvidia_docker_toolkit_install=False)) == []


def test_dnf_repositories_are_the_repo_files_of_before():
    render = role(facts("RedHat", "RedHat", "Plow", "dnf"), gpu_host_gpu_count=1,
                  nvidia_docker_docker_source="docker")
    docker, toolkit = render("__nvidia_docker_repos_wanted")
    assert (docker["dnf"], docker["key_url"]) == (
        {"name": "docker-ce-stable", "description": "Docker CE Stable", "gpgcheck": True,
         "baseurl": "https://download.docker.com/linux/rhel/$releasever/$basearch/stable"},
        "https://download.docker.com/linux/rhel/gpg")
    assert (toolkit["dnf"], toolkit["key_url"]) == (
        {"name": "nvidia-container-toolkit", "description": "NVIDIA Container Toolkit",
         "baseurl": "https://nvidia.github.io/libnvidia-container/stable/rpm/$basearch",
         "gpgcheck": False, "repo_gpgcheck": True, "sslverify": True},
        "https://nvidia.github.io/libnvidia-container/gpgkey")


def test_apt_sources_are_the_files_of_before():
    render = role(facts("Ubuntu", "Debian", "noble"), gpu_host_gpu_count=1,
                  nvidia_docker_docker_source="docker")
    repos = render("__nvidia_docker_repos_wanted")
    # The template module's settings (trim_blocks); the first line is ansible_managed.
    source = (ROLE / "templates" / "repo.sources.j2").read_text().split("\n", 1)[1]
    template = jinja2.Environment(trim_blocks=True, keep_trailing_newline=True).from_string(source)
    files = {repo["name"]: template.render(__nvidia_docker_repo=repo) for repo in repos}
    assert [repo["key_url"] for repo in repos] == [
        "https://download.docker.com/linux/ubuntu/gpg",
        "https://nvidia.github.io/libnvidia-container/gpgkey"]
    assert files == {
        "docker": "Types: deb\nURIs: https://download.docker.com/linux/ubuntu\nSuites: noble\n"
                  "Components: stable\nSigned-By: /etc/apt/keyrings/docker.asc\n",
        "nvidia-container-toolkit":
            "# A flat repository: the suite is a path, there are no components.\nTypes: deb\n"
            "URIs: https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH)\nSuites: /\n"
            "Signed-By: /etc/apt/keyrings/nvidia-container-toolkit.asc\n"}


def test_gpu_count_from_gpu_host_else_from_the_detection_in_preflight():
    debian = facts("Debian", "Debian", "bookworm")
    two = {"gpus": [{"address": "0000:01:00.0"}, {"address": "0000:02:00.0"}]}
    assert int(role(debian, gpu_host_gpu_count=1, __nvidia_docker_detected=two)(
        "__nvidia_docker_gpu_count")) == 1
    assert int(role(debian, __nvidia_docker_detected=two)("__nvidia_docker_gpu_count")) == 2
    assert role(debian, __nvidia_docker_detected=two)("__nvidia_docker_toolkit_wanted")
    # A skipped detection, or none: no GPU.
    skipped = {"skipped": True, "changed": False}
    assert int(role(debian, __nvidia_docker_detected=skipped)("__nvidia_docker_gpu_count")) == 0
    assert int(role(debian)("__nvidia_docker_gpu_count")) == 0
