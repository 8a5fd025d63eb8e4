"""Every role's defaults/main.yml and meta/argument_specs.yml describe the same inputs.

Rules, for each role under roles/ (found by glob, so new roles are covered):
- an option with `required: true` has no `default` in the spec and no entry in defaults;
- every other option has a `default` in the spec, and defaults/main.yml has the same key
  with the same value (templated defaults compare as their unrendered strings);
- every option and every default is prefixed `<role>_` (the session role holds the
  playbooks' own settings, `rlops_*`, under its entry point `settings`);
- every option has a non-empty description and a type; `elements` for lists;
  `choices` contain the default, unless it is null (an unset input whose value comes from
  elsewhere, e.g. a resumed session's own setting) or a template (a playbook setting's value);
- provider roles (`provider_<name>`) have the provider contract's entry points, whose options
  are `provider_*` (tests/unit/roles/test_providers.py checks the contract itself).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLES = sorted(p for p in (REPO / "roles").glob("*") if (p / "meta" / "main.yml").is_file())
# Roles whose settings are not named after the role: their prefix and entry points.
PROVIDERS = sorted(r for r in ROLES if r.name.startswith("provider_"))
CONTRACT = ["locate", "provision", "ready", "teardown"]
PREFIX = {"session": "rlops_", **{r.name: "provider_" for r in PROVIDERS}}
# The session role: its settings, and the session layer's entry points (tasks/<name>.yml).
SESSION_LAYER = ["check", "locate", "require", "status", "show", "stop", "retrieve",
                 "retrieve_storage", "evaluate"]
ENTRY_POINTS = {"session": ["settings", *SESSION_LAYER], **{r.name: CONTRACT for r in PROVIDERS}}
TYPES = {"str", "int", "float", "bool", "list", "dict", "path", "raw", "bytes", "bits",
         "jsonarg", "json"}


def _load(path: Path) -> dict:
    with path.open() as handle:
        data = yaml.safe_load(handle)
    return data or {}


def _specs(role: Path) -> dict:
    return _load(role / "meta" / "argument_specs.yml").get("argument_specs", {})


def _spec(role: Path) -> dict:
    """The options of the role's entry points, together."""
    specs, options = _specs(role), {}
    for entry in ENTRY_POINTS.get(role.name, ["main"]):
        assert entry in specs, f"{role.name}: meta/argument_specs.yml has no entry point {entry!r}"
        options.update(specs[entry].get("options") or {})
    return options


def _defaults(role: Path) -> dict:
    path = role / "defaults" / "main.yml"
    return _load(path) if path.exists() else {}


def test_roles_found() -> None:
    assert ROLES, "no role under roles/"


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_files_exist(role: Path) -> None:
    assert (role / "meta" / "argument_specs.yml").is_file()
    assert (role / "meta" / "main.yml").is_file()


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_same_keys(role: Path) -> None:
    spec, defaults = _spec(role), _defaults(role)
    optional = {name for name, option in spec.items() if not option.get("required")}
    assert sorted(set(defaults) - optional) == [], \
        "in defaults/main.yml but not an optional spec option"
    assert sorted(optional - set(defaults)) == [], \
        "optional spec options missing from defaults/main.yml"


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_same_values(role: Path) -> None:
    spec, defaults = _spec(role), _defaults(role)
    for name, option in spec.items():
        if option.get("required"):
            assert "default" not in option, f"{name}: required options have no default"
            continue
        assert "default" in option, f"{name}: optional options need a default in the spec"
        if name in defaults:
            assert defaults[name] == option["default"], (
                f"{name}: defaults/main.yml has {defaults[name]!r}, the spec {option['default']!r}"
            )


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_prefixed(role: Path) -> None:
    prefix = PREFIX.get(role.name, f"{role.name}_")
    names = set(_spec(role)) | set(_defaults(role))
    assert sorted(n for n in names if not n.startswith(prefix)) == []


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_documented(role: Path) -> None:
    for name, option in _spec(role).items():
        description = option.get("description")
        if isinstance(description, list):
            description = " ".join(str(line) for line in description)
        assert description and str(description).strip(), f"{name}: no description"
        assert option.get("type") in TYPES, f"{name}: type {option.get('type')!r}"
        if option["type"] == "list":
            assert "elements" in option, f"{name}: a list needs elements"
        default = option.get("default")
        if "choices" in option and default is not None and "{{" not in str(default):
            assert option["default"] in option["choices"], f"{name}: default not among choices"


def test_session_layer_entry_points_are_its_task_files() -> None:
    """Every entry point of the session layer is a task file of the role, and back."""
    role = REPO / "roles" / "session"
    assert sorted(p.stem for p in (role / "tasks").glob("*.yml")) == sorted(SESSION_LAYER)
    assert sorted(set(_specs(role)) - {"settings"}) == sorted(SESSION_LAYER)
