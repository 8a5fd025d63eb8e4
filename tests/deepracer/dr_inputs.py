"""The inputs of the stand-in simapp tests: DRfC's default custom files (shortened) and
params YAML as DRfC's prepare-config.py writes them (every value a quoted string)."""

BUCKET = "bucket"

REWARD = '''def reward_function(params):
    """DRfC's default reward function (defaults/reward_function.py), shortened."""
    distance_from_center = params['distance_from_center']
    track_width = params['track_width']
    steering = abs(params['steering_angle'])
    if distance_from_center <= 0.1 * track_width:
        reward = 1.0
    elif distance_from_center <= 0.25 * track_width:
        reward = 0.5
    elif distance_from_center <= 0.5 * track_width:
        reward = 0.1
    else:
        reward = 1e-3
    if steering > 15:
        reward *= 0.8
    return float(reward)
'''
METADATA = {"action_space": [{"steering_angle": a, "speed": 0.6} for a in (-30, -15, 0, 15, 30)],
            "sensor": ["FRONT_FACING_CAMERA"],
            "neural_network": "DEEP_CONVOLUTIONAL_NETWORK_SHALLOW",
            "training_algorithm": "clipped_ppo", "action_space_type": "discrete", "version": "5"}
HYPER = {"batch_size": 64, "beta_entropy": 0.01, "discount_factor": 0.99,
         "e_greedy_value": 0.05, "epsilon_steps": 10000, "exploration_type": "categorical",
         "loss_type": "huber", "lr": 0.0003, "num_episodes_between_training": 4, "num_epochs": 5,
         "stack_size": 1, "term_cond_avg_score": 350000.0, "term_cond_max_episodes": 1000,
         "sac_alpha": 0.2}


def training_yaml(prefix: str) -> str:
    """DRfC's training params as prepare-config.py writes them: every value quoted."""
    doc = {"AWS_REGION": "us-east-1", "JOB_TYPE": "TRAINING", "KINESIS_VIDEO_STREAM_NAME": "",
           "METRICS_S3_BUCKET": BUCKET, "S3_ENDPOINT_URL": "http://minio:9000",
           "METRICS_S3_OBJECT_KEY": f"{prefix}/metrics/TrainingMetrics.json",
           "MODEL_METADATA_FILE_S3_KEY": "custom_files/model_metadata.json",
           "REWARD_FILE_S3_KEY": "custom_files/reward_function.py",
           "ROBOMAKER_SIMULATION_JOB_ACCOUNT_ID": "Dummy", "NUM_WORKERS": "1",
           "SAGEMAKER_SHARED_S3_BUCKET": BUCKET, "SAGEMAKER_SHARED_S3_PREFIX": prefix,
           "SIMTRACE_S3_BUCKET": BUCKET, "SIMTRACE_S3_PREFIX": prefix,
           "TRAINING_JOB_ARN": "arn:Dummy", "BODY_SHELL_TYPE": "deepracer", "CAR_COLOR": "Black",
           "CAR_NAME": "MyCar", "RACE_TYPE": "TIME_TRIAL", "WORLD_NAME": "reInvent2019_track",
           "DISPLAY_NAME": "racer1", "RACER_NAME": "racer1", "REVERSE_DIR": "False",
           "ALTERNATE_DRIVING_DIRECTION": "False", "CHANGE_START_POSITION": "True",
           "ROUND_ROBIN_ADVANCE_DIST": "0.05", "START_POSITION_OFFSET": "0.00",
           "ENABLE_DOMAIN_RANDOMIZATION": "False", "MIN_EVAL_TRIALS": "2",
           "CAMERA_MAIN_ENABLE": "True", "CAMERA_SUB_ENABLE": "False",
           "BEST_MODEL_METRIC": "progress", "ENABLE_EXTRA_KVS_OVERLAY": "False"}
    return "---\n" + "".join(f"'{k}': '{v}'\n" for k, v in sorted(doc.items()))


def eval_yaml(prefix: str, stamp: str) -> str:
    doc = {"AWS_REGION": "us-east-1", "JOB_TYPE": "EVALUATION", "EVAL_CHECKPOINT": "last",
           "MODEL_S3_BUCKET": [BUCKET], "MODEL_S3_PREFIX": [prefix], "METRICS_S3_BUCKET": [BUCKET],
           "METRICS_S3_OBJECT_KEY": [f"{prefix}/metrics/evaluation/evaluation-{stamp}.json"],
           "SIMTRACE_S3_BUCKET": [BUCKET], "SIMTRACE_S3_PREFIX": [f"{prefix}/evaluation-{stamp}"],
           "MP4_S3_BUCKET": [BUCKET], "MP4_S3_OBJECT_PREFIX": [f"{prefix}/mp4"],
           "BODY_SHELL_TYPE": ["deepracer"], "CAR_COLOR": ["Black"], "RACER_NAME": ["racer1"],
           "DISPLAY_NAME": ["racer1"], "NUMBER_OF_TRIALS": "3", "IS_CONTINUOUS": "False",
           "NUMBER_OF_RESETS": "0", "OFF_TRACK_PENALTY": "5.0", "WORLD_NAME": "reInvent2019_track",
           "REVERSE_DIR": "False", "RACE_TYPE": "TIME_TRIAL"}
    lines = ["---"]
    for key, value in sorted(doc.items()):
        if isinstance(value, list):
            lines.append(f"'{key}':")
            lines += [f"- '{v}'" for v in value]
        else:
            lines.append(f"'{key}': '{value}'")
    return "\n".join(lines) + "\n"
