"""rlops.fleet.nvidia_driver's settings renamed from gpu_host_* (defaults/main.yml reads the old
name until 0.2.0, preflight names the ones still set) and its decisions in vars/main.yml,
rendered by Ansible's templating: the inputs' problems, the recipe of each distribution, and
gpu_host's choice of recipe from the same table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from role_templar import renderer

ROLES = Path(__file__).resolve().parents[3] / "roles"
ROLE = ROLES / "nvidia_driver"
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
VARS = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
GPU_HOST_VARS = yaml.safe_load((ROLES / "gpu_host" / "vars" / "main.yml").read_text())
OLD = re.compile(r"\{\{ gpu_host_(\w+) \| default\((.*)\) \}\}$")


def role(facts=None, **inputs):
    """Renders an expression with the role's defaults and vars, the facts and `inputs`."""
    variables = {**DEFAULTS, **VARS, "ansible_facts": facts or {}, **inputs}
    return renderer(variables)


def test_every_setting_is_a_renamed_one_that_reads_its_old_name():
    renamed = [OLD.match(value).group(1) for value in DEFAULTS.values()]
    assert [name.removeprefix("nvidia_driver_") for name in DEFAULTS] == renamed
    assert sorted(VARS["__nvidia_driver_renamed"]) == sorted(renamed)


@pytest.mark.parametrize(("name", "old_value", "value", "default"), [
    ("reboot_allowed", True, True, False),
    ("reboot_timeout", 60, 60, 900),
    ("persistence", False, False, True),
    ("cuda_repo_url", "https://m/cuda", "https://m/cuda", ""),
])
def test_the_old_name_is_read_and_the_new_one_wins(name, old_value, value, default):
    def render(**inputs):
        result = role(**inputs)("nvidia_driver_" + name)
        return result if isinstance(value, str) else yaml.safe_load(str(result))
    assert render() == default
    assert render(**{"gpu_host_" + name: old_value}) == value
    assert render(**{"gpu_host_" + name: old_value, "nvidia_driver_" + name: default}) == default


def test_preflight_names_the_old_names_and_only_those():
    # The names it looks for among the variables (query('ansible.builtin.varnames', ...)).
    pattern = re.compile(role()("__nvidia_driver_old_names"))
    names = ["gpu_host_persistence", "gpu_host_reboot_timeout", "gpu_host_verify",
             "gpu_host_reboot_timeout_s", "nvidia_driver_persistence", "gpu_host_load_module"]
    assert [name for name in names if pattern.match(name)] == [
        "gpu_host_persistence", "gpu_host_reboot_timeout", "gpu_host_load_module"]
    assert all(pattern.match("gpu_host_" + name) for name in VARS["__nvidia_driver_renamed"])


def test_the_inputs_problems_in_one_list():
    assert role()("__nvidia_driver_problems") == []
    assert role(nvidia_driver_reboot_timeout=0)("__nvidia_driver_problems") == [
        "nvidia_driver_reboot_timeout must be greater than 0"]
    assert role(gpu_host_reboot_timeout=-5, nvidia_driver_cuda_repo_url="ftp://m/cuda")(
        "__nvidia_driver_problems") == [
        "nvidia_driver_reboot_timeout must be greater than 0",
        "nvidia_driver_cuda_repo_url (ftp://m/cuda) must be an http(s) URL"]
    assert role(nvidia_driver_cuda_repo_url="https://m/cuda")("__nvidia_driver_problems") == []


def plan(recipe, branch="580", action="install", install=True):
    return {"action": action, "branch": branch, "recipe": recipe, "install": install,
            "gpu_present": True, "nvidia_loaded": False, "nouveau_loaded": False, "debian": {}}


@pytest.mark.parametrize(("facts", "recipe", "repo", "fixed", "packages"), [
    ({"distribution": "Debian", "os_family": "Debian"}, "Debian", "debian", "535",
     ["linux-headers-6.1.0-30-amd64", "nvidia-driver", "firmware-misc-nonfree",
      "nvidia-persistenced"]),
    ({"distribution": "Ubuntu", "os_family": "Debian"}, "Ubuntu", "none", "",
     ["linux-headers-6.1.0-30-amd64", "nvidia-driver-580-server", "nvidia-utils-580-server"]),
    ({"distribution": "Rocky", "os_family": "RedHat"}, "RedHat", "redhat", "",
     ["kernel-devel-6.1.0-30-amd64", "kernel-headers-6.1.0-30-amd64",
      "@nvidia-driver:580-dkms"]),
    ({"distribution": "Archlinux", "os_family": "Archlinux"}, "default", "unsupported", "", []),
])
def test_gpu_host_chooses_the_recipe_and_nvidia_driver_installs_it(
        facts, recipe, repo, fixed, packages):
    facts = {**facts, "kernel": "6.1.0-30-amd64"}
    # gpu_host reads this role's table through a lookup (role_path); here, the table itself.
    gpu_host = {name: GPU_HOST_VARS[name] for name in
                ("__gpu_host_recipe_name", "__gpu_host_repo", "__gpu_host_fixed_branch")}
    chosen = role(facts, **gpu_host, __gpu_host_recipes=VARS["__nvidia_driver_recipes"])
    assert [chosen(name) for name in gpu_host] == [recipe, repo, fixed]
    driver = role(facts, __nvidia_driver_plan=plan(recipe))
    assert driver("__nvidia_driver_repo") == repo
    assert driver("__nvidia_driver_packages") == packages
