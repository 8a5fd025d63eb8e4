"""The session layer is the one way into a host's sessions: the playbooks reach them only
through rlops.fleet.session's entry points, which name the runtime's CLI by one variable
and never a path under the data root (the runtime owns the layout: host_sessions.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
PLAYBOOKS = sorted((REPO / "playbooks").glob("*.yml"))
LAYER = sorted((REPO / "roles" / "session" / "tasks").glob("*.yml"))
# What only the runtime knows: the CLI's place, the session folders and their files.
INTERNALS = re.compile(r"bin/rlops-run|sessions/|run\.json|status\.json|\.retrieve-|"
                       r"checkpoints/|config/storage|supervisor\.pid")


def _code(path: Path) -> str:
    """The file without its comments: comments may explain what the runtime does."""
    return "\n".join(line.split(" #", 1)[0] for line in path.read_text().splitlines()
                     if not line.lstrip().startswith("#"))


@pytest.mark.parametrize("path", PLAYBOOKS + LAYER, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_runtime_internals(path: Path) -> None:
    assert INTERNALS.findall(_code(path)) == []


@pytest.mark.parametrize("name", ["status", "stop", "retrieve", "evaluate"])
def test_session_playbooks_go_through_the_layer(name: str) -> None:
    plays = yaml.safe_load((REPO / "playbooks" / f"{name}.yml").read_text())
    tasks = [task for play in plays for task in play.get("tasks", [])]
    layer = [t["ansible.builtin.include_role"]["tasks_from"] for t in tasks
             if t.get("ansible.builtin.include_role", {}).get("name") == "rlops.fleet.session"]
    assert name in layer
    # Only the provider's roles, the layer and a backend's cluster (stop takes a Ray cluster
    # down after the session): no command, no trainer role, no trainer_* vars.
    roles = {t["ansible.builtin.include_role"]["name"] for t in tasks
             if "ansible.builtin.include_role" in t}
    assert roles <= {"rlops.fleet.session", "rlops.fleet.provider_{{ rlops_provider }}",
                     "rlops.fleet.ray_cluster"}
    assert "trainer_" not in _code(REPO / "playbooks" / f"{name}.yml")
    assert not [t for t in tasks if {"ansible.builtin.command", "ansible.builtin.shell"} & set(t)]


def test_the_cli_path_has_one_owner() -> None:
    """__rlops_cli names the CLI on the host; every call of the layer is one
    rlops.fleet.session_call with it (fetch runs the collection's runtime on the controller),
    and no entry point runs a command of its own."""
    session_vars = yaml.safe_load((REPO / "roles" / "session" / "vars" / "main.yml").read_text())
    assert session_vars["__rlops_cli"] == "{{ rlops_data_root }}/bin/rlops-run"
    calls = {}
    for path in LAYER:
        for task in yaml.safe_load(path.read_text()):
            assert not {"ansible.builtin.command", "ansible.builtin.shell"} & set(task), task
            if "rlops.fleet.session_call" in task:
                call = task["rlops.fleet.session_call"]
                calls[f"{path.stem}: {call['verb']}"] = call.get("cli")
    assert calls == {"locate: locate": "{{ __rlops_cli }}", "status: status": "{{ __rlops_cli }}",
                     "stop: stop": "{{ __rlops_cli }}", "retrieve: pack": "{{ __rlops_cli }}",
                     "evaluate: evaluate": "{{ __rlops_cli }}", "retrieve_storage: fetch": None}
