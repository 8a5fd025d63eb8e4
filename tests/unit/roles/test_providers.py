"""The provider contract (roles/provider_aws/README.md), checked on the files.

- Every provider role has the four entry points as task files and in its argument spec,
  with the same options as the AWS provider's (names, types, choices), all required.
- rlops_provider's choices and the list the playbooks check it against (__rlops_providers)
  name exactly the provider roles.
- The playbooks name no provider: they include `rlops.fleet.provider_{{ rlops_provider }}`
  and never test rlops_provider or read a provider's own settings.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
PROVIDERS = sorted(p for p in (REPO / "roles").glob("provider_*") if p.is_dir())
CONTRACT = ["locate", "provision", "ready", "teardown"]
PLAYBOOKS = sorted((REPO / "playbooks").glob("*.yml"))


def _load(path: Path):
    with path.open() as handle:
        return yaml.safe_load(handle)


def _specs(role: Path) -> dict:
    return _load(role / "meta" / "argument_specs.yml")["argument_specs"]


def _shape(options: dict) -> dict:
    return {name: (o["type"], o.get("choices")) for name, o in options.items()}


def test_providers_found() -> None:
    assert [p.name for p in PROVIDERS] == ["provider_aws", "provider_azure", "provider_inventory"]


@pytest.mark.parametrize("role", PROVIDERS, ids=[p.name for p in PROVIDERS])
def test_entry_points(role: Path) -> None:
    specs, reference = _specs(role), _specs(REPO / "roles" / "provider_aws")
    assert sorted(specs) == CONTRACT
    for entry in CONTRACT:
        assert (role / "tasks" / f"{entry}.yml").is_file(), f"no tasks/{entry}.yml"
        options = specs[entry].get("options") or {}
        assert all(o.get("required") for o in options.values()), f"{entry}: an optional option"
        assert _shape(options) == _shape(reference[entry]["options"]), entry


def test_known_providers() -> None:
    names = sorted(p.name.removeprefix("provider_") for p in PROVIDERS)
    setting = _load(REPO / "roles/session/meta/argument_specs.yml")["argument_specs"]["settings"]
    assert sorted(setting["options"]["rlops_provider"]["choices"]) == names
    assert sorted(_load(REPO / "roles/session/vars/main.yml")["__rlops_providers"]) == names


@pytest.mark.parametrize("playbook", PLAYBOOKS, ids=[p.name for p in PLAYBOOKS])
def test_playbooks_name_no_provider(playbook: Path) -> None:
    text = playbook.read_text()
    assert re.findall(r"rlops_provider\s*(?:==|!=|\bin\b|\bis\b)", text) == []
    # The only provider words: the contract's options and facts.
    contract = {name for spec in _specs(REPO / "roles" / "provider_aws").values()
                for name in spec["options"]} | {"rlops_provider_report"}
    assert set(re.findall(r"\b(?:rlops_aws|\w*provider)_\w+", text)) <= contract
    for name in re.findall(r"name: \"?(rlops\.fleet\.provider_[^\"\n]*)", text):
        assert name == "rlops.fleet.provider_{{ rlops_provider }}"
