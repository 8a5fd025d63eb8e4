"""plugins/module_utils/jinja_values.py: inventory values read as the role's tasks will read
them (Jinja's int, Ansible's bool), for the filters that check a role's inputs."""

import pytest
from ansible_collections.rlops.fleet.plugins.module_utils.jinja_values import (
    as_bool,
    as_int,
    failed,
    is_list,
    setting_text,
)


@pytest.mark.parametrize("value, expected", [
    (8, 8), ("8", 8), (8.9, 8), ("8.9", 8), (" 9 ", 9), (True, 1),
    (None, 0), ("", 0), ("eight", 0), ([8], 0), ({}, 0),
])
def test_as_int_is_jinjas_int(value, expected):
    assert as_int(value) == expected


@pytest.mark.parametrize("value", [True, "true", "True", " yes ", "1", 1, "on"])
def test_as_bool_true(value):
    assert as_bool(value) is True


@pytest.mark.parametrize("value", [False, "false", "no", "0", 0, "off", None, "", "maybe"])
def test_as_bool_false(value):
    assert as_bool(value) is False


@pytest.mark.parametrize("value, expected", [
    ([], True), (["a"], True), (("a",), True),
    ("ab", False), (b"ab", False), ({"a": 1}, False), (None, False), (3, False),
])
def test_is_list_not_a_string(value, expected):
    assert is_list(value) is expected


def test_setting_text_reads_a_roles_setting_by_its_short_name():
    text = setting_text({"role_port": 9000, "role_src": None, "other_src": "x"}, "role_")
    assert (text("port"), text("src"), text("missing")) == ("9000", "", "")


def test_failed_keeps_the_messages_of_the_failed_checks_in_order():
    assert failed([(True, "a"), (False, "b"), (0, "c"), ("x", "d")]) == ["b", "c"]
