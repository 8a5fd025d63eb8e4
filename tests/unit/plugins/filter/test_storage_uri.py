import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.rlops.fleet.plugins.filter.storage_uri import FilterModule

FILTERS = FilterModule().filters()


def test_storage_uri_parts_and_refusals_in_the_contracts_words():
    assert FILTERS["storage_uri"]("s3://bkt/a/b/") == {
        "scheme": "s3", "location": "bkt", "prefix": "a/b", "error": None}
    assert FILTERS["storage_uri"]("file:///srv/storage") == {
        "scheme": "file", "location": "/srv/storage", "prefix": "", "error": None}
    assert FILTERS["storage_uri"]("az://models/x") == {
        "scheme": "az", "location": "models", "prefix": "x", "error": None}
    refused = FILTERS["storage_uri"]("az://Models/x")
    assert refused["scheme"] == "" and refused["error"] == (
        "storage URI 'az://Models/x': 'Models' is not a valid Azure Blob container name "
        "(3-63 lowercase letters, digits and single hyphens)")
    assert "a file:// path must be absolute" in FILTERS["storage_uri"]("file://rel/x")["error"]


def test_host_session_id():
    base = "cartpole-20261122t051500z"
    assert FILTERS["host_session_id"](base, "lab-1", 1) == base
    assert FILTERS["host_session_id"](base, "Lab_1", "2") == base + "-lab-1"
    with pytest.raises(AnsibleFilterError, match="session id 'Bad' is invalid"):
        FILTERS["host_session_id"]("Bad", "h", 2)


def test_run_settings_problems():
    assert FILTERS["run_settings_problems"]({"total_timesteps": "300", "seed": None}) == []
    assert FILTERS["run_settings_problems"]({"total_timesteps": "0", "stop_grace": -1}) == [
        "trainer_total_timesteps must be greater than 0, got 0",
        "trainer_stop_grace must not be negative, got -1"]
    with pytest.raises(AnsibleFilterError, match="expected a mapping"):
        FILTERS["run_settings_problems"]("x")


def test_agent_args_of_each_backend():
    assert FILTERS["agent_args"](None) == ["-m", "rlops_runtime.agents.sb3", "train"]
    assert FILTERS["agent_args"]("supervisor") == ["-m", "rlops_runtime.agents.sb3", "train"]
    assert FILTERS["agent_args"]("ray") == ["-m", "rlops_runtime.agents.rllib", "train"]
    with pytest.raises(AnsibleFilterError, match="backend must be one of supervisor, ray"):
        FILTERS["agent_args"]("racer")
