"""plugins/module_utils/nvidia_container.py: Docker's daemon.json with the nvidia runtime,
combined into the user's keys, and the runtime entry from nvidia-ctk's dry run."""

from __future__ import annotations

import json

import pytest
from ansible_collections.rlops.fleet.plugins.module_utils.nvidia_container import (
    FALLBACK_RUNTIME,
    ConfigProblem,
    combine,
    daemon_config,
    daemon_text,
    runtime_entry,
)

USER = {"log-opts": {"max-size": "10m", "max-file": "3"}, "bridge": "none",
        "runtimes": {"custom": {"path": "/usr/bin/runc"}}}


def test_combine_is_ansibles_recursive_combine():
    assert combine(USER, FALLBACK_RUNTIME) == {
        "log-opts": {"max-size": "10m", "max-file": "3"}, "bridge": "none",
        "runtimes": {"custom": {"path": "/usr/bin/runc"},
                     "nvidia": {"path": "nvidia-container-runtime", "args": []}}}
    # lists and scalars are replaced; the inputs are not changed
    assert combine({"a": [1, 2], "b": {"c": 1}}, {"a": [3], "b": 2}) == {"a": [3], "b": 2}
    assert USER["runtimes"] == {"custom": {"path": "/usr/bin/runc"}}


def test_the_entry_without_nvidia_ctk_is_the_one_it_writes():
    assert runtime_entry(None, False) == FALLBACK_RUNTIME
    assert runtime_entry(None, True) == {**FALLBACK_RUNTIME, "default-runtime": "nvidia"}


def test_the_entry_is_the_object_nvidia_ctk_prints():
    printed = ('INFO[0000] Loading config from /etc/docker/daemon.json\n'
               '{\n  "bridge": "none",\n  "runtimes": {\n    "nvidia": {\n      "args": [],\n'
               '      "path": "nvidia-container-runtime"\n    }\n  }\n}\n')
    assert runtime_entry(printed, False) == {
        "bridge": "none", "runtimes": {"nvidia": {"args": [], "path": "nvidia-container-runtime"}}}
    for bad in ("", "ERRO[0000] unable to load config", "[1, 2]", "{not json}"):
        with pytest.raises(ConfigProblem, match="nvidia-ctk printed no Docker configuration"):
            runtime_entry(bad, False)


@pytest.mark.parametrize("text", [None, "", "  \n"])
def test_a_missing_or_empty_daemon_json_is_an_empty_object(text):
    assert daemon_config(text, FALLBACK_RUNTIME, "/etc/docker/daemon.json") == (
        {}, FALLBACK_RUNTIME)


def test_the_users_keys_stay_and_an_entry_already_there_changes_nothing():
    current, wanted = daemon_config(json.dumps(USER), FALLBACK_RUNTIME, "d.json")
    assert current == USER and wanted == combine(USER, FALLBACK_RUNTIME)
    current, again = daemon_config(daemon_text(wanted), FALLBACK_RUNTIME, "d.json")
    assert current == again == wanted


@pytest.mark.parametrize("text", ["[1]", '"text"', "{broken", "null"])
def test_a_daemon_json_that_is_not_an_object_is_refused(text):
    with pytest.raises(ConfigProblem) as found:
        daemon_config(text, FALLBACK_RUNTIME, "/etc/docker/daemon.json")
    assert str(found.value) == ("/etc/docker/daemon.json is not a JSON object: fix it by hand,"
                                " the role does not overwrite it")


def test_daemon_text_is_to_nice_json_with_a_newline():
    text = '{\n  "a": {\n    "\\u00e9": []\n  },\n  "b": 1\n}\n'
    assert daemon_text({"b": 1, "a": {"é": []}}) == text
