"""Every minio_proxy task that sees the root credentials has no_log: true."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROLE = Path(__file__).resolve().parents[3] / "roles/minio_proxy"
# What carries a credential into a task: the variables themselves, the checks that read
# them, and the template of the environment file.
SECRET_MARKERS = (
    "minio_proxy_root_password",
    "minio_proxy_root_user",
    "__minio_proxy_input_checks",
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


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_tasks_that_see_credentials_have_no_log(path):
    for task in tasks(yaml.safe_load(path.read_text()) or []):
        text = yaml.safe_dump(task)
        if any(marker in text for marker in SECRET_MARKERS):
            assert task.get("no_log") is True, f"{path.name}: {task.get('name')} needs no_log: true"


def test_the_check_finds_the_credential_tasks():
    seen = [
        task.get("name")
        for path in FILES
        for task in tasks(yaml.safe_load(path.read_text()) or [])
        if any(marker in yaml.safe_dump(task) for marker in SECRET_MARKERS)
    ]
    assert "Write the environment file with the credentials" in seen
    assert "Create the missing buckets" in seen
