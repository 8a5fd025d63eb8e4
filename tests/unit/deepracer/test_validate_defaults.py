"""rlops.fleet.deepracer_custom_files: the shipped defaults (DRfC's) pass on every shipped
track; broken files fail with every problem in one message and nothing else; the options."""

import contextlib
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from ansible.module_utils import basic
from ansible_collections.rlops.fleet.plugins.modules import deepracer_custom_files as module

try:  # ansible-core >= 2.19
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core 2.17 / 2.18

    @contextlib.contextmanager
    def patch_module_args(args=None):
        saved = basic._ANSIBLE_ARGS
        basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": args or {}}).encode()
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS = saved

REPO = Path(__file__).resolve().parents[3]
DEFAULTS = REPO / "roles/deepracer_stack/files/custom_files"
TRACKS = REPO / "roles/deepracer_stack/files/tracks"


class Done(Exception):
    def __init__(self, result, failed):
        super().__init__(result.get("msg", ""))
        self.result, self.failed = result, failed


@pytest.fixture
def run(monkeypatch):
    warnings = []

    def exit_json(self, **result):
        raise Done(result, False)

    def fail_json(self, msg, **result):
        raise Done(dict(result, msg=msg), True)

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda self, text: warnings.append(text))

    def call(**args):
        args.setdefault("tracks_dir", str(TRACKS))
        warnings.clear()
        with patch_module_args(args), pytest.raises(Done) as done:
            module.main()
        return done.value.result, done.value.failed, list(warnings)

    return call


@pytest.fixture
def custom(tmp_path):
    """A copy of the shipped defaults to break."""
    folder = tmp_path / "custom_files"
    shutil.copytree(DEFAULTS, folder)
    return folder


def test_the_shipped_defaults_pass_on_every_shipped_track(run):
    result, failed, warnings = run(path=str(DEFAULTS), workers=4)
    assert not failed and warnings == [] and result["problems"] == []
    assert result["changed"] is False
    for option, name in (("reward_function", "reward_function.py"),
                         ("model_metadata", "model_metadata.json"),
                         ("hyperparameters", "hyperparameters.json")):
        assert result["files"][option] == {
            "path": str(DEFAULTS / name),
            "sha256": hashlib.sha256((DEFAULTS / name).read_bytes()).hexdigest()}
    assert result["metadata"] == {
        "action_space_type": "discrete", "training_algorithm": "clipped_ppo", "actions": 5,
        "steering_angle": [-30, 30], "speed": [0.6, 0.6], "sensor": ["FRONT_FACING_CAMERA"],
        "neural_network": "DEEP_CONVOLUTIONAL_NETWORK_SHALLOW", "version": "5"}
    reward = result["reward"]
    assert sorted(reward["tracks"]) == sorted(p.stem for p in TRACKS.glob("*.npy"))
    assert reward["calls"] == 6 * 77 + 55 + 12 and reward["kinds"] == {"float": reward["calls"]}
    # DRfC's reward: 1, 0.5, 0.1 or 1e-3 by distance from centre, x 0.8 when steering > 15.
    assert reward["returned"] == [pytest.approx(0.8e-3), 1.0]
    assert reward["missing"] == [] and reward["imports"] == []
    assert "hyperparameters.json key sac_alpha is ignored with clipped_ppo (sac only)" in \
        result["notes"]


def test_every_problem_of_the_three_files_in_one_message(run, custom):
    (custom / "reward_function.py").write_text(
        "import os\n\ndef reward_function(params):\n    return params['speeed']\n")
    (custom / "model_metadata.json").write_text(json.dumps(
        {"action_space": [{"steering_angle": 45, "speed": 1}], "training_algorithm": "sac",
         "sensor": ["FRONT_FACING_CAMERA"]}))
    (custom / "hyperparameters.json").write_text('{"lr": 0.5, "batch_size": 64,}')
    result, failed = run(path=str(custom))[:2]
    assert failed
    assert result["msg"] == (
        "4 problems in the DeepRacer custom files: "
        "model_metadata.json key action_space[0].steering_angle: steering_angle (degrees) 45 "
        "is outside -30.0..30.0; "
        "model_metadata.json key training_algorithm: sac needs a continuous action space "
        "(action_space_type is discrete); "
        "hyperparameters.json line 1: not valid JSON: Expecting property name enclosed in "
        "double quotes (column 30); "
        "reward_function.py line 1: imports os: only math, numpy, random, scipy, shapely may "
        "be imported (the DeepRacer console's allowlist)")
    assert len(result["problems"]) == 4 and "metadata" not in result
    assert set(result["files"]) == {"reward_function", "model_metadata", "hyperparameters"}


def test_a_reward_that_fails_when_called_fails_the_module(run, custom):
    (custom / "reward_function.py").write_text(
        "def reward_function(params):\n    return params['speeed']\n")
    result, failed = run(path=str(custom), tracks=["Oval_track"])[:2]
    assert failed and result["msg"].startswith(
        "1 problem in the DeepRacer custom files: reward_function.py line 2: raised KeyError: "
        "'speeed' for params of Oval_track start at progress 0.0%")
    assert result["reward"]["tracks"] == ["Oval_track"]


def test_files_named_one_by_one_are_named_so_in_problems(run, custom, tmp_path):
    reward = tmp_path / "my_reward.py"
    reward.write_text("def reward_function(params):\n    return True\n")
    result, failed = run(path=str(custom), reward_function=str(reward), tracks=["Oval_track"])[:2]
    assert failed and result["problems"][0]["file"] == "my_reward.py"
    assert result["files"]["reward_function"]["path"] == str(reward)


def test_a_missing_file_and_no_folder(run, custom):
    (custom / "hyperparameters.json").unlink()
    result, failed = run(path=str(custom), tracks=["Oval_track"])[:2]
    assert failed and result["problems"] == [{
        "file": "hyperparameters.json",
        "msg": f"cannot read {custom / 'hyperparameters.json'}: No such file or directory"}]
    result, failed = run()[:2]
    assert failed and "set path (the custom files folder) or reward_function" in result["msg"]


def test_tracks_the_folder_lacks_are_a_warning_or_a_failure(run, tmp_path):
    result, failed, warnings = run(path=str(DEFAULTS), tracks=["Oval_track", "Monaco"])
    assert not failed and result["reward"]["tracks"] == ["Oval_track"]
    assert warnings == [f"no track Monaco.npy in {TRACKS} (there are: 2022_reinvent_champ_ccw, "
                        "2024_reinvent_champ_cw, Oval_track, Straight_track, "
                        "reInvent2019_track, reinvent_base)"]
    result, failed = run(path=str(DEFAULTS), tracks_dir=str(tmp_path))[:2]
    assert failed and f"tracks_dir: no .npy track in {tmp_path}" in result["msg"]


def test_a_module_the_controller_lacks_is_a_warning(run, custom):
    (custom / "reward_function.py").write_text(
        "import rlops_absent\n\ndef reward_function(params):\n    return 1.0\n")
    result, failed, warnings = run(path=str(custom), tracks=["Oval_track"],
                                   extra_imports=["rlops_absent"])
    assert not failed and result["reward"]["missing"] == ["rlops_absent"]
    assert len(warnings) == 1 and warnings[0].startswith("reward_function.py was not called: ")
    assert warnings[0].endswith("lacks rlops_absent, which it imports (install it there or set "
                                "python)")


def test_an_int_reward_passes_with_a_note(run, custom):
    (custom / "reward_function.py").write_text(
        "def reward_function(params):\n    return 1 if params['all_wheels_on_track'] else 0\n")
    result, failed = run(path=str(custom), tracks=["Oval_track"])[:2]
    assert not failed
    assert result["notes"][-1].startswith("reward_function.py returned int in ")


def test_more_workers_than_episodes(run):
    result, failed = run(path=str(DEFAULTS), workers=21, tracks=["Oval_track"])[:2]
    assert failed and "hyperparameters.json key num_episodes_between_training: 20 episodes " \
        "between training for 21 workers" in result["msg"]


@pytest.mark.parametrize("option", ["call_timeout", "timeout", "workers"])
def test_limits_must_be_positive(run, option):
    result, failed = run(path=str(DEFAULTS), **{option: 0})[:2]
    zero = "0" if option == "workers" else "0.0"
    assert failed and result["msg"] == f"{option} must be more than 0, got {zero}"


def test_check_mode_checks_the_same(run, custom):
    (custom / "hyperparameters.json").write_text('{"lr": 0.5}')
    result, failed = run(path=str(custom), tracks=["Oval_track"], _ansible_check_mode=True)[:2]
    assert failed and result["changed"] is False
    assert result["problems"] == [{"file": "hyperparameters.json", "key": "lr",
                                   "msg": "must be within 1e-08..0.001, got 0.5"}]
