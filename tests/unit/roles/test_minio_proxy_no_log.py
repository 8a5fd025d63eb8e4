"""Secrets stay out of logs and command lines.

- Every minio_proxy task that sees the root password has no_log: true, or hands it only to
  options that its module declares no_log (rlops.fleet.s3_bucket's secret_key), checked
  against the module's own argument spec.
- No task or play of any role or playbook passes a secret through `environment:`, which
  Ansible turns into a command-line prefix: shown at -vvv despite no_log, and in the
  host's process list while the task runs. A static check: the variables an
  `environment:` refers to, followed through the roles' defaults and vars and the
  playbooks' group_vars, may not be named like a secret.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import jinja2
import pytest
import yaml
from ansible.module_utils import basic
from jinja2 import nodes

REPO = Path(__file__).resolve().parents[3]
ROLE = REPO / "roles/minio_proxy"
# What carries the password into a task: the variable itself and the template of the
# environment file. The preflight's checks know only its length and whether it is one line
# (tests/unit/plugins/filter/test_minio_proxy_problems.py keeps it so). The root user is
# MinIO's access key, an identifier sent in every request (amazon.aws shows access_key
# too): it is not a marker.
SECRET_MARKERS = (
    "minio_proxy_root_password",
    "minio.env.j2",
)


def tasks(node):
    """Every task, blocks and handlers included."""
    if isinstance(node, list):
        for item in node:
            yield from tasks(item)
    elif isinstance(node, dict):
        children = [node.get(key) for key in ("block", "rescue", "always") if node.get(key)]
        if children:
            for child in children:
                yield from tasks(child)
        else:
            yield node


FILES = sorted((ROLE / "tasks").glob("*.yml")) + [ROLE / "handlers/main.yml"]


class _Captured(Exception):
    pass


def module_argument_spec(fqcn: str, monkeypatch) -> dict:
    """The argument spec a collection module's main() gives AnsibleModule, without running it."""
    namespace, collection, name = fqcn.split(".")
    assert (namespace, collection) == ("rlops", "fleet"), f"{fqcn}: not a module of this collection"
    module = importlib.import_module(f"ansible_collections.rlops.fleet.plugins.modules.{name}")
    captured = {}

    def fake_init(self, **kwargs):
        captured.update(kwargs)
        raise _Captured()

    with monkeypatch.context() as patch:
        patch.setattr(basic.AnsibleModule, "__init__", fake_init)
        with pytest.raises(_Captured):
            module.main()
    return captured["argument_spec"]


def sees_secret(node) -> bool:
    return any(marker in yaml.safe_dump(node) for marker in SECRET_MARKERS)


def secret_outside_no_log_options(task: dict, monkeypatch) -> list:
    """Where a task without no_log shows the password: [] when it goes only to no_log options
    of a collection module."""
    fqcn = next((key for key in task if key.startswith("rlops.fleet.")), None)
    if fqcn is None:
        return ["the task (no rlops.fleet module takes it as a no_log option)"]
    spec = module_argument_spec(fqcn, monkeypatch)
    shown = [f"option {name} (not no_log)" for name, value in (task[fqcn] or {}).items()
             if sees_secret(value) and not spec[name].get("no_log")]
    rest = {key: value for key, value in task.items() if key != fqcn}
    return shown + (["the task's other keywords"] if sees_secret(rest) else [])


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_tasks_that_see_the_password_have_no_log(path, monkeypatch):
    for task in tasks(yaml.safe_load(path.read_text()) or []):
        if sees_secret(task) and task.get("no_log") is not True:
            where = secret_outside_no_log_options(task, monkeypatch)
            assert not where, (
                f"{path.name}: {task.get('name')} shows the password in {where}: no_log: true")


def test_the_check_finds_the_credential_tasks(monkeypatch):
    seen = {
        task.get("name"): task
        for path in FILES
        for task in tasks(yaml.safe_load(path.read_text()) or [])
        if sees_secret(task)
    }
    assert seen["Write the environment file with the credentials"]["no_log"] is True
    buckets = seen["Wait until MinIO is live, then create the missing buckets"]
    assert "environment" not in buckets and "no_log" not in buckets
    assert secret_outside_no_log_options(buckets, monkeypatch) == []
    # The same task with the password in its environment, or in an option that is shown,
    # is caught.
    leaky = dict(buckets, environment={"AWS_SECRET_ACCESS_KEY": "{{ minio_proxy_root_password }}"})
    assert secret_outside_no_log_options(leaky, monkeypatch) == ["the task's other keywords"]
    args = dict(buckets["rlops.fleet.s3_bucket"], access_key="{{ minio_proxy_root_password }}")
    shown = dict(buckets, **{"rlops.fleet.s3_bucket": args})
    assert secret_outside_no_log_options(shown, monkeypatch) == ["option access_key (not no_log)"]


# --- No secret through `environment:`, in any role or playbook ----------------------------

SECRET_NAME = re.compile(r"password|passwd|secret|token|credential|key", re.IGNORECASE)
JINJA = jinja2.Environment()


def variables_in(node) -> set:
    """The variables the templates in `node` refer to."""
    if isinstance(node, dict):
        return set().union(*(variables_in(v) for v in node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*(variables_in(v) for v in node)) if node else set()
    if isinstance(node, str) and ("{{" in node or "{%" in node):
        # Names read by the template, from its syntax tree alone (compiling it, as
        # jinja2.meta does, would need Ansible's filters); minus the ones it sets itself.
        found = list(JINJA.parse(node).find_all(nodes.Name))
        stored = {n.name for n in found if n.ctx in ("store", "param")}
        return {n.name for n in found if n.ctx == "load"} - stored
    return set()


def definitions() -> dict:
    """Every variable the roles' defaults and vars and the playbooks' group_vars define."""
    files = [*REPO.glob("roles/*/defaults/*.yml"), *REPO.glob("roles/*/vars/*.yml"),
             *REPO.glob("playbooks/group_vars/*.yml"), *REPO.glob("playbooks/group_vars/*/*.yml")]
    found = {}
    for path in sorted(files):
        found.update(yaml.safe_load(path.read_text()) or {})
    return found


def secret_reached(environment, defined: dict) -> list:
    """Chains from an `environment:` value to a variable named like a secret, e.g.
    ['__trainer_storage_env', 'trainer_storage_credentials'] (empty when there is none). The
    environment's own names count too: AWS_SECRET_ACCESS_KEY given from any variable."""
    chains = []
    if isinstance(environment, dict):
        chains += [[f"{name} (a secret's name)"] for name, value in environment.items()
                   if SECRET_NAME.search(str(name)) and variables_in(value)]
    todo = [[name] for name in sorted(variables_in(environment))]
    seen = set()
    while todo:
        chain = todo.pop()
        name = chain[-1]
        if name in seen:
            continue
        seen.add(name)
        if SECRET_NAME.search(name):
            chains.append(chain)
            continue
        todo += [chain + [used] for used in sorted(variables_in(defined.get(name)))]
    return chains


def environments(node, where=""):
    """(where, environment) of every task, block and play in a YAML document."""
    if isinstance(node, list):
        for item in node:
            yield from environments(item, where)
    elif isinstance(node, dict):
        here = node.get("name", where)
        if "environment" in node:
            yield here, node["environment"]
        for key, value in node.items():
            if key != "environment" and isinstance(value, (list, dict)):
                yield from environments(value, here)


TASK_FILES = sorted(
    [*REPO.glob("roles/*/tasks/**/*.yml"), *REPO.glob("roles/*/handlers/*.yml"),
     *REPO.glob("playbooks/*.yml"), *REPO.glob("playbooks/tasks/*.yml")])


@pytest.mark.parametrize("path", TASK_FILES, ids=[str(p.relative_to(REPO)) for p in TASK_FILES])
def test_no_secret_goes_through_environment(path):
    defined = definitions()
    for name, environment in environments(yaml.safe_load(path.read_text())):
        chains = secret_reached(environment, defined)
        assert not chains, (
            f"{path.relative_to(REPO)}: {name!r} passes a secret through environment: "
            f"({', '.join(' -> '.join(c) for c in chains)}), which Ansible shows on the command "
            "line: give it to a no_log module option, a 0600 file or standard input")


def test_the_environment_check_finds_secrets_directly_by_name_and_through_vars():
    defined = {"__role_env": {"A": "{{ __role_inner }}"}, "__role_inner": "{{ role_api_token }}",
               "role_path_var": "/srv", "role_plain": "{{ role_path_var }}/x"}
    assert secret_reached({"AWS_SECRET_ACCESS_KEY": "{{ minio_proxy_root_password }}"}, defined)
    assert secret_reached("{{ __role_env }}", defined) == [
        ["__role_env", "__role_inner", "role_api_token"]]
    assert secret_reached({"X": "{{ role_plain | default('') }}"}, defined) == []
    assert secret_reached({"AWS_SESSION_TOKEN": "{{ role_plain }}"}, defined) == [
        ["AWS_SESSION_TOKEN (a secret's name)"]]
    assert secret_reached({"PATH": "/usr/bin"}, defined) == []
    # The files really are read: the old bucket task of minio_proxy would fail.
    old = yaml.safe_load("""
    - name: Create the missing buckets
      ansible.builtin.command: {argv: [rlops-minio-buckets]}
      environment:
        AWS_ACCESS_KEY_ID: "{{ minio_proxy_root_user }}"
        AWS_SECRET_ACCESS_KEY: "{{ minio_proxy_root_password }}"
    """)
    ((name, environment),) = environments(old)
    assert name == "Create the missing buckets"
    assert ["minio_proxy_root_password"] in secret_reached(environment, definitions())
    assert any(p.name == "service.yml" and "minio_proxy" in str(p) for p in TASK_FILES)
