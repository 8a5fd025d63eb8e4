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
from docfragments import documentation, module_arguments, normalised

MODULES = [ec2_spot_request, ebs_volume_attachment]


def _argument_spec(module, monkeypatch):
    """The argument_spec main() builds, without AnsibleAWSModule's common options."""
    spec = module_arguments(module, monkeypatch, "AnsibleAWSModule")["argument_spec"]
    common = set(aws_argument_spec())
    return {k: v for k, v in spec.items() if k not in common}


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_documented_options_match_the_argument_spec(module, monkeypatch):
    documented = documentation(module)["options"]
    spec = _argument_spec(module, monkeypatch)
    assert sorted(documented) == sorted(spec)
    for name, option in spec.items():
        assert normalised(documented[name]) == normalised(option), name
        assert documented[name]["description"], name
        for sub, sub_spec in (option.get("options") or {}).items():
            assert normalised(documented[name]["suboptions"][sub]) == normalised(sub_spec)


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


# Action plugins only: the module file documents what the plugin validates.
ACTION_SPECS = {"session_call": "session_call", "session_preflight": "session_checks"}


@pytest.mark.parametrize("name", sorted(ACTION_SPECS))
def test_an_action_plugins_documentation_is_its_argument_spec(name):
    module = importlib.import_module(f"ansible_collections.rlops.fleet.plugins.modules.{name}")
    spec = importlib.import_module(
        f"ansible_collections.rlops.fleet.plugins.module_utils.{ACTION_SPECS[name]}").ARGUMENT_SPEC
    documented = documentation(module)["options"]
    assert sorted(documented) == sorted(spec)
    for option, option_spec in spec.items():
        assert normalised(documented[option]) == normalised(option_spec), option
