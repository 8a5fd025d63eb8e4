# -*- coding: utf-8 -*-
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""The DeepRacer custom files checked before anything is uploaded or started:
reward_function.py, model_metadata.json and hyperparameters.json (DRfC's custom_files).

Every check returns a list of problems, each `{"file": ..., "line" or "key": ..., "msg": ...}`,
all of them, not the first; `problem_text` makes the one line a failure shows.

The rules are the simulator's (deepracer-simapp: `rollout_agent_ctrl.py` for the reward,
`boto/s3/files/model_metadata.py` and `action_space_configs.py` for the metadata,
`sagemaker_graph_manager.py` for the hyperparameters) and, where the simulator accepts what
the DeepRacer console refuses, the console's (its reward validator: the import allowlist, the
forbidden builtins and file access). Decisions where they differ:
- a reward of type int (or another real number, numpy's included) is accepted, since the
  simulator casts the result with float(); it is reported as a note because the console's
  validator wants a float. A bool, a string, None or anything else is refused.
- hyperparameters of the other algorithm (sac_alpha with clipped_ppo; beta_entropy,
  num_epochs with sac) and e-greedy's values with categorical exploration are checked but
  only noted as ignored: DRfC's own defaults carry them.
- unknown keys of model_metadata.json are noted (console exports carry more keys than the
  simulator reads); unknown keys of hyperparameters.json are refused (the simulator reads a
  fixed set: an unknown key is a typo whose value is silently lost).

The reward function is called in a child process (`run_reward_calls`, the one I/O shell
here) with a time limit per call and for the whole run, on params computed from real tracks
by deepracer_tracks.reward_params at many positions and headings, on and off the track.
"""

from __future__ import annotations

import ast
import bisect
import difflib
import json
import math
import os
import subprocess
import tempfile

from ansible_collections.rlops.fleet.plugins.module_utils import deepracer_tracks as tracks_geo

REWARD_FILE = "reward_function.py"
METADATA_FILE = "model_metadata.json"
HYPERPARAMETERS_FILE = "hyperparameters.json"

# The DeepRacer console's reward validator (simapp docker/files/ml-code/reward_func_validator).
ALLOWED_IMPORTS = ("math", "random", "numpy", "scipy", "shapely")
FORBIDDEN_BUILTINS = ("open", "eval", "exec", "compile", "input", "__import__")
FILE_ACCESS = ("load", "loadtxt", "genfromtxt", "fromfile", "tofile", "save", "savez",
               "savez_compressed", "savetxt", "memmap")
REWARD_BOUND = 1e5
CALL_TIMEOUT = 5.0
TOTAL_TIMEOUT = 120.0

# model_metadata.json (simapp architecture/constants.py Input, NeuralNetwork; boto/s3/constants.py)
CAMERAS = ("FRONT_FACING_CAMERA", "LEFT_CAMERA", "STEREO_CAMERAS", "observation")
LIDARS = ("LIDAR", "SECTOR_LIDAR", "DISCRETIZED_SECTOR_LIDAR")
NETWORKS = ("DEEP_CONVOLUTIONAL_NETWORK_SHALLOW", "DEEP_CONVOLUTIONAL_NETWORK",
            "DEEP_CONVOLUTIONAL_NETWORK_DEEP")
ALGORITHMS = ("clipped_ppo", "sac")
ACTION_SPACE_TYPES = ("discrete", "continuous")
STEERING = (-30.0, 30.0)
SPEED = (0.1, 4.0)
LIDAR_SAMPLES = 64
CLIPPING = (0.15, 12.0)
METADATA_KEYS = ("action_space", "action_space_type", "training_algorithm", "sensor",
                 "neural_network", "version", "lidar_config")
# DRfC's defaults/model_metadata.json: the actions the reward function is called with when
# model_metadata.json cannot be read.
DEFAULT_ACTIONS = ((-30.0, 0.6), (-15.0, 0.6), (0.0, 0.6), (15.0, 0.6), (30.0, 0.6))

# hyperparameters.json: key -> (type, lowest, highest, choices, algorithm or None).
# Ranges: the AWS developer guide and the community's valid values (deepracer-on-the-spot).
HYPERPARAMETERS = {
    "batch_size": (int, None, None, (32, 64, 128, 256, 512), None),
    "beta_entropy": (float, 0.0, 1.0, None, "clipped_ppo"),
    "discount_factor": (float, 0.0, 1.0, None, None),
    "e_greedy_value": (float, 0.0, 1.0, None, None),
    "epsilon_steps": (int, 1, None, None, None),
    "exploration_type": (str, None, None, None, None),
    "loss_type": (str, None, None, ("huber", "mean squared error"), None),
    "lr": (float, 1e-8, 1e-3, None, None),
    "num_episodes_between_training": (int, 1, 100, None, None),
    "num_epochs": (int, 3, 10, None, "clipped_ppo"),
    "stack_size": (int, 1, 1, None, None),
    "term_cond_avg_score": (float, 0.0, None, None, None),
    "term_cond_max_episodes": (int, 1, None, None, None),
    "sac_alpha": (float, 0.0, 1.0, None, "sac"),
}
PPO_EXPLORATION = ("categorical", "e-greedy")


def problem(file: str, msg: str, line: int | None = None, key: str | None = None) -> dict:
    found = {"file": file, "msg": msg}
    if line is not None:
        found["line"] = line
    if key is not None:
        found["key"] = key
    return found


def problem_text(found: dict) -> str:
    """`reward_function.py line 12: ...`, `model_metadata.json key sensor: ...`."""
    where = found["file"]
    if found.get("line") is not None:
        where += " line %d" % found["line"]
    if found.get("key") is not None:
        where += " key %s" % found["key"]
    return "%s: %s" % (where, found["msg"])


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _suggest(name: str, known) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return " (did you mean %s?)" % close[0] if close else ""


# ---------------------------------------------------------------- JSON files

def load_json(text: str, filename: str):
    """(document, problems): a JSON object, or None and the problem with its line. A key given
    twice is a problem too (json keeps the last one silently)."""
    duplicates = []

    def pairs(items):
        seen = {}
        for key, value in items:
            if key in seen:
                duplicates.append(key)
            seen[key] = value
        return seen

    try:
        doc = json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        return None, [problem(filename, "not valid JSON: %s (column %d)" % (exc.msg, exc.colno),
                              line=exc.lineno)]
    if not isinstance(doc, dict):
        return None, [problem(filename, "must be a JSON object ({...}), not a JSON %s"
                              % type(doc).__name__)]
    return doc, [problem(filename, "given more than once: only the last value would be used",
                         key=key) for key in sorted(set(duplicates))]


# ---------------------------------------------------------------- model_metadata.json

def _lower(value):
    return value.lower().strip() if isinstance(value, str) else value


def metadata_algorithm(doc) -> str:
    """training_algorithm as the simulator reads it (clipped_ppo when absent)."""
    return _lower((doc or {}).get("training_algorithm", "clipped_ppo"))


def metadata_action_type(doc) -> str:
    return _lower((doc or {}).get("action_space_type", "discrete"))


def _bounded(file, key, value, low, high, what):
    if not _is_number(value):
        return [problem(file, "%s must be a number, got %s" % (what, json.dumps(value)), key=key)]
    if not low <= value <= high:
        return [problem(file, "%s %s is outside %s..%s" % (what, value, low, high), key=key)]
    return []


def _discrete_problems(actions) -> list:
    if not isinstance(actions, list) or not actions:
        return [problem(METADATA_FILE, "a discrete action space is a non-empty list of "
                        "{\"steering_angle\": ..., \"speed\": ...}", key="action_space")]
    found = []
    for index, action in enumerate(actions):
        key = "action_space[%d]" % index
        if not isinstance(action, dict):
            found.append(problem(METADATA_FILE, "an action is an object with steering_angle "
                                 "and speed", key=key))
            continue
        for name, (low, high), unit in (("steering_angle", STEERING, "degrees"),
                                        ("speed", SPEED, "m/s")):
            if name not in action:
                found.append(problem(METADATA_FILE, "the action has no %s" % name,
                                     key="%s.%s" % (key, name)))
            else:
                found += _bounded(METADATA_FILE, "%s.%s" % (key, name), action[name], low, high,
                                  "%s (%s)" % (name, unit))
        if "index" in action and (not isinstance(action["index"], int)
                                  or isinstance(action["index"], bool)
                                  or action["index"] != index):
            found.append(problem(METADATA_FILE, "index %s is not the action's position %d"
                                 % (json.dumps(action["index"]), index), key=key + ".index"))
    return found


def _continuous_problems(space) -> list:
    if not isinstance(space, dict):
        return [problem(METADATA_FILE, "a continuous action space is an object {\"steering_angle"
                        "\": {\"low\", \"high\"}, \"speed\": {\"low\", \"high\"}}",
                        key="action_space")]
    found = []
    for name, (low, high), unit in (("steering_angle", STEERING, "degrees"),
                                    ("speed", SPEED, "m/s")):
        key = "action_space.%s" % name
        bounds = space.get(name)
        if not isinstance(bounds, dict) or not {"low", "high"} <= set(bounds):
            found.append(problem(METADATA_FILE, "needs {\"low\": ..., \"high\": ...}", key=key))
            continue
        here = []
        for end in ("low", "high"):
            here += _bounded(METADATA_FILE, "%s.%s" % (key, end), bounds[end], low, high,
                             "%s (%s)" % (name, unit))
        if not here and not bounds["low"] < bounds["high"]:
            here.append(problem(METADATA_FILE, "low %s must be below high %s (the simulator "
                                "stops otherwise)" % (bounds["low"], bounds["high"]), key=key))
        found += here
    return found


def _sensor_problems(doc) -> list:
    sensor = doc.get("sensor")
    if sensor is None:
        return [] if _version(doc) is None or _version(doc) < 2 else [
            problem(METADATA_FILE, "version 2 or later needs a sensor list, e.g. "
                    "[\"FRONT_FACING_CAMERA\"]", key="sensor")]
    if not isinstance(sensor, list) or not all(isinstance(s, str) for s in sensor):
        return [problem(METADATA_FILE, "must be a list of sensor names", key="sensor")]
    found = [problem(METADATA_FILE, "unknown sensor %s%s; known: %s"
                     % (name, _suggest(name, CAMERAS + LIDARS), ", ".join(CAMERAS + LIDARS)),
                     key="sensor")
             for name in sensor if name not in CAMERAS + LIDARS]
    cameras = [s for s in sensor if s in CAMERAS]
    if len(cameras) != 1:
        found.append(problem(METADATA_FILE, "exactly one camera is needed (one of %s), got %d"
                             % (", ".join(CAMERAS[:3]), len(cameras)), key="sensor"))
    lidars = [s for s in sensor if s in LIDARS]
    if len(lidars) > 1:
        found.append(problem(METADATA_FILE, "at most one lidar, got %s" % ", ".join(lidars),
                             key="sensor"))
    return found


def _version(doc):
    try:
        return float(doc["version"])
    except (KeyError, TypeError, ValueError):
        return None


def _lidar_problems(config) -> list:
    if not isinstance(config, dict):
        return [problem(METADATA_FILE, "must be an object with num_sectors, "
                        "num_values_per_sector, clipping_dist", key="lidar_config")]
    found = []
    sectors = config.get("num_sectors")
    if sectors is not None and (not isinstance(sectors, int) or isinstance(sectors, bool)
                                or sectors <= 0 or LIDAR_SAMPLES % sectors):
        found.append(problem(METADATA_FILE, "must divide %d (1, 2, 4, 8, 16, 32 or 64), got %s"
                             % (LIDAR_SAMPLES, json.dumps(sectors)),
                             key="lidar_config.num_sectors"))
    values = config.get("num_values_per_sector")
    if values is not None and (not isinstance(values, int) or isinstance(values, bool)
                               or values < 1):
        found.append(problem(METADATA_FILE, "must be an integer of 1 or more, got %s"
                             % json.dumps(values), key="lidar_config.num_values_per_sector"))
    if "clipping_dist" in config:
        found += _bounded(METADATA_FILE, "lidar_config.clipping_dist", config["clipping_dist"],
                          CLIPPING[0], CLIPPING[1], "clipping distance (m)")
    for key in sorted(set(config) - {"num_sectors", "num_values_per_sector", "clipping_dist"}):
        found.append(problem(METADATA_FILE, "unknown key%s" % _suggest(key, (
            "num_sectors", "num_values_per_sector", "clipping_dist")),
            key="lidar_config.%s" % key))
    return found


def metadata_problems(doc) -> list:
    """Every problem of a parsed model_metadata.json."""
    if "action_space" not in doc:
        found = [problem(METADATA_FILE, "required: the actions the car can take",
                         key="action_space")]
    else:
        found = []
    space_type = metadata_action_type(doc)
    if space_type not in ACTION_SPACE_TYPES:
        found.append(problem(METADATA_FILE, "must be discrete or continuous, got %s"
                             % json.dumps(doc.get("action_space_type")),
                             key="action_space_type"))
    elif "action_space" in doc:
        check = _discrete_problems if space_type == "discrete" else _continuous_problems
        found += check(doc["action_space"])
    algorithm = metadata_algorithm(doc)
    if algorithm not in ALGORITHMS:
        found.append(problem(METADATA_FILE, "must be clipped_ppo or sac, got %s"
                             % json.dumps(doc.get("training_algorithm")),
                             key="training_algorithm"))
    elif algorithm == "sac" and space_type == "discrete":
        found.append(problem(METADATA_FILE, "sac needs a continuous action space "
                             "(action_space_type is discrete)", key="training_algorithm"))
    if "version" in doc and _version(doc) is None:
        found.append(problem(METADATA_FILE, "must be a number or a string of one (DRfC: \"5\"), "
                             "got %s" % json.dumps(doc["version"]), key="version"))
    found += _sensor_problems(doc)
    network = doc.get("neural_network", NETWORKS[0])
    if network not in NETWORKS:
        found.append(problem(METADATA_FILE, "unknown network %s%s; known: %s"
                             % (json.dumps(network), _suggest(str(network), NETWORKS),
                                ", ".join(NETWORKS)), key="neural_network"))
    if "lidar_config" in doc:
        found += _lidar_problems(doc["lidar_config"])
    return found


def metadata_notes(doc) -> list:
    """What the simulator ignores in a model_metadata.json without refusing it."""
    notes = ["%s key %s is not read by the simulator%s" % (METADATA_FILE, key,
                                                           _suggest(key, METADATA_KEYS))
             for key in sorted(set(doc) - set(METADATA_KEYS))]
    version = _version(doc)
    if "sensor" in doc and version is not None and version < 2:
        notes.append("%s key sensor is ignored below version 2 (the camera alone is used)"
                     % METADATA_FILE)
    if "lidar_config" in doc and not any(s in LIDARS for s in doc.get("sensor") or []
                                         if isinstance(s, str)):
        notes.append("%s key lidar_config is unused without a lidar sensor" % METADATA_FILE)
    return notes


def metadata_summary(doc) -> dict:
    """What the module returns of a valid model_metadata.json."""
    space_type = metadata_action_type(doc)
    summary = {
        "action_space_type": space_type,
        "training_algorithm": metadata_algorithm(doc),
        "sensor": list(doc.get("sensor") or ["observation"]),
        "neural_network": doc.get("neural_network", NETWORKS[0]),
        "version": None if "version" not in doc else str(doc["version"]),
    }
    space = doc["action_space"]
    if space_type == "discrete":
        summary["actions"] = len(space)
        summary["steering_angle"] = [min(a["steering_angle"] for a in space),
                                     max(a["steering_angle"] for a in space)]
        summary["speed"] = [min(a["speed"] for a in space), max(a["speed"] for a in space)]
    else:
        summary["steering_angle"] = [space["steering_angle"]["low"],
                                     space["steering_angle"]["high"]]
        summary["speed"] = [space["speed"]["low"], space["speed"]["high"]]
    return summary


def metadata_actions(doc) -> list:
    """(steering_angle, speed) pairs the reward function is called with: every discrete
    action, or the corners and middle of a continuous space; DRfC's default actions when the
    metadata cannot be read."""
    if doc is None or metadata_problems(doc):
        return list(DEFAULT_ACTIONS)
    space = doc["action_space"]
    if metadata_action_type(doc) == "discrete":
        return [(float(a["steering_angle"]), float(a["speed"])) for a in space]
    steer, speed = space["steering_angle"], space["speed"]
    return [(float(s), float(v)) for s, v in (
        (steer["low"], speed["low"]), (steer["high"], speed["high"]),
        ((steer["low"] + steer["high"]) / 2.0, (speed["low"] + speed["high"]) / 2.0),
        (steer["low"], speed["high"]), (steer["high"], speed["low"]))]


# ---------------------------------------------------------------- hyperparameters.json

def _hyperparameter_value_problems(key, value) -> list:
    kind, low, high, choices = HYPERPARAMETERS[key][:4]
    if kind is str:
        if not isinstance(value, str):
            return [problem(HYPERPARAMETERS_FILE, "must be a string, got %s" % json.dumps(value),
                            key=key)]
        if choices and _lower(value) not in choices:
            return [problem(HYPERPARAMETERS_FILE, "must be one of %s, got %s"
                            % (", ".join(choices), json.dumps(value)), key=key)]
        return []
    if not _is_number(value):
        return [problem(HYPERPARAMETERS_FILE, "must be a%s, got %s" % (
            "n integer" if kind is int else " number", json.dumps(value)), key=key)]
    if not math.isfinite(value):
        return [problem(HYPERPARAMETERS_FILE, "must be finite, got %s" % value, key=key)]
    if kind is int and value != int(value):
        return [problem(HYPERPARAMETERS_FILE, "must be an integer, got %s (the simulator would "
                        "truncate it to %d)" % (value, int(value)), key=key)]
    if choices and value not in choices:
        return [problem(HYPERPARAMETERS_FILE, "must be one of %s, got %s"
                        % (", ".join(str(c) for c in choices), value), key=key)]
    if (low is not None and value < low) or (high is not None and value > high):
        if low == high:
            span = "must be %s" % low
        elif high is None:
            span = "must be %s or more" % low
        else:
            span = "must be within %s..%s" % (low, high)
        return [problem(HYPERPARAMETERS_FILE, "%s, got %s" % (span, value), key=key)]
    return []


def hyperparameter_problems(doc, metadata=None, workers: int = 1) -> list:
    """Every problem of a parsed hyperparameters.json, for the algorithm model_metadata.json
    names (clipped_ppo when it cannot be read) and the number of rollout workers."""
    algorithm = metadata_algorithm(metadata)
    found = []
    for key in sorted(doc):
        if key not in HYPERPARAMETERS:
            hint = _suggest(key, HYPERPARAMETERS) or " (known: %s)" % ", ".join(
                sorted(HYPERPARAMETERS))
            found.append(problem(HYPERPARAMETERS_FILE, "unknown key: the simulator does not "
                                 "read it, its value would be lost%s" % hint, key=key))
            continue
        found += _hyperparameter_value_problems(key, doc[key])
    exploration = _lower(doc.get("exploration_type", "categorical"))
    if algorithm == "clipped_ppo" and isinstance(exploration, str) \
            and exploration not in PPO_EXPLORATION:
        found.append(problem(HYPERPARAMETERS_FILE, "clipped_ppo takes categorical or e-greedy "
                             "(the simulator stops on anything else), got %s"
                             % json.dumps(doc.get("exploration_type")), key="exploration_type"))
    episodes = doc.get("num_episodes_between_training", 20)
    if _is_number(workers) and workers > 1:
        if algorithm == "sac":
            found.append(problem(METADATA_FILE, "sac trains with one rollout worker, %d are "
                                 "asked (DR_WORKERS)" % workers, key="training_algorithm"))
        if _is_number(episodes) and workers > episodes:
            found.append(problem(HYPERPARAMETERS_FILE, "%s episodes between training for %d "
                                 "workers (DR_WORKERS): each worker needs at least one episode "
                                 "per iteration" % (episodes, workers),
                                 key="num_episodes_between_training"))
    return found


def hyperparameter_notes(doc, metadata=None, workers: int = 1) -> list:
    """What the simulator reads but ignores for this algorithm and exploration."""
    algorithm = metadata_algorithm(metadata)
    notes = []
    for key in sorted(doc):
        wanted = HYPERPARAMETERS.get(key, (None,) * 5)[4]
        if wanted and algorithm in ALGORITHMS and wanted != algorithm:
            notes.append("%s key %s is ignored with %s (%s only)"
                         % (HYPERPARAMETERS_FILE, key, algorithm, wanted))
    exploration = _lower(doc.get("exploration_type", "categorical"))
    if exploration != "e-greedy" or metadata_action_type(metadata) == "continuous":
        for key in ("e_greedy_value", "epsilon_steps"):
            if key in doc:
                notes.append("%s key %s is ignored without e-greedy exploration of a discrete "
                             "action space" % (HYPERPARAMETERS_FILE, key))
    episodes = doc.get("num_episodes_between_training", 20)
    if _is_number(episodes) and _is_number(workers) and workers > 1 and episodes % workers:
        notes.append("%s key num_episodes_between_training %s is not a multiple of %d workers "
                     "(DRfC recommends it)" % (HYPERPARAMETERS_FILE, episodes, workers))
    return notes


# ---------------------------------------------------------------- reward_function.py: source

def _module_of(node):
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        return ["." * node.level + (node.module or "")]
    return [node.module]


def reward_static_problems(source: str, filename: str = REWARD_FILE, extra_imports=()):
    """(problems, imported): the reward function's source compiled and read, not run.
    `imported`: the allowed modules it imports (top-level names), to tell the controller's
    missing ones."""
    try:
        tree = ast.parse(source, filename)
        compile(tree, filename, "exec")
    except SyntaxError as exc:
        return [problem(filename, "does not compile: %s" % exc.msg, line=exc.lineno)], []
    except ValueError as exc:  # a NUL byte
        return [problem(filename, "does not compile: %s" % exc)], []
    allowed = set(ALLOWED_IMPORTS) | set(extra_imports)
    found, imported = [], []
    functions = [node for node in tree.body if isinstance(node, ast.FunctionDef)
                 and node.name == "reward_function"]
    # `reward_function = Reward().reward_function`: a bound method, checked when called.
    assigned = any(isinstance(target, ast.Name) and target.id == "reward_function"
                   for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
                   for target in (node.targets if isinstance(node, ast.Assign)
                                  else [node.target]))
    if not functions and not assigned:
        found.append(problem(filename, "defines no reward_function(params) at the top level: "
                             "the simulator calls reward_function of this file"))
    elif functions:
        args = functions[-1].args
        positional = args.posonlyargs + args.args
        if (len(positional) != 1 or args.vararg or args.kwarg or args.kwonlyargs
                or args.defaults):
            found.append(problem(filename, "reward_function must take exactly one parameter "
                                 "(params), it takes (%s)" % ast.unparse(args),
                                 line=functions[-1].lineno))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for name in _module_of(node):
                top = name.split(".")[0]
                if top not in allowed:
                    found.append(problem(filename, "imports %s: only %s may be imported (the "
                                         "DeepRacer console's allowlist)" % (
                                             name, ", ".join(sorted(allowed))),
                                         line=node.lineno))
                elif top not in imported:
                    imported.append(top)
        elif isinstance(node, ast.Name) and node.id in FORBIDDEN_BUILTINS:
            found.append(problem(filename, "uses %s, which a reward function may not (forbidden "
                                 "builtins: %s)" % (node.id, ", ".join(FORBIDDEN_BUILTINS)),
                                 line=node.lineno))
        elif isinstance(node, ast.Attribute) and (node.attr in FILE_ACCESS
                                                  or node.attr in FORBIDDEN_BUILTINS):
            found.append(problem(filename, "uses .%s: a reward function may not read or write "
                                 "files or import at run time" % node.attr, line=node.lineno))
    return sorted(found, key=lambda p: p.get("line") or 0), imported


# ---------------------------------------------------------------- reward_function.py: calls

POSITIONS = (("start", 0.0), ("", 0.02), ("", 0.125), ("", 0.25), ("", 0.375),
             ("middle", 0.5), ("", 0.625), ("", 0.75), ("", 0.875), ("", 0.99),
             ("finish", 1.0))
# Distances from the centre line in track widths (+ left): centre, half a lane, wheels over
# the border, off the track.
OFFSETS = (0.0, 0.25, -0.25, 0.45, -0.45, 0.8, -0.8)
TURNS = (0.0, 30.0, -30.0, 180.0)


def _width_at(track, fraction):
    """The track's width at the waypoint before `fraction` of the lap."""
    rows = track.rows[::-1] if track.is_reversed else track.rows
    row = rows[min(bisect.bisect_right(track.ndists, fraction) - 1, len(rows) - 1)]
    return math.hypot(row[4] - row[2], row[5] - row[3])


def _describe(track, label, params, offset, turn, what=""):
    side = "on the centre line" if offset == 0 else "%.2f m %s of centre" % (
        abs(offset), "left" if offset > 0 else "right")
    state = "off track" if params["is_offtrack"] else (
        "on track" if params["all_wheels_on_track"] else "wheels over the border")
    return ("%s%s%s at progress %.1f%% (waypoints %s), %s (%s), heading %+.0f deg from the "
            "track's, speed %g, steering %g%s" % (
                track.name, " reversed" if track.is_reversed else "",
                " " + label if label else "", params["progress"], params["closest_waypoints"],
                side, state, turn, params["speed"], params["steering_angle"], what))


def reward_cases(tracks, actions=DEFAULT_ACTIONS) -> list:
    """The calls a reward function gets: {"track", "where", "params"} (params without
    waypoints, which the child adds per track). On each track: start, middle, finish and
    points between, on the centre line, in the lane, with wheels over the border and off the
    track, headings along, across and against the track, cycling through the actions; the
    first loop also reversed and with objects (boxes) on it, one call crashed."""
    cases = []
    actions = list(actions) or list(DEFAULT_ACTIONS)

    def add(track, label, fraction, offset_width, turn, **extra):
        length = track.track_length
        if not track.is_loop:
            # An open track's start: the car's wheels, behind its reported point, on the road.
            fraction = min(max(fraction, 0.3 / length), 1.0)
        offset = offset_width * _width_at(track, fraction % 1.0)
        x, y, heading = track.point_at(fraction, offset)
        steer, speed = actions[len(cases) % len(actions)]
        finish = label == "finish"
        steps = 1 + int(fraction * 15 * length / max(speed, 0.1))
        params = tracks_geo.reward_params(
            track, x, y, heading + turn, speed=speed, steering_angle=steer, steps=steps,
            prev_progress=99.5 if finish and track.is_loop else None, **extra)
        params.pop("waypoints")
        what = ", %d objects" % len(extra["objects"]) if extra.get("objects") else ""
        what += ", crashed" if extra.get("is_crashed") else ""
        cases.append({"track": track.name + (" reversed" if track.is_reversed else ""),
                      "where": _describe(track, label, params, offset, turn, what),
                      "params": params})

    for track in tracks:
        for i, (label, fraction) in enumerate(POSITIONS):
            for j, offset in enumerate(OFFSETS):
                add(track, label, fraction, offset, TURNS[(i + j) % len(TURNS)])
    loops = [t for t in tracks if t.is_loop]
    if loops:
        track = loops[0].reversed()
        for i, (label, fraction) in enumerate(POSITIONS):
            for j, offset in enumerate(OFFSETS[:5]):
                add(track, label, fraction, offset, TURNS[(i + j) % len(TURNS)])
        forward = loops[0]
        boxes = []
        for k, fraction in enumerate((0.2, 0.5, 0.8)):
            side = 0.25 if k % 2 else -0.25
            bx, by, bh = forward.point_at(fraction, side * _width_at(forward, fraction))
            boxes.append((bx, by, bh, 0.0))
        for label, fraction in POSITIONS:
            add(forward, label, fraction, 0.0, 0.0, objects=boxes)
        add(forward, "", 0.19, -0.25, 0.0, objects=boxes, is_crashed=True)
    return cases


# The child: reads {"source", "filename", "waypoints", "cases", "call_timeout"} on stdin,
# writes {"load": ..., "calls": [...]} on its own stdout; what the reward function prints goes
# to stderr. Each call: [kind, value, line of the return, error] - kind float, int, real, bool,
# other, error or timeout.
RUNNER = r'''
import json, numbers, os, signal, sys, time, traceback

class CallTimeout(BaseException):
    pass

def _alarm(signum, frame):
    raise CallTimeout()

def main():
    request = json.load(sys.stdin)
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    filename = request["filename"]
    limit = float(request["call_timeout"])
    signal.signal(signal.SIGALRM, _alarm)

    def failure(exc):
        line = None
        for frame in traceback.extract_tb(exc.__traceback__):
            if frame.filename == filename:
                line = frame.lineno
        if isinstance(exc, SyntaxError) and exc.filename == filename:
            line = exc.lineno
        return {"error": type(exc).__name__, "message": str(exc)[:300], "line": line,
                "module": getattr(exc, "name", None) if isinstance(exc, ImportError) else None}

    report = {"load": None, "calls": []}
    namespace = {"__name__": "reward_function", "__file__": filename}
    try:
        code = compile(request["source"], filename, "exec")
        signal.setitimer(signal.ITIMER_REAL, limit)
        try:
            exec(code, namespace)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except CallTimeout:
        report["load"] = {"error": "timeout"}
    except BaseException as exc:
        report["load"] = failure(exc)
    function = namespace.get("reward_function")
    if report["load"] is None and not callable(function):
        report["load"] = {"error": "missing"}
    if report["load"] is not None:
        json.dump(report, out)
        return
    returns = {}

    def profile(frame, event, arg):
        if event == "return" and frame.f_code.co_filename == filename \
                and frame.f_code is function.__code__:
            returns["line"] = frame.f_lineno

    waypoints = {name: [tuple(p) for p in points]
                 for name, points in request["waypoints"].items()}
    for case in request["cases"]:
        params = dict(case["params"])
        params["waypoints"] = list(waypoints[case["track"]])
        returns.clear()
        try:
            sys.setprofile(profile)
            signal.setitimer(signal.ITIMER_REAL, limit)
            try:
                value = function(params)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                sys.setprofile(None)
        except CallTimeout:
            # One call over the limit says it: the others are not waited for.
            report["calls"].append(["timeout", None, None, None])
            break
        except BaseException as exc:
            report["calls"].append(["error", None, None, failure(exc)])
            continue
        if isinstance(value, bool):
            kind = "bool"
        elif isinstance(value, float):
            kind = "float"
        elif isinstance(value, numbers.Integral):
            kind = "int"
        elif isinstance(value, numbers.Real):
            kind = "real"
        else:
            kind = "other"
        number = None
        if kind in ("float", "int", "real"):
            try:
                number = float(value)
            except OverflowError:
                number = float("inf") if value > 0 else float("-inf")
        described = "%s %s" % (type(value).__name__, repr(value)[:60])
        report["calls"].append([kind, number, returns.get("line"), described])
    json.dump(report, out)

main()
'''


def run_reward_calls(source: str, filename: str, cases, waypoints, python: str,
                     call_timeout: float = CALL_TIMEOUT,
                     timeout: float = TOTAL_TIMEOUT) -> dict:
    """The child's report of calling the reward function on every case ({"load", "calls"}),
    or {"failed": why} when the child did not answer. Runs in an empty temporary folder."""
    request = json.dumps({"source": source, "filename": filename, "waypoints": waypoints,
                          "cases": cases, "call_timeout": call_timeout})
    with tempfile.TemporaryDirectory(prefix="rlops-reward-") as folder:
        try:
            done = subprocess.run([python, "-c", RUNNER], input=request, cwd=folder,
                                  capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return {"failed": "the %d calls took more than %g s in all (timeout)"
                    % (len(cases), timeout)}
        except OSError as exc:
            return {"failed": "cannot run %s: %s" % (python, exc)}
    try:
        return json.loads(done.stdout)
    except ValueError:
        tail = (done.stderr or "").strip().splitlines()[-3:]
        return {"failed": "the child process ended with code %s without a report: %s"
                % (done.returncode, " | ".join(tail) or "no output")}


def _missing_module(error, allowed):
    module = (error or {}).get("module") or ""
    if error and error.get("error") == "ModuleNotFoundError" and module.split(".")[0] in allowed:
        return module.split(".")[0]
    return None


def call_problems(report: dict, cases, filename: str = REWARD_FILE, allowed=ALLOWED_IMPORTS,
                  call_timeout: float = CALL_TIMEOUT, returns=None):
    """(problems, findings) of the child's report: every distinct failure once, with the
    first params that caused it and how many calls did; findings: {"calls", "returned":
    [lowest, highest], "kinds": {kind: count}, "missing": [modules the controller lacks]}.
    `returns`: the lines of the source's return statements (a None from elsewhere is the
    function falling off its end)."""
    findings = {"calls": 0, "returned": None, "kinds": {}, "missing": []}
    if "failed" in report:
        return [problem(filename, report["failed"])], findings
    load = report.get("load")
    if load:
        missing = _missing_module(load, allowed)
        if missing:
            findings["missing"].append(missing)
            return [], findings
        if load["error"] == "timeout":
            return [problem(filename, "loading the file took more than %g s" % call_timeout)], \
                findings
        if load["error"] == "missing":
            return [problem(filename, "defines no callable reward_function once run")], findings
        return [problem(filename, "running the file failed: %s: %s"
                        % (load["error"], load["message"]), line=load.get("line"))], findings
    groups = {}
    values = []
    for case, (kind, number, line, detail) in zip(cases, report["calls"]):
        findings["calls"] += 1
        findings["kinds"][kind] = findings["kinds"].get(kind, 0) + 1
        if kind == "error":
            missing = _missing_module(detail, allowed)
            if missing:
                if missing not in findings["missing"]:
                    findings["missing"].append(missing)
                continue
            group = ("error", detail["error"], detail["line"])
            text = "raised %s: %s" % (detail["error"], detail["message"])
            line = detail["line"]
        elif kind == "timeout":
            group, text, line = ("timeout",), "took more than %g s" % call_timeout, None
        elif kind in ("bool", "other"):
            group = ("type", line)
            text = ("returned %s, not a number: return a float (the simulator casts the result "
                    "with float())" % detail)
            if detail == "NoneType None" and returns is not None and line not in returns:
                text = "ended without a return statement (None): return a float"
        elif not math.isfinite(number):
            group = ("finite", line)
            text = "returned %s: the simulator stops on a reward that is NaN or infinite" % number
        elif not -REWARD_BOUND <= number <= REWARD_BOUND:
            group = ("range", line)
            text = ("returned %g, outside [-1e5, 1e5] where the simulator stops" % number)
        else:
            values.append(number)
            continue
        if group not in groups:
            groups[group] = [text, line, case["where"], 0]
        groups[group][3] += 1
    if values:
        findings["returned"] = [min(values), max(values)]
    found = []
    total = findings["calls"]
    for text, line, where, count in groups.values():
        found.append(problem(filename, "%s for params of %s (%d of %d calls)"
                             % (text, where, count, total), line=line))
    return found, findings


def reward_problems(source: str, filename: str, tracks, actions=DEFAULT_ACTIONS,
                    extra_imports=(), python: str = "python3",
                    call_timeout: float = CALL_TIMEOUT, timeout: float = TOTAL_TIMEOUT,
                    runner=run_reward_calls):
    """(problems, findings) of a reward function: its source, then - when the source passes -
    its calls on realistic params from `tracks` (deepracer_tracks.Track) in a child process."""
    found, imported = reward_static_problems(source, filename, extra_imports)
    findings = {"calls": 0, "returned": None, "kinds": {}, "missing": [], "imports": imported}
    if found or not tracks:
        return found, findings
    cases = reward_cases(tracks, actions)
    waypoints = {}
    for track in tracks:
        waypoints[track.name] = track.waypoints
        waypoints[track.name + " reversed"] = track.reversed().waypoints if track.is_loop \
            else track.waypoints
    report = runner(source, filename, cases, waypoints, python, call_timeout=call_timeout,
                    timeout=timeout)
    returns = {node.lineno for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Return)}
    found, called = call_problems(report, cases, filename,
                                  tuple(ALLOWED_IMPORTS) + tuple(extra_imports), call_timeout,
                                  returns)
    called["imports"] = imported
    return found, called


def read_tracks(folder: str, names=None):
    """(tracks, problems): the .npy tracks of a folder (all, or those named)."""
    found, loaded = [], []
    try:
        available = sorted(n[:-4] for n in os.listdir(folder) if n.endswith(".npy"))
    except OSError as exc:
        return [], ["cannot list tracks_dir %s: %s" % (folder, exc.strerror)]
    for name in names or available:
        if name not in available:
            found.append("no track %s.npy in %s (there are: %s)" % (name, folder,
                                                                    ", ".join(available)))
            continue
        try:
            with open(os.path.join(folder, name + ".npy"), "rb") as handle:
                loaded.append(tracks_geo.Track.from_npy(handle.read(), name))
        except (OSError, tracks_geo.TrackError) as exc:
            found.append(str(exc))
    if not loaded and not found:
        found.append("no .npy track in %s" % folder)
    return loaded, found
