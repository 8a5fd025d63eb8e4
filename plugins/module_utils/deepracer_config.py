# -*- coding: utf-8 -*-
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""DeepRacer's settings as deepracer-for-cloud (DRfC) users know them, and what is made of them.

One owner for: the table of the DR_* variables the role models (DR name, role variable,
default, the DRfC file that holds it, meaning), the escape hatch for any other DR_* key,
the training and evaluation params dicts exactly as DRfC's scripts/training/prepare-config.py
and scripts/evaluation/prepare-config.py make them (DRfC 2eb1a1f, 2026-05-04) with its known
bugs not copied (each named where it would have been, and in BUGS_NOT_COPIED), the
all-single-quoted YAML text as DRfC dumps it, the next model prefix of an increment, and the
compose project of training and evaluation as a dict.

Pure: the standard library, plus PyYAML (which Ansible's controller has) imported only by
params_yaml(), so that modules shipping this file run on hosts without it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime

RUN_ENV = "run.env"
SYSTEM_ENV = "system.env"
# Not a DRfC file: what activate.sh derives (DR_MINIO_URL, DR_LOCAL_S3_ENDPOINT_URL, keys).
DERIVED = "derived"

DR_NAME_PATTERN = re.compile(r"^DR_[A-Z0-9_]+$")
SIMAPP_SOURCE = "awsdeepracercommunity/deepracer-simapp"
SIMAPP_RELEASE = "6.0.4"  # DRfC defaults/dependencies.json "simapp"
NETWORK = "sagemaker-local"
# The SageMaker SDK's local mode declares the network in its own compose file as a
# non-external network named sagemaker-local: docker compose then wants these labels on it.
NETWORK_LABELS = {"com.docker.compose.network": NETWORK, "com.docker.compose.project": NETWORK}
SAGEMAKER_DIR = "/tmp/sagemaker"  # the SDK's local.container_root, the same path on the host
DOCKER_SOCKET = "/var/run/docker.sock"
# activate.sh's port ranges in compose mode: one port of each range per robomaker worker.
TRAIN_PORTS = "8080-8089"
GUI_PORTS = "5901-5920"
MAX_COMPOSE_WORKERS = 10
RACE_TYPES = ("TIME_TRIAL", "OBJECT_AVOIDANCE", "HEAD_TO_BOT", "HEAD_TO_MODEL")

BUGS_NOT_COPIED = {
    "increment-regex": "increment.sh tests the last token with /[0-9]*/, which matches every "
                       "string: rl-deepracer-sagemaker became rl-deepracer-1; here only a "
                       "token matching ^[0-9]+$ is incremented, else -1 is appended",
    "eval-collision-penalty": "evaluation prepare-config.py reads DR_COLLISION_PENALTY, so "
                              "DR_EVAL_COLLISION_PENALTY was never used; here it is",
    "h2m-opponent-mp4": "evaluation prepare-config.py reads DR_EVAL_OPP_MODEL_PREFIX (a typo) "
                        "for the opponent's MP4 prefix, which became bucket/mp4; here it is "
                        "DR_EVAL_OPP_S3_MODEL_PREFIX/mp4",
    "h2m-model-name-alias": "evaluation MODEL_NAME is the DISPLAY_NAME list object itself, so "
                            "PyYAML wrote an anchor and an alias; here a copy (same loaded "
                            "value, no alias)",
    "worker-env-parser": "worker-N.env was parsed with line.split('='): a value holding = or a "
                         "blank line crashed; here workers are role variables",
    "worker-leaks": "a worker after an object-avoidance worker kept OBSTACLE_TYPE, after a "
                    "head-to-bot worker PENALTY_SECONDS, and worker 2..N files carried "
                    "MULTI_CONFIG (set after the first file was written); here each worker's "
                    "file holds its own race type's keys only",
    "worker-inheritance": "a worker-N.env key left out took worker N-1's value (os.environ "
                          "accumulates); here it takes run.env's (the role's) value",
    "upload-target-unexported": "upload-model.sh does not export TARGET_S3_BUCKET/PREFIX, so "
                                "its training_params.yaml named the script defaults",
    "trainer-substring-match": "stop.sh finds the trainer's compose file by grep -F of RUN_ID=<id> "
                               "and the prefix, so run 1 also stopped run 10's trainer and "
                               "model-1 model-10's; here RUN_ID and TRAINING_JOB_NAME must equal "
                               "(session_contract.trainer_containers)",
}


@dataclass(frozen=True)
class DrVar:
    """One DR_* variable: its role variable is deepracer_stack_<name without DR_, lower case>."""

    name: str
    default: object
    file: str
    meaning: str
    # Settable per multi-config worker (what prepare-config.py reads again for worker 2..N).
    worker: bool = False
    # DRfC leaves it unset (commented in the template, or not set by activate.sh): an empty
    # value here means unset, and the scripts' own fallback applies.
    optional: bool = False
    secret: bool = False

    @property
    def var(self) -> str:
        return role_variable(self.name)


def role_variable(dr_name: str) -> str:
    return "deepracer_stack_" + dr_name[3:].lower()


def _v(name, default, file, meaning, **flags) -> DrVar:
    return DrVar(name, default, file, meaning, **flags)


# Empty string defaults marked "derived" in the meaning take the template's $VAR value.
VARIABLES: tuple = (
    # --- run.env -----------------------------------------------------------------------------
    _v("DR_RUN_ID", 0, RUN_ENV, "Run id: compose projects deepracer-<id> and deepracer-eval-<id>"),
    _v("DR_WORLD_NAME", "reinvent_base", RUN_ENV, "Track (world) name, one of the simapp's",
       worker=True),
    _v("DR_RACE_TYPE", "TIME_TRIAL", RUN_ENV,
       "TIME_TRIAL, OBJECT_AVOIDANCE, HEAD_TO_BOT (evaluation also HEAD_TO_MODEL)", worker=True),
    _v("DR_CAR_NAME", "FastCar", RUN_ENV, "Car name"),
    _v("DR_CAR_BODY_SHELL_TYPE", "deepracer", RUN_ENV, "deepracer, f1_2021, f1_car_11..21",
       worker=True),
    _v("DR_CAR_COLOR", "Red", RUN_ENV, "Black, Grey, Blue, Red, Orange, White, Purple",
       worker=True),
    _v("DR_DISPLAY_NAME", "", RUN_ENV, "Display name; empty: the car name ($DR_CAR_NAME)"),
    _v("DR_RACER_NAME", "", RUN_ENV, "Racer name; empty: the car name ($DR_CAR_NAME)"),
    _v("DR_ENABLE_DOMAIN_RANDOMIZATION", False, RUN_ENV, "Random colours and lighting",
       worker=True),
    _v("DR_EVAL_NUMBER_OF_TRIALS", 3, RUN_ENV, "Laps of an evaluation"),
    _v("DR_EVAL_IS_CONTINUOUS", True, RUN_ENV, "Go on after off-track, with the penalty"),
    _v("DR_EVAL_MAX_RESETS", 100, RUN_ENV, "Resets allowed in an evaluation (NUMBER_OF_RESETS)"),
    _v("DR_EVAL_OFF_TRACK_PENALTY", 5.0, RUN_ENV, "Seconds added per off-track"),
    _v("DR_EVAL_COLLISION_PENALTY", 5.0, RUN_ENV, "Seconds added per collision"),
    _v("DR_EVAL_SAVE_MP4", False, RUN_ENV, "Save the evaluation's video under <prefix>/mp4"),
    _v("DR_EVAL_CHECKPOINT", "last", RUN_ENV, "Checkpoint evaluated: last or best"),
    _v("DR_EVAL_OPP_S3_MODEL_PREFIX", "rl-deepracer-sagemaker", RUN_ENV,
       "Head-to-model: the opponent's model prefix"),
    _v("DR_EVAL_OPP_CAR_BODY_SHELL_TYPE", "deepracer", RUN_ENV, "Head-to-model: opponent's shell"),
    _v("DR_EVAL_OPP_CAR_NAME", "FasterCar", RUN_ENV, "Head-to-model: opponent's car name"),
    _v("DR_EVAL_OPP_DISPLAY_NAME", "", RUN_ENV,
       "Head-to-model: opponent's display name; empty: its car name"),
    _v("DR_EVAL_OPP_RACER_NAME", "", RUN_ENV,
       "Head-to-model: opponent's racer name; empty: its car name"),
    _v("DR_EVAL_DEBUG_REWARD", False, RUN_ENV, "Robomaker DEBUG_REWARD in evaluation"),
    _v("DR_EVAL_RESET_BEHIND_DIST", 1.0, RUN_ENV, "Metres behind the car it is reset to"),
    _v("DR_EVAL_REVERSE_DIRECTION", False, RUN_ENV, "Evaluate the track reversed"),
    _v("DR_EVAL_RTF", "", RUN_ENV, "Real-time factor override in evaluation (commented in DRfC)",
       optional=True),
    _v("DR_TRAIN_CHANGE_START_POSITION", True, RUN_ENV, "Round-robin start positions",
       worker=True),
    _v("DR_TRAIN_REVERSE_DIRECTION", False, RUN_ENV, "Train the track reversed", worker=True),
    _v("DR_TRAIN_ALTERNATE_DRIVING_DIRECTION", False, RUN_ENV, "Alternate the direction",
       worker=True),
    _v("DR_TRAIN_START_POSITION_OFFSET", 0.0, RUN_ENV, "Start position offset", worker=True),
    _v("DR_TRAIN_ROUND_ROBIN_ADVANCE_DIST", 0.05, RUN_ENV, "Round-robin advance (track share)",
       worker=True),
    _v("DR_TRAIN_MULTI_CONFIG", False, RUN_ENV,
       "Each worker its own settings (deepracer_stack_multi_config_workers, DRfC's worker-N.env)"),
    _v("DR_TRAIN_MIN_EVAL_TRIALS", 5, RUN_ENV, "Evaluation trials between training iterations"),
    _v("DR_TRAIN_BEST_MODEL_METRIC", "progress", RUN_ENV, "Best checkpoint by progress or reward"),
    _v("DR_TRAIN_RTF", "", RUN_ENV, "Real-time factor override in training (commented in DRfC)",
       optional=True),
    _v("DR_TRAIN_MAX_STEPS_PER_ITERATION", "", RUN_ENV,
       "rl_coach MAX_MEMORY_STEPS (commented in DRfC)", optional=True),
    _v("DR_LOCAL_S3_MODEL_PREFIX", "rl-deepracer-sagemaker", RUN_ENV, "The model's prefix"),
    _v("DR_LOCAL_S3_PRETRAINED", False, RUN_ENV, "Start from a pretrained model"),
    _v("DR_LOCAL_S3_PRETRAINED_PREFIX", "rl-sagemaker-pretrained", RUN_ENV,
       "The pretrained model's prefix"),
    _v("DR_LOCAL_S3_PRETRAINED_CHECKPOINT", "last", RUN_ENV, "Pretrained checkpoint: last or best"),
    _v("DR_LOCAL_S3_CUSTOM_FILES_PREFIX", "custom_files", RUN_ENV, "Prefix of the custom files"),
    _v("DR_LOCAL_S3_TRAINING_PARAMS_FILE", "training_params.yaml", RUN_ENV,
       "Training params key, under the model prefix"),
    _v("DR_LOCAL_S3_EVAL_PARAMS_FILE", "evaluation_params.yaml", RUN_ENV,
       "Evaluation params key, under the model prefix"),
    _v("DR_LOCAL_S3_MODEL_METADATA_KEY", "", RUN_ENV,
       "model_metadata.json's key; empty: <custom files prefix>/model_metadata.json"),
    _v("DR_LOCAL_S3_HYPERPARAMETERS_KEY", "", RUN_ENV,
       "hyperparameters.json's key; empty: <custom files prefix>/hyperparameters.json"),
    _v("DR_LOCAL_S3_REWARD_KEY", "", RUN_ENV,
       "reward_function.py's key; empty: <custom files prefix>/reward_function.py"),
    _v("DR_LOCAL_S3_METRICS_PREFIX", "", RUN_ENV,
       "Metrics prefix; empty: <model prefix>/metrics"),
    _v("DR_UPLOAD_S3_PREFIX", "", RUN_ENV,
       "dr-upload-model's target prefix; empty: <model prefix>-1"),
    _v("DR_OA_NUMBER_OF_OBSTACLES", 6, RUN_ENV, "Object avoidance: obstacles", worker=True),
    _v("DR_OA_MIN_DISTANCE_BETWEEN_OBSTACLES", 2.0, RUN_ENV, "Object avoidance: metres apart",
       worker=True),
    _v("DR_OA_RANDOMIZE_OBSTACLE_LOCATIONS", False, RUN_ENV, "Object avoidance: random places",
       worker=True),
    _v("DR_OA_IS_OBSTACLE_BOT_CAR", False, RUN_ENV, "Object avoidance: obstacles are cars",
       worker=True),
    _v("DR_OA_OBSTACLE_TYPE", "box_obstacle", RUN_ENV, "Object avoidance: obstacle type",
       worker=True),
    _v("DR_OA_OBJECT_POSITIONS", "", RUN_ENV,
       "Object avoidance: 'progress,lane;...' (e.g. '0.23,-1;0.46,1'); sets the number",
       worker=True),
    _v("DR_H2B_IS_LANE_CHANGE", False, RUN_ENV, "Head-to-bot: bots change lanes", worker=True),
    _v("DR_H2B_LOWER_LANE_CHANGE_TIME", 3.0, RUN_ENV, "Head-to-bot: seconds, lower", worker=True),
    _v("DR_H2B_UPPER_LANE_CHANGE_TIME", 5.0, RUN_ENV, "Head-to-bot: seconds, upper", worker=True),
    _v("DR_H2B_LANE_CHANGE_DISTANCE", 1.0, RUN_ENV, "Head-to-bot: metres", worker=True),
    _v("DR_H2B_NUMBER_OF_BOT_CARS", 3, RUN_ENV, "Head-to-bot: bot cars", worker=True),
    _v("DR_H2B_MIN_DISTANCE_BETWEEN_BOT_CARS", 2.0, RUN_ENV, "Head-to-bot: metres apart",
       worker=True),
    _v("DR_H2B_RANDOMIZE_BOT_CAR_LOCATIONS", False, RUN_ENV, "Head-to-bot: random places",
       worker=True),
    _v("DR_H2B_BOT_CAR_SPEED", 0.2, RUN_ENV, "Head-to-bot: m/s", worker=True),
    _v("DR_H2B_BOT_CAR_PENALTY", 5.0, RUN_ENV, "Head-to-bot: seconds per collision", worker=True),
    # --- system.env ----------------------------------------------------------------------------
    _v("DR_AWS_APP_REGION", "us-east-1", SYSTEM_ENV, "Region of the bucket and the simapp"),
    _v("DR_LOCAL_S3_BUCKET", "bucket", SYSTEM_ENV, "The bucket of models and custom files"),
    _v("DR_UPLOAD_S3_BUCKET", "not-defined", SYSTEM_ENV, "dr-upload-model's target bucket"),
    _v("DR_KINESIS_STREAM_NAME", "", SYSTEM_ENV, "Kinesis video stream"),
    _v("DR_CAMERA_MAIN_ENABLE", True, SYSTEM_ENV, "Main camera", worker=True),
    _v("DR_CAMERA_SUB_ENABLE", False, SYSTEM_ENV, "Sub camera", worker=True),
    _v("DR_CAMERA_KVS_ENABLE", True, SYSTEM_ENV, "Robomaker ENABLE_KINESIS"),
    _v("DR_ENABLE_EXTRA_KVS_OVERLAY", False, SYSTEM_ENV, "Extra KVS overlay", worker=True),
    _v("DR_GUI_ENABLE", False, SYSTEM_ENV, "Gazebo GUI (VNC) in robomaker"),
    _v("DR_SIMAPP_SOURCE", SIMAPP_SOURCE, SYSTEM_ENV, "The simapp image's repository"),
    _v("DR_SIMAPP_VERSION", "", SYSTEM_ENV,
       "The simapp image's tag; empty: <deepracer_stack_simapp_release>-gpu with a GPU, else -cpu"),
    _v("DR_WORKERS", 1, SYSTEM_ENV, "Robomaker workers (1..10 on one host; 1 with SAC)"),
    _v("DR_ROBOMAKER_CUDA_DEVICES", "", SYSTEM_ENV, "CUDA_VISIBLE_DEVICES of robomaker",
       optional=True),
    _v("DR_SAGEMAKER_CUDA_DEVICES", "", SYSTEM_ENV, "CUDA_VISIBLE_DEVICES of the trainer",
       optional=True),
    _v("DR_TELEGRAF_HOST", "", SYSTEM_ENV, "Telegraf host of the metrics stack", optional=True),
    _v("DR_TELEGRAF_PORT", "", SYSTEM_ENV, "Telegraf port", optional=True),
    _v("DR_GAZEBO_ARGS", "", DERIVED, "Extra Gazebo arguments", optional=True),
    _v("DR_GAZEBO_RENDER_ENGINE", "ogre2", DERIVED, "Gazebo render engine"),
    # --- what activate.sh derives from DR_CLOUD and the aws profiles ------------------------------
    _v("DR_LOCAL_S3_ENDPOINT_URL", "", DERIVED,
       "S3 endpoint the role uploads to (host side); empty: AWS S3", optional=True),
    _v("DR_MINIO_URL", "", DERIVED,
       "S3 endpoint the containers use; empty: the host's endpoint with a loopback address "
       "replaced by the sagemaker-local gateway, or none (AWS S3)", optional=True),
    _v("DR_LOCAL_ACCESS_KEY_ID", "", DERIVED, "Access key of the bucket; empty: an instance role",
       optional=True),
    _v("DR_LOCAL_SECRET_ACCESS_KEY", "", DERIVED, "Its secret key", optional=True, secret=True),
)
BY_NAME = {v.name: v for v in VARIABLES}
BY_VAR = {v.var: v for v in VARIABLES}
WORKER_VARS = tuple(v.var for v in VARIABLES if v.worker)


_BOOL_WORDS = {"true": True, "yes": True, "on": True, "1": True,
               "false": False, "no": False, "off": False, "0": False}


def env_value(value) -> str:
    """A role value as DRfC's env files hold it: True/False for booleans."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if value is None:
        return ""
    return str(value)


def extra_env_problems(extra) -> list:
    problems = []
    if not isinstance(extra, dict):
        return ["deepracer_stack_extra_env must be a dict of DR_* names and values"]
    for key in sorted(extra, key=str):
        if not isinstance(key, str) or not DR_NAME_PATTERN.match(key):
            problems.append(f"deepracer_stack_extra_env: {key!r} is not a DR_* name "
                            f"(upper case letters, digits and _ after DR_)")
        elif key in BY_NAME:
            problems.append(f"deepracer_stack_extra_env: {key} is modelled: set {BY_NAME[key].var}")
        elif isinstance(extra[key], (dict, list)):
            problems.append(f"deepracer_stack_extra_env: {key} must be a string, number or boolean")
    return problems


def build_env(settings: dict, extra=None, gpu: bool = False,
              release: str = SIMAPP_RELEASE, gateway: str = "") -> dict:
    """DRfC's environment for the role's settings (deepracer_stack_* names; missing ones take the
    table's default): every DR_* name and its string value, the template's $VAR defaults
    resolved, optional ones left out when empty, then deepracer_stack_extra_env's keys."""
    env = {}
    for item in VARIABLES:
        value = settings.get(item.var, item.default)
        if isinstance(item.default, bool) and isinstance(value, str) \
                and value.lower() in _BOOL_WORDS:
            value = _BOOL_WORDS[value.lower()]  # -e deepracer_stack_x=true arrives as a string
        env[item.name] = env_value(value)
    car, opp = env["DR_CAR_NAME"], env["DR_EVAL_OPP_CAR_NAME"]
    prefix, custom = env["DR_LOCAL_S3_MODEL_PREFIX"], env["DR_LOCAL_S3_CUSTOM_FILES_PREFIX"]
    derived = {
        "DR_DISPLAY_NAME": car, "DR_RACER_NAME": car,
        "DR_EVAL_OPP_DISPLAY_NAME": opp, "DR_EVAL_OPP_RACER_NAME": opp,
        "DR_LOCAL_S3_MODEL_METADATA_KEY": f"{custom}/model_metadata.json",
        "DR_LOCAL_S3_HYPERPARAMETERS_KEY": f"{custom}/hyperparameters.json",
        "DR_LOCAL_S3_REWARD_KEY": f"{custom}/reward_function.py",
        "DR_LOCAL_S3_METRICS_PREFIX": f"{prefix}/metrics",
        "DR_UPLOAD_S3_PREFIX": f"{prefix}-1",
        "DR_SIMAPP_VERSION": f"{release}-{'gpu' if gpu else 'cpu'}",
        "DR_MINIO_URL": container_endpoint(env["DR_LOCAL_S3_ENDPOINT_URL"], gateway),
    }
    for name, value in derived.items():
        if env[name] == "":
            env[name] = value
    env = {k: v for k, v in env.items() if not (BY_NAME[k].optional and v == "")}
    for key, value in (extra or {}).items():
        env[key] = env_value(value)
    return env


_LOOPBACK = re.compile(r"^(https?://)(127\.[0-9.]+|localhost|\[::1\])(:[0-9]+)?(/.*)?$")


def container_endpoint(host_endpoint: str, gateway: str) -> str:
    """The S3 endpoint as the containers reach it: a loopback host is the network's gateway
    (the host seen from sagemaker-local); anything else is the same URL; none for AWS S3."""
    if not host_endpoint:
        return ""
    match = _LOOPBACK.match(host_endpoint)
    if match and gateway:
        return f"{match.group(1)}{gateway}{match.group(3) or ''}{match.group(4) or ''}"
    return host_endpoint


# --- training params (scripts/training/prepare-config.py) --------------------------------------

def _oa_keys(env: dict, config: dict) -> None:
    config["NUMBER_OF_OBSTACLES"] = env.get("DR_OA_NUMBER_OF_OBSTACLES", "6")
    config["MIN_DISTANCE_BETWEEN_OBSTACLES"] = env.get("DR_OA_MIN_DISTANCE_BETWEEN_OBSTACLES",
                                                       "2.0")
    config["RANDOMIZE_OBSTACLE_LOCATIONS"] = env.get("DR_OA_RANDOMIZE_OBSTACLE_LOCATIONS", "True")
    config["IS_OBSTACLE_BOT_CAR"] = env.get("DR_OA_IS_OBSTACLE_BOT_CAR", "false")
    config["OBSTACLE_TYPE"] = env.get("DR_OA_OBSTACLE_TYPE", "box_obstacle")
    positions = env.get("DR_OA_OBJECT_POSITIONS", "")
    if positions != "":
        # DRfC strips double quotes for worker files only (its env parser keeps them); the
        # role's values never carry the shell's quotes, so both are the same here.
        config["OBJECT_POSITIONS"] = positions.replace('"', "").split(";")
        config["NUMBER_OF_OBSTACLES"] = str(len(config["OBJECT_POSITIONS"]))


def _h2b_keys(env: dict, config: dict) -> None:
    config["IS_LANE_CHANGE"] = env.get("DR_H2B_IS_LANE_CHANGE", "False")
    config["LOWER_LANE_CHANGE_TIME"] = env.get("DR_H2B_LOWER_LANE_CHANGE_TIME", "3.0")
    config["UPPER_LANE_CHANGE_TIME"] = env.get("DR_H2B_UPPER_LANE_CHANGE_TIME", "5.0")
    config["LANE_CHANGE_DISTANCE"] = env.get("DR_H2B_LANE_CHANGE_DISTANCE", "1.0")
    config["NUMBER_OF_BOT_CARS"] = env.get("DR_H2B_NUMBER_OF_BOT_CARS", "0")
    config["MIN_DISTANCE_BETWEEN_BOT_CARS"] = env.get("DR_H2B_MIN_DISTANCE_BETWEEN_BOT_CARS", "2.0")
    config["RANDOMIZE_BOT_CAR_LOCATIONS"] = env.get("DR_H2B_RANDOMIZE_BOT_CAR_LOCATIONS", "False")
    config["BOT_CAR_SPEED"] = env.get("DR_H2B_BOT_CAR_SPEED", "0.2")
    config["PENALTY_SECONDS"] = env.get("DR_H2B_BOT_CAR_PENALTY", "2.0")


OA_KEYS = ("NUMBER_OF_OBSTACLES", "MIN_DISTANCE_BETWEEN_OBSTACLES", "RANDOMIZE_OBSTACLE_LOCATIONS",
           "IS_OBSTACLE_BOT_CAR", "OBSTACLE_TYPE", "OBJECT_POSITIONS")
H2B_KEYS = ("IS_LANE_CHANGE", "LOWER_LANE_CHANGE_TIME", "UPPER_LANE_CHANGE_TIME",
            "LANE_CHANGE_DISTANCE", "NUMBER_OF_BOT_CARS", "MIN_DISTANCE_BETWEEN_BOT_CARS",
            "RANDOMIZE_BOT_CAR_LOCATIONS", "BOT_CAR_SPEED", "PENALTY_SECONDS")


def _car_keys(env: dict, config: dict) -> None:
    """The car and track keys prepare-config.py sets first, and sets again for each worker."""
    config["BODY_SHELL_TYPE"] = env.get("DR_CAR_BODY_SHELL_TYPE", "deepracer")
    config["CAR_COLOR"] = env.get("DR_CAR_COLOR", "Red")
    config["RACE_TYPE"] = env.get("DR_RACE_TYPE", "TIME_TRIAL")
    config["WORLD_NAME"] = env.get("DR_WORLD_NAME", "LGSWide")
    config["REVERSE_DIR"] = env.get("DR_TRAIN_REVERSE_DIRECTION", "False")
    config["ALTERNATE_DRIVING_DIRECTION"] = env.get(
        "DR_TRAIN_ALTERNATE_DRIVING_DIRECTION", env.get("DR_ALTERNATE_DRIVING_DIRECTION", "false"))
    config["CHANGE_START_POSITION"] = env.get(
        "DR_TRAIN_CHANGE_START_POSITION", env.get("DR_CHANGE_START_POSITION", "true"))
    config["ROUND_ROBIN_ADVANCE_DIST"] = env.get("DR_TRAIN_ROUND_ROBIN_ADVANCE_DIST", "0.05")
    config["START_POSITION_OFFSET"] = env.get("DR_TRAIN_START_POSITION_OFFSET", "0.00")
    config["ENABLE_DOMAIN_RANDOMIZATION"] = env.get("DR_ENABLE_DOMAIN_RANDOMIZATION", "false")
    config["CAMERA_MAIN_ENABLE"] = env.get("DR_CAMERA_MAIN_ENABLE", "True")
    config["CAMERA_SUB_ENABLE"] = env.get("DR_CAMERA_SUB_ENABLE", "True")
    config["ENABLE_EXTRA_KVS_OVERLAY"] = env.get("DR_ENABLE_EXTRA_KVS_OVERLAY", "False")
    for key in OA_KEYS + H2B_KEYS:
        config.pop(key, None)
    if config["RACE_TYPE"] == "OBJECT_AVOIDANCE":
        _oa_keys(env, config)
    if config["RACE_TYPE"] == "HEAD_TO_BOT":
        _h2b_keys(env, config)


def training_params(env: dict, now: datetime) -> dict:
    """training_params.yaml's dict for DRfC's environment `env` (build_env)."""
    config = {
        "AWS_REGION": env.get("DR_AWS_APP_REGION", "us-east-1"),
        "JOB_TYPE": "TRAINING",
        "KINESIS_VIDEO_STREAM_NAME": env.get("DR_KINESIS_STREAM_NAME", ""),
        "METRICS_S3_BUCKET": env.get("DR_LOCAL_S3_BUCKET", "bucket"),
    }
    if "DR_MINIO_URL" in env:
        config["S3_ENDPOINT_URL"] = env["DR_MINIO_URL"]
    if "DR_LOCAL_S3_METRICS_PREFIX" in env:
        metrics = env["DR_LOCAL_S3_METRICS_PREFIX"]
        config["METRICS_S3_OBJECT_KEY"] = f"{metrics}/TrainingMetrics.json"
    else:
        config["METRICS_S3_OBJECT_KEY"] = \
            f"DeepRacer-Metrics/TrainingMetrics-{now.strftime('%Y%m%d%H%M%S')}.json"
    bucket = env.get("DR_LOCAL_S3_BUCKET", "bucket")
    prefix = env.get("DR_LOCAL_S3_MODEL_PREFIX", "rl-deepracer-sagemaker")
    config.update({
        "MODEL_METADATA_FILE_S3_KEY": env.get("DR_LOCAL_S3_MODEL_METADATA_KEY",
                                              "custom_files/model_metadata.json"),
        "REWARD_FILE_S3_KEY": env.get("DR_LOCAL_S3_REWARD_KEY", "custom_files/reward_function.py"),
        "ROBOMAKER_SIMULATION_JOB_ACCOUNT_ID": "Dummy",
        "NUM_WORKERS": env.get("DR_WORKERS", "1"),
        "SAGEMAKER_SHARED_S3_BUCKET": bucket,
        "SAGEMAKER_SHARED_S3_PREFIX": prefix,
        "SIMTRACE_S3_BUCKET": bucket,
        "SIMTRACE_S3_PREFIX": prefix,
        "TRAINING_JOB_ARN": "arn:Dummy",
        "CAR_NAME": env.get("DR_CAR_NAME", "MyCar"),
        "DISPLAY_NAME": env.get("DR_DISPLAY_NAME", "racer1"),
        "RACER_NAME": env.get("DR_RACER_NAME", "racer1"),
        "MIN_EVAL_TRIALS": env.get("DR_TRAIN_MIN_EVAL_TRIALS", "5"),
        "BEST_MODEL_METRIC": env.get("DR_TRAIN_BEST_MODEL_METRIC", "progress"),
    })
    _car_keys(env, config)
    return config


def multi_config(env: dict) -> bool:
    return env.get("DR_TRAIN_MULTI_CONFIG", "False") == "True" and int(env.get("DR_WORKERS", 1)) > 1


def worker_file_name(params_file: str, worker: int) -> str:
    """training_params.yaml -> training_params_<worker>.yaml (DRfC: first dot-segment)."""
    return f"{params_file.split('.')[0]}_{worker}.yaml"


def training_files(env: dict, workers: list, now: datetime) -> dict:
    """{key relative to the model prefix: params dict} of a training, and the MULTI_CONFIG
    JSON robomaker gets ("" without multi-config). `workers`: worker 2..N's settings as
    role variables (deepracer_stack_world_name, ...), each over the role's own."""
    main = training_params(env, now)
    name = env.get("DR_LOCAL_S3_TRAINING_PARAMS_FILE", "training_params.yaml")
    if not multi_config(env):
        return {"files": {name: main}, "multi_config": ""}
    files, entries = {}, []
    for index in range(1, int(env["DR_WORKERS"]) + 1):
        if index == 1:
            config = main
        else:
            worker_env = dict(env)
            for var, value in (workers[index - 2] or {}).items():
                worker_env[BY_VAR[var].name] = env_value(value)
            config = dict(main)
            _car_keys(worker_env, config)
        file_name = worker_file_name(name, index)
        files[file_name] = config
        entries.append({"config_file": file_name, "world_name": config["WORLD_NAME"]})
    return {"files": files, "multi_config": json.dumps({"multi_config": entries})}


def worker_problems(env: dict, workers) -> list:
    if not isinstance(workers, list):
        return ["deepracer_stack_multi_config_workers must be a list of dicts (worker 2, 3, ...)"]
    problems = []
    count = int(env.get("DR_WORKERS", 1))
    if multi_config(env) and len(workers) != count - 1:
        problems.append(f"deepracer_stack_train_multi_config with {count} workers needs "
                        f"{count - 1} entries in deepracer_stack_multi_config_workers (workers 2.."
                        f"{count}, DRfC's worker-N.env), not {len(workers)}")
    for position, worker in enumerate(workers, start=2):
        if not isinstance(worker, dict):
            problems.append(f"deepracer_stack_multi_config_workers: worker {position} "
                            f"is not a dict")
            continue
        for key in sorted(worker, key=str):
            if key not in WORKER_VARS:
                problems.append(f"deepracer_stack_multi_config_workers: worker {position}: {key!r} "
                                f"is not a per-worker setting (one of {', '.join(WORKER_VARS)})")
    return problems


# --- evaluation params (scripts/evaluation/prepare-config.py) ----------------------------------

def evaluation_params(env: dict, now: datetime) -> dict:
    stamp = now.strftime("%Y%m%d%H%M%S")
    bucket = env.get("DR_LOCAL_S3_BUCKET", "bucket")
    prefix = env.get("DR_LOCAL_S3_MODEL_PREFIX", "rl-deepracer-sagemaker")
    config = {
        "AWS_REGION": env.get("DR_AWS_APP_REGION", "us-east-1"),
        "JOB_TYPE": "EVALUATION",
        "KINESIS_VIDEO_STREAM_NAME": env.get("DR_KINESIS_STREAM_NAME", ""),
        "ROBOMAKER_SIMULATION_JOB_ACCOUNT_ID": "Dummy",
        "MODEL_S3_PREFIX": [prefix],
        "MODEL_S3_BUCKET": [bucket],
        "SIMTRACE_S3_BUCKET": [bucket],
        "SIMTRACE_S3_PREFIX": [f"{prefix}/evaluation-{stamp}"],
        "METRICS_S3_BUCKET": [bucket],
        "MP4_S3_BUCKET": [],
        "MP4_S3_OBJECT_PREFIX": [],
    }
    if "DR_MINIO_URL" in env:
        config["S3_ENDPOINT_URL"] = env["DR_MINIO_URL"]
    if "DR_LOCAL_S3_METRICS_PREFIX" in env:
        config["METRICS_S3_OBJECT_KEY"] = [
            f"{env['DR_LOCAL_S3_METRICS_PREFIX']}/evaluation/evaluation-{stamp}.json"]
    else:
        config["METRICS_S3_OBJECT_KEY"] = [f"DeepRacer-Metrics/EvaluationMetrics-{stamp}.json"]
    save_mp4 = _str2bool(env.get("DR_EVAL_SAVE_MP4", "False"))
    if save_mp4:
        config["MP4_S3_BUCKET"].append(bucket)
        config["MP4_S3_OBJECT_PREFIX"].append(f"{prefix}/mp4")
    config.update({
        "EVAL_CHECKPOINT": env.get("DR_EVAL_CHECKPOINT", "last"),
        "BODY_SHELL_TYPE": [env.get("DR_CAR_BODY_SHELL_TYPE", "deepracer")],
        "CAR_COLOR": [env.get("DR_CAR_COLOR", "Red")],
        "DISPLAY_NAME": [env.get("DR_DISPLAY_NAME", "racer1")],
        "RACER_NAME": [env.get("DR_RACER_NAME", "racer1")],
        "RACE_TYPE": env.get("DR_RACE_TYPE", "TIME_TRIAL"),
        "WORLD_NAME": env.get("DR_WORLD_NAME", "LGSWide"),
        "NUMBER_OF_TRIALS": env.get("DR_EVAL_NUMBER_OF_TRIALS", "5"),
        "ENABLE_DOMAIN_RANDOMIZATION": env.get("DR_ENABLE_DOMAIN_RANDOMIZATION", "false"),
        "RESET_BEHIND_DIST": env.get("DR_EVAL_RESET_BEHIND_DIST", "1.0"),
        "IS_CONTINUOUS": env.get("DR_EVAL_IS_CONTINUOUS", "True"),
        "NUMBER_OF_RESETS": env.get("DR_EVAL_MAX_RESETS", "0"),
        "OFF_TRACK_PENALTY": env.get("DR_EVAL_OFF_TRACK_PENALTY", "5.0"),
        # Bug not copied (eval-collision-penalty): DRfC reads DR_COLLISION_PENALTY.
        "COLLISION_PENALTY": env.get("DR_EVAL_COLLISION_PENALTY",
                                     env.get("DR_COLLISION_PENALTY", "5.0")),
        "CAMERA_MAIN_ENABLE": env.get("DR_CAMERA_MAIN_ENABLE", "True"),
        "CAMERA_SUB_ENABLE": env.get("DR_CAMERA_SUB_ENABLE", "True"),
        "REVERSE_DIR": env.get("DR_EVAL_REVERSE_DIRECTION", "False"),
        "ENABLE_EXTRA_KVS_OVERLAY": env.get("DR_ENABLE_EXTRA_KVS_OVERLAY", "False"),
    })
    if config["RACE_TYPE"] == "OBJECT_AVOIDANCE":
        _oa_keys(env, config)
    if config["RACE_TYPE"] == "HEAD_TO_BOT":
        _h2b_keys(env, config)
    if config["RACE_TYPE"] == "HEAD_TO_MODEL":
        opp = env.get("DR_EVAL_OPP_S3_MODEL_PREFIX", "rl-deepracer-sagemaker")
        config["MODEL_S3_PREFIX"].append(opp)
        config["MODEL_S3_BUCKET"].append(bucket)
        config["SIMTRACE_S3_BUCKET"].append(bucket)
        config["SIMTRACE_S3_PREFIX"].append(opp)
        config["METRICS_S3_BUCKET"].append(bucket)
        opp_metrics = env.get("DR_EVAL_OPP_S3_METRICS_PREFIX", f"{opp}/metrics")
        config["METRICS_S3_OBJECT_KEY"].append(
            f"{opp_metrics}/EvaluationMetrics-{round(now.timestamp())}.json")
        if save_mp4:
            config["MP4_S3_BUCKET"].append(bucket)
            # Bug not copied (h2m-opponent-mp4): DRfC reads DR_EVAL_OPP_MODEL_PREFIX.
            config["MP4_S3_OBJECT_PREFIX"].append(f"{opp}/mp4")
        config["DISPLAY_NAME"].append(env.get("DR_EVAL_OPP_DISPLAY_NAME", "racer1"))
        config["RACER_NAME"].append(env.get("DR_EVAL_OPP_RACER_NAME", "racer1"))
        config["BODY_SHELL_TYPE"].append(env.get("DR_EVAL_OPP_CAR_BODY_SHELL_TYPE", "deepracer"))
        config["VIDEO_JOB_TYPE"] = "EVALUATION"
        config["CAR_COLOR"] = ["Purple", "Orange"]
        # Bug not copied (h2m-model-name-alias): a copy, not the same list object.
        config["MODEL_NAME"] = list(config["DISPLAY_NAME"])
    return config


def _str2bool(value: str) -> bool:
    return value.lower() in ("yes", "true", "t", "1")


def params_yaml(config: dict) -> str:
    """The YAML text DRfC writes: every scalar (keys too) single-quoted, keys sorted, `---`."""
    import yaml  # the controller's PyYAML; see the module's docstring

    return yaml.dump(config, default_flow_style=False, default_style="'", explicit_start=True)


def params_key(prefix: str, name: str) -> str:
    """os.path.normpath(os.path.join(prefix, name)) as DRfC keys it, with / separators."""
    parts = []
    for part in f"{prefix}/{name}".split("/"):
        if part in ("", "."):
            continue
        if part == ".." and parts:
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


# --- increment (scripts/training/increment.sh) -------------------------------------------------

def next_model_prefix(prefix: str, delimiter: str = "-") -> str:
    """The model prefix dr-increment-training moves to: the last delimiter-separated token
    incremented when it is a number (^[0-9]+$, leading zeros kept out as bc does), else the
    delimiter and 1 appended. Bug not copied (increment-regex)."""
    if not delimiter:
        raise ValueError("the increment's delimiter is empty")
    head, sep, last = prefix.rpartition(delimiter)
    if re.fullmatch(r"[0-9]+", last):
        return f"{head}{sep}{int(last) + 1}"
    return f"{prefix}{delimiter}1"


# --- compose projects (docker/docker-compose-*.yml) -----------------------------------------

def image(env: dict, digest: str = "") -> str:
    ref = f"{env['DR_SIMAPP_SOURCE']}:{env['DR_SIMAPP_VERSION']}"
    return f"{ref}@{digest}" if digest else ref


def _s3_env(env: dict) -> dict:
    """docker-compose-endpoint.yml, -keys.yml and -aws.yml as activate.sh picks them."""
    wired = {}
    if "DR_MINIO_URL" in env:
        wired["S3_ENDPOINT_URL"] = env["DR_MINIO_URL"]
    else:
        wired.update({"AWS_METADATA_SERVICE_TIMEOUT": "3",
                      "AWS_METADATA_SERVICE_NUM_ATTEMPTS": "5"})
    if "DR_LOCAL_ACCESS_KEY_ID" in env:
        wired["AWS_ACCESS_KEY_ID"] = env["DR_LOCAL_ACCESS_KEY_ID"]
        wired["AWS_SECRET_ACCESS_KEY"] = env.get("DR_LOCAL_SECRET_ACCESS_KEY", "")
    return wired


def _gpu_reservation() -> dict:
    return {"resources": {"reservations": {"devices": [
        {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]}}}


def project_name(env: dict, job: str) -> str:
    """The compose project's name (docker compose --project-name), DRfC's stack names."""
    run_id = env["DR_RUN_ID"]
    return f"deepracer-{run_id}" if job == "training" else f"deepracer-eval-{run_id}"


def compose_project(env: dict, job: str, gpu: bool = False, digest: str = "",
                    multi_config_json: str = "", comms_dir: str = "",
                    publish_address: str = "127.0.0.1") -> dict:
    """The compose project of a training (`job` training) or an evaluation as a dict, for
    `docker compose --project-name <project_name> --file <file> up --detach`: DRfC's files
    for compose mode merged (training or eval, endpoint or aws, keys), robomaker scaled to
    DR_WORKERS, the network external. No top-level `name` (docker-compose 1.29's schema
    refuses it): the project's name is given on the command line, as DRfC's -p."""
    ref = image(env, digest)
    run_id = env["DR_RUN_ID"]
    workers = int(env.get("DR_WORKERS", 1)) if job == "training" else 1
    common = {
        "APP_REGION": env["DR_AWS_APP_REGION"],
        "KINESIS_VIDEO_STREAM_NAME": env.get("DR_KINESIS_STREAM_NAME", ""),
        "ENABLE_KINESIS": env["DR_CAMERA_KVS_ENABLE"],
        "ENABLE_GUI": env["DR_GUI_ENABLE"],
        "CUDA_VISIBLE_DEVICES": env.get("DR_ROBOMAKER_CUDA_DEVICES", ""),
        "ROS_MASTER_URI": "http://localhost:11311/",
        "ROS_IP": "127.0.0.1",
        "GAZEBO_ARGS": env.get("DR_GAZEBO_ARGS", ""),
        "GAZEBO_RENDER_ENGINE": env.get("DR_GAZEBO_RENDER_ENGINE", "ogre2"),
        "TELEGRAF_HOST": env.get("DR_TELEGRAF_HOST", ""),
        "TELEGRAF_PORT": env.get("DR_TELEGRAF_PORT", ""),
        "WORLD_NAME": env["DR_WORLD_NAME"],
    }
    bind = f"{publish_address}:" if publish_address else ""
    if job == "training":
        command = "run.sh multi" if workers > 1 else "run.sh run"
        robomaker_env = {
            **common,
            "SAGEMAKER_SHARED_S3_PREFIX": env["DR_LOCAL_S3_MODEL_PREFIX"],
            "SAGEMAKER_SHARED_S3_BUCKET": env["DR_LOCAL_S3_BUCKET"],
            "S3_YAML_NAME": env["DR_LOCAL_S3_TRAINING_PARAMS_FILE"],
            "MULTI_CONFIG": multi_config_json,
            "RTF_OVERRIDE": env.get("DR_TRAIN_RTF", ""),
        }
        robomaker = {
            "image": ref,
            "command": [f"/opt/ml/code/{command} distributed_training.launch.py"],
            "ports": [f"{bind}{TRAIN_PORTS}:8080", f"{bind}{GUI_PORTS}:5900"],
            "environment": {**robomaker_env, **_s3_env(env)},
            "init": True,
            "scale": workers,
        }
        if workers > 1 and comms_dir:
            # docker-compose-robomaker-multi.yml: the workers number themselves in a file here.
            robomaker["volumes"] = [f"{comms_dir}:/mnt/comms"]
        rl_coach = {
            "image": ref,
            "command": ["source /root/sagemaker-venv/bin/activate && "
                        "python3 /opt/ml/code/rl_coach/start.py"],
            "working_dir": "/opt/ml/code/",
            "environment": {
                "RUN_ID": run_id,
                "AWS_REGION": env["DR_AWS_APP_REGION"],
                # rl_coach starts the trainer from this image, local_gpu iff it says gpu.
                "SAGEMAKER_IMAGE": ref,
                "PRETRAINED": env["DR_LOCAL_S3_PRETRAINED"],
                "PRETRAINED_S3_PREFIX": env["DR_LOCAL_S3_PRETRAINED_PREFIX"],
                "PRETRAINED_S3_BUCKET": env["DR_LOCAL_S3_BUCKET"],
                "PRETRAINED_CHECKPOINT": env["DR_LOCAL_S3_PRETRAINED_CHECKPOINT"],
                "MODEL_S3_PREFIX": env["DR_LOCAL_S3_MODEL_PREFIX"],
                "MODEL_S3_BUCKET": env["DR_LOCAL_S3_BUCKET"],
                "HYPERPARAMETER_FILE_S3_KEY": env["DR_LOCAL_S3_HYPERPARAMETERS_KEY"],
                "MODELMETADATA_FILE_S3_KEY": env["DR_LOCAL_S3_MODEL_METADATA_KEY"],
                "CUDA_VISIBLE_DEVICES": env.get("DR_SAGEMAKER_CUDA_DEVICES", ""),
                "MAX_MEMORY_STEPS": env.get("DR_TRAIN_MAX_STEPS_PER_ITERATION", ""),
                "TELEGRAF_HOST": env.get("DR_TELEGRAF_HOST", ""),
                "TELEGRAF_PORT": env.get("DR_TELEGRAF_PORT", ""),
                **_s3_env(env),
            },
            # The SDK writes the trainer's compose file under /tmp/sagemaker with host paths,
            # and starts it through the host's docker.
            "volumes": [f"{DOCKER_SOCKET}:{DOCKER_SOCKET}", f"{SAGEMAKER_DIR}:{SAGEMAKER_DIR}"],
        }
    else:
        robomaker = {
            "image": ref,
            "command": ["/opt/ml/code/run.sh run evaluation.launch.py"],
            "ports": [f"{bind}{TRAIN_PORTS}:8080"],
            "environment": {
                **common,
                "DEBUG_REWARD": env["DR_EVAL_DEBUG_REWARD"],
                "MODEL_S3_PREFIX": env["DR_LOCAL_S3_MODEL_PREFIX"],
                "MODEL_S3_BUCKET": env["DR_LOCAL_S3_BUCKET"],
                "S3_YAML_NAME": env["DR_LOCAL_S3_EVAL_PARAMS_FILE"],
                "ROLLOUT_IDX": "0",
                "RTF_OVERRIDE": env.get("DR_EVAL_RTF", ""),
                **_s3_env(env),
            },
            "init": True,
        }
        rl_coach = {"image": ref,
                    "command": ["/bin/bash", "-c", "echo No work for coach in Evaluation Mode"]}
    if gpu:
        # DRfC relies on nvidia being docker's default runtime; asked for here, robomaker
        # gets the GPU with any nvidia container runtime set up. The trainer gets it from
        # the SDK (local_gpu, chosen by the -gpu tag).
        robomaker["deploy"] = _gpu_reservation()
    return {
        "networks": {"default": {"external": True, "name": NETWORK}},
        "services": {"rl_coach": rl_coach, "robomaker": robomaker},
    }


def settings_problems(env: dict, algorithm: str = "", gpu: bool = False, digest: str = "") -> list:
    """What the argument spec cannot say about DRfC's settings, before anything changes."""
    problems = []
    try:
        workers = int(env.get("DR_WORKERS", "1"))
    except ValueError:
        workers = 0
    if not 1 <= workers <= MAX_COMPOSE_WORKERS:
        problems.append(f"deepracer_stack_workers is {env.get('DR_WORKERS')!r}: 1 to "
                        f"{MAX_COMPOSE_WORKERS} robomaker workers on one host (compose mode "
                        f"publishes the ports {TRAIN_PORTS} and {GUI_PORTS}, one each per worker)")
    if algorithm.lower() == "sac" and workers > 1:
        problems.append(f"deepracer_stack_workers is {workers}: SAC trains with one worker only "
                        f"(model_metadata.json says training_algorithm sac)")
    if env.get("DR_RACE_TYPE") not in RACE_TYPES:
        problems.append(f"deepracer_stack_race_type {env.get('DR_RACE_TYPE')!r} is not one of "
                        f"{', '.join(RACE_TYPES)}")
    for name, choices in (("DR_EVAL_CHECKPOINT", ("last", "best")),
                          ("DR_LOCAL_S3_PRETRAINED_CHECKPOINT", ("last", "best")),
                          ("DR_TRAIN_BEST_MODEL_METRIC", ("progress", "reward"))):
        if env.get(name) not in choices:
            problems.append(f"{BY_NAME[name].var} {env.get(name)!r} is not one of "
                            f"{', '.join(choices)}")
    version = env.get("DR_SIMAPP_VERSION", "")
    if gpu and "gpu" not in version:
        problems.append(f"the host has a GPU but deepracer_stack_simapp_version {version!r} has no "
                        f"'gpu': rl_coach would train on the CPU (it picks local_gpu by the tag)")
    if digest and not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        problems.append(f"deepracer_stack_simapp_digest {digest!r} is not sha256:<64 hex digits>")
    if "latest" in version:
        problems.append("deepracer_stack_simapp_version: a floating tag (latest) is refused; pin a "
                        "version such as 6.0.4-cpu")
    prefix = env.get("DR_LOCAL_S3_MODEL_PREFIX", "")
    if not prefix or prefix.startswith("/") or "//" in prefix or prefix.endswith("/"):
        problems.append(f"deepracer_stack_local_s3_model_prefix {prefix!r}: a non-empty key prefix "
                        f"without a leading, trailing or double /")
    if env.get("DR_LOCAL_S3_PRETRAINED") == "True" and \
            env.get("DR_LOCAL_S3_PRETRAINED_PREFIX") == prefix:
        problems.append(f"deepracer_stack_local_s3_pretrained_prefix is the model prefix "
                        f"{prefix!r}: a new model trains under a new prefix (the increment)")
    if env.get("DR_LOCAL_ACCESS_KEY_ID") and not env.get("DR_LOCAL_SECRET_ACCESS_KEY"):
        problems.append("deepracer_stack_local_access_key_id is set without "
                        "deepracer_stack_local_secret_access_key")
    return problems


# --- DeepRacer as a backend of the session layer (run.json's `deepracer` object) -------------

# Settings a session decides, whatever the inventory says: its bucket is the storage's.
SESSION_MODES = ("new", "resume", "evaluate")
UNSET_BUCKET = "bucket"  # DR_LOCAL_S3_BUCKET's template default: not given


def session_problems(settings: dict, storage: dict) -> list:
    """A bucket given to the role that is not the session's (its storage, the contract's parse
    of rlops_storage: {scheme, location, prefix}): the DeepRacer bucket IS the session's. The
    storage itself (s3:// only) is the contract's rule, checked on run.json's object."""
    given = env_value(settings.get("deepracer_stack_local_s3_bucket", UNSET_BUCKET))
    if storage.get("scheme") == "s3" and given not in (UNSET_BUCKET, storage.get("location")):
        return [f"deepracer_stack_local_s3_bucket {given!r} is not the session's bucket "
                f"{storage.get('location')!r} (rlops_storage): the models live beside the "
                f"session; leave it unset or give the same bucket"]
    return []


def storage_access(settings: dict, credentials: dict | None) -> dict:
    """The S3 endpoint and keys the role left empty, from the session's storage credentials
    (rlops_storage_credentials: RLOPS_S3_ENDPOINT_URL or AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY): one bucket, one way in."""
    given = credentials or {}
    found = {
        "deepracer_stack_local_s3_endpoint_url":
            given.get("RLOPS_S3_ENDPOINT_URL") or given.get("AWS_ENDPOINT_URL") or "",
        "deepracer_stack_local_access_key_id": given.get("AWS_ACCESS_KEY_ID") or "",
        "deepracer_stack_local_secret_access_key": given.get("AWS_SECRET_ACCESS_KEY") or "",
    }
    return {var: value for var, value in found.items()
            if value and not env_value(settings.get(var, ""))}


def session_overrides(mode: str, storage: dict, current: dict | None = None,
                      active: bool = False, episodes=None, video=None) -> dict:
    """The role settings a session's mode decides over the inventory's: the bucket (the
    storage's); on resume of a session that is not running, DRfC's dr-increment-training (the
    next model prefix, pretrained from the current one); on resume of a running one and on
    evaluate, the current model prefix (`current`: the session's run.json `deepracer` object
    or its status entry's); on evaluate, NUMBER_OF_TRIALS and MP4 from the layer's episodes
    and video."""
    if mode not in SESSION_MODES:
        raise ValueError(f"session mode {mode!r} is not one of {', '.join(SESSION_MODES)}")
    overrides = ({"deepracer_stack_local_s3_bucket": storage["location"]}
                 if storage.get("scheme") == "s3" else {})
    if mode == "new":
        return overrides
    prefix = (current or {}).get("model_prefix")
    if not prefix:
        raise ValueError("the session's current model prefix is unknown (no run.json "
                         "`deepracer` object or status entry with model_prefix)")
    if mode == "resume" and not active:
        overrides.update({"deepracer_stack_local_s3_model_prefix": next_model_prefix(prefix),
                          "deepracer_stack_local_s3_pretrained": True,
                          "deepracer_stack_local_s3_pretrained_prefix": prefix})
        return overrides
    overrides["deepracer_stack_local_s3_model_prefix"] = prefix
    if (current or {}).get("pretrained_prefix"):
        overrides.update({"deepracer_stack_local_s3_pretrained": True,
                          "deepracer_stack_local_s3_pretrained_prefix":
                              current["pretrained_prefix"]})
    if mode == "evaluate":
        if episodes is not None:
            overrides["deepracer_stack_eval_number_of_trials"] = int(episodes)
        if video is not None:
            overrides["deepracer_stack_eval_save_mp4"] = bool(video)
    return overrides


def upload_target(env: dict):
    """dr-upload-model's target as a URI (DR_UPLOAD_S3_BUCKET / DR_UPLOAD_S3_PREFIX), or None
    when no bucket is given (DRfC's template value not-defined)."""
    bucket = env.get("DR_UPLOAD_S3_BUCKET", "")
    if bucket in ("", "not-defined"):
        return None
    return f"s3://{bucket}/{env.get('DR_UPLOAD_S3_PREFIX', '').strip('/')}".rstrip("/")


def session_object(env: dict, projects: dict, compose_command: list, compose_dir: str,
                   training_minutes=None) -> dict:
    """run.json's `deepracer` object (DR-BACKEND: what the runtime's driver runs and reads)."""
    pretrained = env.get("DR_LOCAL_S3_PRETRAINED") == "True"
    return {
        "project": projects["training"],
        "eval_project": projects["evaluation"],
        "compose_command": [str(word) for word in compose_command],
        "compose_dir": compose_dir,
        "sagemaker_dir": SAGEMAKER_DIR,
        "run_id": int(env["DR_RUN_ID"]),
        "model_prefix": env["DR_LOCAL_S3_MODEL_PREFIX"],
        "pretrained_prefix": env["DR_LOCAL_S3_PRETRAINED_PREFIX"] if pretrained else None,
        "bucket": env["DR_LOCAL_S3_BUCKET"],
        "metrics_prefix": env["DR_LOCAL_S3_METRICS_PREFIX"],
        "upload_target": upload_target(env),
        "training_minutes": int(training_minutes) if training_minutes not in (None, "") else None,
    }
