"""The deepracer_stack role's files agree with the table of deepracer_config.py, and its vars
render through Ansible's templating into a plan without problems and compose files that the
Compose specification's schema accepts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from ansible_collections.rlops.fleet.plugins.filter.deepracer import FilterModule
from ansible_collections.rlops.fleet.plugins.module_utils import deepracer_config as dc

REPO = Path(__file__).resolve().parents[3]
ROLE = REPO / "roles" / "deepracer_stack"
sys.path.insert(0, str(REPO / "tests" / "unit" / "roles"))
from role_templar import templar, trusted  # noqa: E402

SCHEMA = json.loads((Path(__file__).resolve().parent / "compose_spec" /
                     "compose-spec.json").read_text())


def _yaml(path: str) -> dict:
    return yaml.safe_load((ROLE / path).read_text())


def test_defaults_are_the_table() -> None:
    defaults = _yaml("defaults/main.yml")
    for item in dc.VARIABLES:
        assert item.var in defaults, item.name
        assert defaults[item.var] == item.default and \
            type(defaults[item.var]) is type(item.default), item.name


def test_spec_is_the_table() -> None:
    options = _yaml("meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    types = {bool: "bool", int: "int", float: "float", str: ("str", "raw")}
    for item in dc.VARIABLES:
        option = options[item.var]
        assert item.name in option["description"]
        assert option["type"] in types[type(item.default)], item.name
        assert option.get("no_log", False) is item.secret, item.name
    for entry in ("validate", "upload", "compose", "start", "stop", "session", "session_check"):
        assert _yaml("meta/argument_specs.yml")["argument_specs"][entry]["options"] == options
        assert (ROLE / "tasks" / f"{entry}.yml").is_file()


def test_vars_name_the_table() -> None:
    assert _yaml("vars/main.yml")["__deepracer_stack_dr_names"] == [v.var for v in dc.VARIABLES]


def test_readme_maps_every_dr_name() -> None:
    readme = (ROLE / "README.md").read_text()
    for item in dc.VARIABLES:
        assert f"| `{item.name}` ({item.file}) | `{item.var}` |" in readme


@pytest.fixture
def rendered():
    """The role's defaults and vars as a play has them, with a GPU host's facts."""
    variables = {**_yaml("defaults/main.yml"), **_yaml("vars/main.yml"),
                 "role_path": str(ROLE), "gpu_host_mode": "gpu",
                 "deepracer_stack_workers": 3,
                 "deepracer_stack_local_s3_endpoint_url": "http://127.0.0.1:9000",
                 "deepracer_stack_local_access_key_id": "rlops",
                 "deepracer_stack_local_secret_access_key": "s3cr3t-s3cr3t",
                 "ansible_managed": "Ansible managed"}
    # What the vars lookup of __deepracer_stack_settings gives in a play (the lookup needs
    # Ansible's plugin loader, whose collection finder would stay for the tests that follow;
    # tests/integration/moto/test_deepracer_stack_moto.py runs the real one).
    variables["__deepracer_stack_settings"] = {
        name: variables[name] for name in variables["__deepracer_stack_dr_names"]}
    engine = templar(variables, FilterModule().filters())
    plan = engine.template(trusted("{{ __deepracer_stack_plan }}"))
    return engine, plan


def test_plan_renders(rendered) -> None:
    plan = rendered[1]
    assert plan["problems"] == []
    assert list(plan["training"]["files"]) == ["rl-deepracer-sagemaker/training_params.yaml"]
    robomaker = plan["compose"]["training"]["services"]["robomaker"]
    assert robomaker["scale"] == 3
    assert robomaker["volumes"] == ["/opt/deepracer/tmp/comms.0:/mnt/comms"]
    assert robomaker["image"] == "awsdeepracercommunity/deepracer-simapp:6.0.4-gpu"
    assert robomaker["environment"]["S3_ENDPOINT_URL"] == "http://172.30.213.1:9000"


@pytest.mark.parametrize("job", ["training", "evaluation"])
def test_compose_template_is_valid(rendered, job: str) -> None:
    engine, plan = rendered
    engine.available_variables = {**engine.available_variables,
                                  "__deepracer_stack_planned": plan,
                                  "__deepracer_stack_compose_job": job}
    text = engine.template(trusted((ROLE / "templates" / "compose.yml.j2").read_text()))
    document = yaml.safe_load(text)
    jsonschema.Draft7Validator(SCHEMA).validate(document)
    assert "name" not in document
    assert f"--project-name {plan['projects'][job]} " in text
