"""The stand-in simapp's pure parts: checkpoint names and pruning, the best/last pick, the
hyperparameter arguments of `train`, the action choice, the simtrace and metrics rows."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest

CODE = Path(__file__).resolve().parent / "simapp" / "files" / "opt" / "ml" / "code"
sys.path.insert(0, str(CODE))

from standin import entry, sim  # noqa: E402  pylint: disable=wrong-import-position


def test_checkpoint_names_and_files():
    assert sim.checkpoint_name(3, 4444) == "3_Step-4444.ckpt"
    assert sim.checkpoint_number("12_Step-99.ckpt") == 12
    assert sim.checkpoint_files("3_Step-4444.ckpt") == [
        "3_Step-4444.ckpt.index", "3_Step-4444.ckpt.data-00000-of-00001",
        "3_Step-4444.ckpt.meta", "model_3.pb"]
    bodies = sim.checkpoint_bodies("0_Step-0.ckpt", sim.initial_state())
    assert json.loads(bodies["0_Step-0.ckpt.data-00000-of-00001"])["skill"] == 0.0


def test_pruning_keeps_the_newest_four_and_the_best():
    names = [sim.checkpoint_name(n, n * 100) for n in range(7)]
    assert sim.models_to_delete(names, 4, names[1]) == [names[0], names[2]]
    assert sim.models_to_delete(names[:3], 4, None) == []


def test_pick_checkpoint():
    doc = sim.checkpoints_json({"name": "2_Step-9.ckpt"}, {"name": "5_Step-20.ckpt"})
    assert sim.pick_checkpoint(doc, "best") == "2_Step-9.ckpt"
    assert sim.pick_checkpoint(doc, "last") == "5_Step-20.ckpt"
    unpicked = sim.checkpoints_json({"name": None}, {"name": "5_Step-20.ckpt"})
    assert sim.pick_checkpoint(unpicked, "best") == "5_Step-20.ckpt"


def test_train_raises_skill_and_counts():
    state = sim.train(sim.initial_state(), [{"progress": 50.0, "steps": 10}] * 4, 0.0003)
    assert 0 < state["skill"] <= 1 and state["iteration"] == 1
    assert state["steps"] == 40 and state["episodes"] == 4


def test_train_entry_arguments():
    raw = {"s3_bucket": '"bucket"', "lr": "0.0003", "num_episodes_between_training": "4",
           "odd": "not json"}
    hyper, args = entry.arguments(raw)
    assert hyper == {"s3_bucket": "bucket", "lr": 0.0003, "num_episodes_between_training": 4,
                     "odd": "not json"}
    assert args == ["--s3_bucket", "bucket", "--lr", "0.0003",
                    "--num_episodes_between_training", "4", "--odd", "not json"]


@pytest.mark.parametrize("metadata, offset, want", [
    ({"action_space": [{"steering_angle": s, "speed": 1} for s in (-30, 0, 30)]}, 0.5, (-30, 0)),
    ({"action_space": [{"steering_angle": s, "speed": 1} for s in (-30, 0, 30)]}, 0.0, (0, 1)),
    ({"action_space_type": "continuous", "action_space": {
        "steering_angle": {"low": -20, "high": 20}, "speed": {"low": 1, "high": 3}}},
     -1.0, (20, -1)),
])
def test_choose_action(metadata, offset, want):
    steer, _speed, action = sim.choose_action(sim.parse_action_space(metadata), offset, 0.0)
    assert (steer, action) == want


def test_rows_and_metrics():
    class Line:  # a straight 10 m track, wide
        length = 10.0

        @staticmethod
        def point_at(dist, offset):
            return dist, offset, 0.0, 0, 2.0

        @staticmethod
        def params(dist, offset, _h, speed, steer, steps, progress, off, sim_time):
            return {"all_wheels_on_track": not off, "closest_waypoints": [0, 1],
                    "progress": progress, "steps": steps, "sim_time": sim_time}

    space = sim.parse_action_space({"action_space": [{"steering_angle": 0, "speed": 4}]})
    summary, rows = sim.run_episode(Line, space, 1.0, lambda p: 1.0, random.Random(0), 0.0, 1,
                                    0.0)
    assert summary["status"] == "lap_complete" and summary["progress"] == 100.0
    assert list(rows[0]) == sim.SIMTRACE_COLUMNS and rows[-1]["done"] is True
    assert sim.simtrace_csv(rows).splitlines()[0] == ",".join(sim.SIMTRACE_COLUMNS)
    metric = sim.training_metric(summary, 1, 0, "training")
    assert metric["reward_score"] == len(rows) and metric["episode_status"] == "Lap complete"
    assert sim.eval_metric(summary, 1)["reset_count"] == 0
    with pytest.raises(sim.RewardFunctionError, match="must be a finite float"):
        sim.run_episode(Line, space, 1.0, lambda p: 2e5, random.Random(0), 0.0, 1, 0.0)
    with pytest.raises(sim.RewardFunctionError, match="raised KeyError"):
        sim.run_episode(Line, space, 1.0, lambda p: p["nope"], random.Random(0), 0.0, 1, 0.0)
    assert sim.mp4_bytes(rows)[4:8] == b"ftyp"


def test_an_evaluation_yaml_without_model_metadata_keys_gets_each_models():
    """DRfC's evaluation params have no MODEL_METADATA_FILE_S3_KEY: the simapp fills it."""
    doc = {"MODEL_S3_PREFIX": ["m1", "m2"], "MODEL_S3_BUCKET": ["b", "b"]}
    filled = sim.with_eval_metadata_keys(doc, "model/model_metadata.json")
    assert filled["MODEL_METADATA_FILE_S3_KEY"] == ["m1/model/model_metadata.json",
                                                    "m2/model/model_metadata.json"]
    assert "MODEL_METADATA_FILE_S3_KEY" not in doc
    given = {**doc, "MODEL_METADATA_FILE_S3_KEY": ["x.json"]}
    assert sim.with_eval_metadata_keys(given, "model/model_metadata.json") is given
    assert sim.with_eval_metadata_keys({"MODEL_S3_PREFIX": "m"}, "p")[
        "MODEL_METADATA_FILE_S3_KEY"] == ["m/p"]
