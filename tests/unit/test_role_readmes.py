"""Role READMEs point to the argument spec instead of repeating it.

A table of a role's arguments written by hand drifts from meta/argument_specs.yml (three
had); `ansible-doc -t role rlops.fleet.<role>` renders the spec itself. So each README
names that command, and no README has a table row that starts with one of its role's
options.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLES = sorted(p for p in (REPO / "roles").glob("*")
               if (p / "meta" / "argument_specs.yml").is_file())


def _options(role: Path) -> set[str]:
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    return {name for entry in specs.values() for name in (entry.get("options") or {})}


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_readme_points_to_ansible_doc(role: Path) -> None:
    readme = (role / "README.md").read_text()
    assert f"ansible-doc -t role rlops.fleet.{role.name}" in readme


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_readme_repeats_no_argument_table(role: Path) -> None:
    options = _options(role)
    rows = re.findall(r"^\|\s*`([a-z0-9_]+)`", (role / "README.md").read_text(), re.M)
    repeated = sorted(set(rows) & options)
    assert not repeated, f"{role.name}/README.md repeats the argument spec in a table: {repeated}"
