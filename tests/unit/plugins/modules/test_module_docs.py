"""DOCUMENTATION says what argument_spec does: same options, types, defaults, choices,
aliases. (ansible-test validate-modules checks this too where it can be installed.)"""

import importlib
from pathlib import Path

import pytest
import yaml
from ansible_collections.amazon.aws.plugins.module_utils.modules import aws_argument_spec
from ansible_collections.rlops.fleet.plugins.modules import (
    ebs_volume_attachment,
    ec2_spot_request,
)
from docfragments import documentation

MODULES = [ec2_spot_request, ebs_volume_attachment]
KEYS = ("type", "default", "choices", "aliases", "elements", "required")


class _Captured(Exception):
    pass


def _argument_spec(module, monkeypatch):
    """The argument_spec main() builds, without running the module."""
    captured = {}

    def fake_init(self, **kwargs):
        captured.update(kwargs)
        raise _Captured()

    monkeypatch.setattr(module.AnsibleAWSModule, "__init__", fake_init)
    with pytest.raises(_Captured):
        module.main()
    common = set(aws_argument_spec())
    return {k: v for k, v in captured["argument_spec"].items() if k not in common}


def _normalised(spec):
    out = {key: spec.get(key) for key in KEYS}
    out["type"] = out["type"] or "str"
    out["required"] = bool(out["required"])
    if out["type"] == "float" and out["default"] is not None:
        out["default"] = float(out["default"])
    out["aliases"] = sorted(out["aliases"] or [])
    out["default"] = None if out["default"] == {} and out["type"] != "dict" else out["default"]
    return out


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_documented_options_match_the_argument_spec(module, monkeypatch):
    documented = documentation(module)["options"]
    spec = _argument_spec(module, monkeypatch)
    assert sorted(documented) == sorted(spec)
    for name, option in spec.items():
        assert _normalised(documented[name]) == _normalised(option), name
        assert documented[name]["description"], name
        for sub, sub_spec in (option.get("options") or {}).items():
            assert _normalised(documented[name]["suboptions"][sub]) == _normalised(sub_spec)


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_examples_and_return_parse_and_attributes_are_declared(module):
    doc = documentation(module)
    assert set(doc["attributes"]) == {"check_mode", "diff_mode", "idempotent"}
    assert all(a["support"] == "full" for a in doc["attributes"].values())
    examples = yaml.safe_load(module.EXAMPLES)
    name = f"rlops.fleet.{doc['module']}"
    assert any(name in task for task in examples)
    returned = yaml.safe_load(module.RETURN)
    assert all({"description", "returned", "type"} <= set(v) for v in returned.values())


ALL_MODULES = sorted(
    path.stem for path in (Path(__file__).resolve().parents[4] / "plugins/modules").glob("*.py")
    if path.stem != "__init__"
)


@pytest.mark.parametrize("name", ALL_MODULES)
def test_every_module_documents_itself_in_yaml(name):
    """ansible-doc shows every module: its DOCUMENTATION, EXAMPLES and RETURN parse."""
    module = importlib.import_module(f"ansible_collections.rlops.fleet.plugins.modules.{name}")
    doc = documentation(module)
    assert doc["module"] == name and doc["short_description"]
    examples = yaml.safe_load(module.EXAMPLES)
    assert any(f"rlops.fleet.{name}" in task for task in examples), "examples use the FQCN"
    assert isinstance(yaml.safe_load(module.RETURN), dict)
