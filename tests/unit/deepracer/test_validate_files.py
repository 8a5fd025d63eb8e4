"""deepracer_validate: catalogues of broken model_metadata.json and hyperparameters.json, each
with the key (or line) and why; DRfC's discrete, continuous and SAC samples pass."""

import copy
import json

import pytest
from ansible_collections.rlops.fleet.plugins.module_utils import deepracer_validate as dv

DISCRETE = {
    "action_space": [{"steering_angle": -30, "speed": 0.6}, {"steering_angle": 0, "speed": 0.6},
                     {"steering_angle": 30, "speed": 0.6}],
    "sensor": ["FRONT_FACING_CAMERA"],
    "neural_network": "DEEP_CONVOLUTIONAL_NETWORK_SHALLOW",
    "training_algorithm": "clipped_ppo",
    "action_space_type": "discrete",
    "version": "5",
}
# DRfC's defaults/model_metadata_cont.json and model_metadata_sac.json.
CONTINUOUS = {
    "action_space": {"speed": {"high": 2, "low": 1}, "steering_angle": {"high": 30, "low": -30}},
    "sensor": ["FRONT_FACING_CAMERA"],
    "neural_network": "DEEP_CONVOLUTIONAL_NETWORK_SHALLOW",
    "training_algorithm": "clipped_ppo",
    "action_space_type": "continuous",
    "version": "5",
}
SAC = dict(CONTINUOUS, training_algorithm="sac", version="4")
HYPER = {
    "batch_size": 64, "beta_entropy": 0.01, "discount_factor": 0.99, "e_greedy_value": 0.05,
    "epsilon_steps": 10000, "exploration_type": "categorical", "loss_type": "huber",
    "lr": 0.0003, "num_episodes_between_training": 20, "num_epochs": 5, "stack_size": 1,
    "term_cond_avg_score": 350.0, "term_cond_max_episodes": 1000, "sac_alpha": 0.2,
}


def changed(doc, path, value):
    """A copy of doc with the value at path (keys and indices) set, or removed when None."""
    doc = copy.deepcopy(doc)
    here = doc
    for step in path[:-1]:
        here = here[step]
    if value is None:
        del here[path[-1]]
    else:
        here[path[-1]] = value
    return doc


@pytest.mark.parametrize("doc", [DISCRETE, CONTINUOUS, SAC], ids=["discrete", "continuous", "sac"])
def test_drfc_samples_pass(doc):
    assert dv.metadata_problems(doc) == []
    assert dv.hyperparameter_problems(HYPER, doc, workers=1) == []


# name, document, key, words
BROKEN_METADATA = [
    ("steering-45", changed(DISCRETE, ["action_space", 1, "steering_angle"], 45),
     "action_space[1].steering_angle", "steering_angle (degrees) 45 is outside -30.0..30.0"),
    ("speed-0", changed(DISCRETE, ["action_space", 2, "speed"], 0),
     "action_space[2].speed", "speed (m/s) 0 is outside 0.1..4.0"),
    ("speed-as-text", changed(DISCRETE, ["action_space", 0, "speed"], "fast"),
     "action_space[0].speed", 'speed (m/s) must be a number, got "fast"'),
    ("action-without-speed", changed(DISCRETE, ["action_space", 0, "speed"], None),
     "action_space[0].speed", "the action has no speed"),
    ("empty-discrete", changed(DISCRETE, ["action_space"], []),
     "action_space", "a discrete action space is a non-empty list"),
    ("continuous-low-not-below-high",
     changed(CONTINUOUS, ["action_space", "speed"], {"low": 2, "high": 2}),
     "action_space.speed", "low 2 must be below high 2"),
    ("continuous-steering-beyond-30",
     changed(CONTINUOUS, ["action_space", "steering_angle", "high"], 35),
     "action_space.steering_angle.high", "35 is outside -30.0..30.0"),
    ("continuous-but-a-list", changed(DISCRETE, ["action_space_type"], "continuous"),
     "action_space", "a continuous action space is an object"),
    ("sac-discrete", changed(DISCRETE, ["training_algorithm"], "sac"),
     "training_algorithm", "sac needs a continuous action space"),
    ("unknown-algorithm", changed(DISCRETE, ["training_algorithm"], "ppo"),
     "training_algorithm", 'must be clipped_ppo or sac, got "ppo"'),
    ("misspelt-type", changed(DISCRETE, ["action_space_type"], "dicsrete"),
     "action_space_type", 'must be discrete or continuous, got "dicsrete"'),
    ("two-cameras", changed(DISCRETE, ["sensor"], ["FRONT_FACING_CAMERA", "STEREO_CAMERAS"]),
     "sensor", "exactly one camera is needed"),
    ("no-camera", changed(DISCRETE, ["sensor"], ["LIDAR"]), "sensor",
     "exactly one camera is needed"),
    ("two-lidars", changed(DISCRETE, ["sensor"], ["FRONT_FACING_CAMERA", "LIDAR",
                                                  "SECTOR_LIDAR"]),
     "sensor", "at most one lidar, got LIDAR, SECTOR_LIDAR"),
    ("unknown-sensor", changed(DISCRETE, ["sensor"], ["FRONT_FACING_CAMERA", "LIDARR"]),
     "sensor", "unknown sensor LIDARR (did you mean LIDAR?)"),
    ("unknown-network", changed(DISCRETE, ["neural_network"], "DEEP_CONVOLUTIONAL_NETWORK_SHALOW"),
     "neural_network", "(did you mean DEEP_CONVOLUTIONAL_NETWORK_SHALLOW?)"),
    ("version-not-a-number", changed(DISCRETE, ["version"], "five"),
     "version", 'must be a number or a string of one (DRfC: "5"), got "five"'),
    ("no-action-space", changed(DISCRETE, ["action_space"], None),
     "action_space", "required"),
    ("lidar-sectors-7", dict(DISCRETE, sensor=["FRONT_FACING_CAMERA", "SECTOR_LIDAR"],
                             lidar_config={"num_sectors": 7}),
     "lidar_config.num_sectors", "must divide 64"),
    ("lidar-clipping-20", dict(DISCRETE, sensor=["FRONT_FACING_CAMERA", "LIDAR"],
                               lidar_config={"clipping_dist": 20}),
     "lidar_config.clipping_dist", "clipping distance (m) 20 is outside 0.15..12.0"),
]


@pytest.mark.parametrize("name, doc, key, words", BROKEN_METADATA,
                         ids=[c[0] for c in BROKEN_METADATA])
def test_broken_metadata_names_the_key_and_why(name, doc, key, words):
    found = dv.metadata_problems(doc)
    assert [p["key"] for p in found] == [key], found
    assert found[0]["file"] == "model_metadata.json" and words in found[0]["msg"]


def test_every_metadata_problem_at_once():
    doc = dict(DISCRETE, training_algorithm="sac", sensor=[], neural_network="BIG",
               action_space=[{"steering_angle": 40, "speed": 9}])
    assert [p["key"] for p in dv.metadata_problems(doc)] == [
        "action_space[0].steering_angle", "action_space[0].speed", "training_algorithm",
        "sensor", "neural_network"]


def test_metadata_read_as_the_simulator_reads_it():
    assert dv.metadata_problems({"action_space": DISCRETE["action_space"]}) == []
    doc = dict(DISCRETE, training_algorithm=" Clipped_PPO ", action_space_type="DISCRETE",
               preprocess_type="GREY_SCALE")
    assert dv.metadata_problems(doc) == []
    assert dv.metadata_summary(doc)["training_algorithm"] == "clipped_ppo"
    assert dv.metadata_notes(doc) == [
        "model_metadata.json key preprocess_type is not read by the simulator"]


def test_metadata_summary_and_the_actions_the_reward_function_gets():
    assert dv.metadata_summary(DISCRETE) == {
        "action_space_type": "discrete", "training_algorithm": "clipped_ppo",
        "sensor": ["FRONT_FACING_CAMERA"], "neural_network": "DEEP_CONVOLUTIONAL_NETWORK_SHALLOW",
        "version": "5", "actions": 3, "steering_angle": [-30, 30], "speed": [0.6, 0.6]}
    assert dv.metadata_actions(DISCRETE) == [(-30.0, 0.6), (0.0, 0.6), (30.0, 0.6)]
    assert dv.metadata_actions(SAC) == [(-30.0, 1.0), (30.0, 2.0), (0.0, 1.5), (-30.0, 2.0),
                                        (30.0, 1.0)]
    assert dv.metadata_actions(None) == list(dv.DEFAULT_ACTIONS)


@pytest.mark.parametrize("text, line, words", [
    ('{\n  "action_space": [\n    {"speed": 1,}\n  ]\n}', 3, "not valid JSON"),
    ("[1, 2]", None, "must be a JSON object ({...}), not a JSON list"),
])
def test_json_that_does_not_parse_names_its_line(text, line, words):
    doc, found = dv.load_json(text, "model_metadata.json")
    assert doc is None and found[0].get("line") == line and words in found[0]["msg"]


def test_a_key_given_twice_is_a_problem():
    doc, found = dv.load_json('{"lr": 0.001,\n "lr": 0.1}', "hyperparameters.json")
    assert doc == {"lr": 0.1}
    assert found == [{"file": "hyperparameters.json", "key": "lr",
                      "msg": "given more than once: only the last value would be used"}]


# name, document, workers, metadata, (file, key), words
BROKEN_HYPER = [
    ("batch-100", dict(HYPER, batch_size=100), 1, DISCRETE, "batch_size",
     "must be one of 32, 64, 128, 256, 512, got 100"),
    ("lr-too-high", dict(HYPER, lr=0.1), 1, DISCRETE, "lr", "must be within 1e-08..0.001, got 0.1"),
    ("epochs-fraction", dict(HYPER, num_epochs=2.5), 1, DISCRETE, "num_epochs",
     "must be an integer, got 2.5"),
    ("epochs-2", dict(HYPER, num_epochs=2), 1, DISCRETE, "num_epochs",
     "must be within 3..10, got 2"),
    ("lr-as-text", dict(HYPER, lr="0.0003"), 1, DISCRETE, "lr", 'must be a number, got "0.0003"'),
    ("batch-as-bool", dict(HYPER, batch_size=True), 1, DISCRETE, "batch_size",
     "must be an integer, got true"),
    ("unknown-key", dict(HYPER, discount_factr=0.9), 1, DISCRETE, "discount_factr",
     "unknown key: the simulator does not read it, its value would be lost"),
    ("unknown-key-unlike-any", dict(HYPER, warmup=3), 1, DISCRETE, "warmup",
     "its value would be lost (known: batch_size, beta_entropy, discount_factor, "),
    ("exploration-for-ppo", dict(HYPER, exploration_type="additive_noise"), 1, DISCRETE,
     "exploration_type", 'clipped_ppo takes categorical or e-greedy (the simulator stops on '
     'anything else), got "additive_noise"'),
    ("loss-mse", dict(HYPER, loss_type="mse"), 1, DISCRETE, "loss_type",
     'must be one of huber, mean squared error, got "mse"'),
    ("stack-3", dict(HYPER, stack_size=3), 1, DISCRETE, "stack_size", "must be 1, got 3"),
    ("discount-above-1", dict(HYPER, discount_factor=1.5), 1, DISCRETE, "discount_factor",
     "must be within 0.0..1.0"),
    ("episodes-0", dict(HYPER, num_episodes_between_training=0), 1, DISCRETE,
     "num_episodes_between_training", "must be within 1..100, got 0"),
    ("more-workers-than-episodes", dict(HYPER, num_episodes_between_training=4), 6, DISCRETE,
     "num_episodes_between_training", "4 episodes between training for 6 workers"),
    ("sac-alpha-negative", dict(HYPER, sac_alpha=-0.2), 1, SAC, "sac_alpha",
     "must be within 0.0..1.0, got -0.2"),
]


@pytest.mark.parametrize("name, doc, workers, metadata, key, words", BROKEN_HYPER,
                         ids=[c[0] for c in BROKEN_HYPER])
def test_broken_hyperparameters_name_the_key_and_why(name, doc, workers, metadata, key, words):
    found = dv.hyperparameter_problems(doc, metadata, workers)
    assert [(p["file"], p["key"]) for p in found] == [("hyperparameters.json", key)], found
    assert words in found[0]["msg"]


def test_an_unknown_key_suggests_the_known_one():
    found = dv.hyperparameter_problems(dict(HYPER, discount_factr=0.9), DISCRETE)
    assert found[0]["msg"].endswith("its value would be lost (did you mean discount_factor?)")


def test_sac_with_several_workers_names_the_metadata():
    found = dv.hyperparameter_problems(HYPER, SAC, workers=3)
    assert found == [{"file": "model_metadata.json", "key": "training_algorithm",
                      "msg": "sac trains with one rollout worker, 3 are asked (DR_WORKERS)"}]


def test_sac_takes_any_exploration_and_ppo_keys_are_only_noted():
    doc = dict(HYPER, exploration_type="additive_noise")
    assert dv.hyperparameter_problems(doc, SAC) == []
    assert dv.hyperparameter_notes(doc, SAC) == [
        "hyperparameters.json key beta_entropy is ignored with sac (clipped_ppo only)",
        "hyperparameters.json key num_epochs is ignored with sac (clipped_ppo only)",
        "hyperparameters.json key e_greedy_value is ignored without e-greedy exploration of a "
        "discrete action space",
        "hyperparameters.json key epsilon_steps is ignored without e-greedy exploration of a "
        "discrete action space"]


def test_drfc_defaults_notes_and_an_uneven_split_of_episodes():
    notes = dv.hyperparameter_notes(HYPER, DISCRETE, workers=3)
    assert "hyperparameters.json key sac_alpha is ignored with clipped_ppo (sac only)" in notes
    assert notes[-1] == ("hyperparameters.json key num_episodes_between_training 20 is not a "
                         "multiple of 3 workers (DRfC recommends it)")


def test_problem_text_names_the_file_and_the_line_or_key():
    assert dv.problem_text(dv.problem("reward_function.py", "why", line=3)) == \
        "reward_function.py line 3: why"
    assert dv.problem_text(dv.problem("hyperparameters.json", "why", key="lr")) == \
        "hyperparameters.json key lr: why"
    assert json.dumps(dv.problem("x", "y")) == '{"file": "x", "msg": "y"}'
