"""The robomaker container: distributed_training.launch.py (rollout worker) and
evaluation.launch.py (evaluation worker), as download_params_and_roslaunch_agent.py and
markov's rollout/evaluation workers read and write S3."""

import importlib.util
import json
import math
import os
import random
import sys
import time
import urllib.request

import yaml

from standin import common, sim
from standin.track import Track

C = "robomaker"
WORKDIR = "/opt/ml/code/custom_files"


def first(value):
    """The simapp's force_list()[0]: evaluation YAMLs hold lists for every agent."""
    return value[0] if isinstance(value, list) else value


def missing_keys(doc, mandatory):
    return [k for k in mandatory if k not in doc]


def load_yaml(s3, key):
    body = s3.get_or_none(key)
    if body is None:
        sys.exit(f"Yaml file s3://{s3.bucket}/{key} not found (S3_YAML_NAME)")
    doc = yaml.safe_load(body) or {}
    return doc


def load_reward_function(source):
    os.makedirs(os.path.join(WORKDIR, "agent"), exist_ok=True)
    path = os.path.join(WORKDIR, "agent", "customer_reward_function.py")
    with open(path, "wb") as handle:
        handle.write(source)
    spec = importlib.util.spec_from_file_location("customer_reward_function", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.reward_function


class Worker:
    def __init__(self, stopper):
        self.stopper = stopper
        self.rollout_idx = int(os.environ.get("ROLLOUT_IDX", "0") or 0)
        self.region = os.environ.get("APP_REGION") or "us-east-1"

    # ------------------------------------------------------------------ training
    def training(self):
        bucket = os.environ["SAGEMAKER_SHARED_S3_BUCKET"]
        prefix = os.environ["SAGEMAKER_SHARED_S3_PREFIX"]
        s3 = common.S3(bucket, self.region)
        params = load_yaml(s3, common.s3_key(prefix, os.environ["S3_YAML_NAME"]))
        missing = missing_keys(params, common.TRAINING_MANDATORY_YAML_KEY)
        if missing:
            sys.exit("Yaml file missing mandatory keys: {}".format(", ".join(missing)))
        world = params.get("WORLD_NAME") or os.environ.get("WORLD_NAME")
        track = Track(world, reverse=common.str2bool(params.get("REVERSE_DIR", "False")))
        model_prefix = params["SAGEMAKER_SHARED_S3_PREFIX"]
        s3 = common.S3(params["SAGEMAKER_SHARED_S3_BUCKET"], self.region)
        reward_fn = load_reward_function(s3.get(params.get("REWARD_FILE_S3_KEY",
                                                           "custom_files/reward_function.py")))
        metadata = json.loads(s3.get(params["MODEL_METADATA_FILE_S3_KEY"]))
        space = sim.parse_action_space(metadata)
        wait = float(os.environ.get("STANDIN_SAGEMAKER_WAIT_TIME", "1200"))
        if s3.wait_for(common.s3_key(model_prefix, common.IP_DONE_POSTFIX), self.stopper, wait,
                       what="the trainer's ip/done") is None:
            return 0
        ip = json.loads(s3.get(common.s3_key(model_prefix, common.IP_ADDRESS_POSTFIX)))["IP"]
        hyper = json.loads(s3.get(common.s3_key(model_prefix, common.HYPERPARAMETER_S3_POSTFIX)))
        workers = int(params.get("NUM_WORKERS", "1"))
        per_worker = max(1, math.ceil(int(hyper["num_episodes_between_training"]) / workers))
        min_eval = int(params.get("MIN_EVAL_TRIALS", "5"))
        best_metric = str(params.get("BEST_MODEL_METRIC", "progress")).lower()
        rr_dist = float(params.get("ROUND_ROBIN_ADVANCE_DIST", "0.05"))
        rng = random.Random(hash((model_prefix, self.rollout_idx)) & 0xFFFFFFFF)
        common.log(C, f"worker {self.rollout_idx} on {world} ({track.length:.2f} m), trainer at"
                   f" {ip}, {per_worker} episodes per iteration")
        metrics, episode, clock, start_index, iteration = [], 0, 0.0, self.rollout_idx, 0
        best, played = None, set()
        metrics_key = params["METRICS_S3_OBJECT_KEY"]
        metrics_bucket = params["METRICS_S3_BUCKET"]
        upload_simtrace = self.rollout_idx == 0 and params.get("SIMTRACE_S3_BUCKET")
        while not self.stopper.stop:
            if s3.exists(common.s3_key(model_prefix, common.FINISHED_FILE_KEY_POSTFIX)):
                common.log(C, f"trainer finished, worker {self.rollout_idx} stops")
                break
            name = s3.get_or_none(common.s3_key(model_prefix, common.COACH_CHECKPOINT_POSTFIX))
            name = name.decode().strip() if name else None
            if not name or name in played:
                time.sleep(0.3)
                continue
            data = s3.get_or_none(common.s3_key(model_prefix,
                                                f"model/{name}.data-00000-of-00001"))
            if data is None:
                time.sleep(0.3)
                continue
            state = json.loads(data)
            played.add(name)
            number = sim.checkpoint_number(name)
            if self.rollout_idx == 0 and number > 0:
                # Evaluation phase: the model picker scores the new checkpoint.
                scores = []
                for trial in range(1, min_eval + 1):
                    summary, _rows = sim.run_episode(track, space, state["skill"], reward_fn, rng,
                                                     0.0, episode, clock, stopper=self.stopper)
                    clock = summary["end_time"]
                    metrics.append(sim.training_metric(summary, episode, trial, "evaluation"))
                    scores.append(summary["reward"] if best_metric == "reward"
                                  else summary["progress"])
                mean = sum(scores) / len(scores)
                entry = {"name": name, "avg_eval_metric": mean, "time_stamp": clock}
                if best is None or mean >= best["avg_eval_metric"]:
                    best = entry
                s3.put_json(common.s3_key(model_prefix, common.DEEPRACER_CHECKPOINT_KEY_POSTFIX),
                            sim.checkpoints_json(best, entry))
            rows_all, summaries = [], []
            for _episode in range(per_worker):
                if self.stopper.stop:
                    break
                episode += 1
                start = (start_index * rr_dist * track.length) % track.length
                start_index += workers
                summary, rows = sim.run_episode(track, space, state["skill"], reward_fn, rng,
                                                start, episode, clock, stopper=self.stopper)
                clock = summary["end_time"]
                rows_all += rows
                summaries.append(summary)
                metrics.append(sim.training_metric(summary, episode, 0, "training"))
                s3.put_json(metrics_key, {"metrics": metrics, "version": common.METRICS_VERSION,
                                          "best_model_metric": best_metric}, metrics_bucket)
            if self.stopper.stop:
                break
            if upload_simtrace:
                s3.put(common.s3_key(params.get("SIMTRACE_S3_PREFIX", model_prefix),
                                     common.SIMTRACE_TRAINING_S3_POSTFIX.format(iteration)),
                       sim.simtrace_csv(rows_all), params["SIMTRACE_S3_BUCKET"])
            iteration += 1
            body = json.dumps({"checkpoint": number, "worker": self.rollout_idx,
                               "episodes": summaries}).encode()
            request = urllib.request.Request(f"http://{ip}:{common.MEMORY_PORT}/", body,
                                             {"Content-Type": "application/json"})
            try:
                urllib.request.urlopen(request, timeout=30).close()
            except OSError as exc:
                # The trainer may reach its termination condition and exit while this batch
                # is on its way: then the worker stops as it does on seeing .finished.
                if s3.exists(common.s3_key(model_prefix, common.FINISHED_FILE_KEY_POSTFIX)):
                    common.log(C, f"trainer finished, worker {self.rollout_idx} stops")
                    break
                raise RuntimeError(f"the trainer at {ip} did not take the episodes: {exc}") \
                    from exc
            mean = sum(s["progress"] for s in summaries) / len(summaries)
            common.log(C, f"iteration {iteration} on {name}: {len(summaries)} episodes,"
                       f" mean progress {mean:.1f}%")
        return 0

    # ------------------------------------------------------------------ evaluation
    def evaluation(self):
        bucket, prefix = os.environ["MODEL_S3_BUCKET"], os.environ["MODEL_S3_PREFIX"]
        s3 = common.S3(bucket, self.region)
        params = sim.with_eval_metadata_keys(
            load_yaml(s3, common.s3_key(prefix, os.environ["S3_YAML_NAME"])),
            common.MODEL_METADATA_S3_POSTFIX)
        missing = missing_keys(params, common.EVAL_MANDATORY_YAML_KEY)
        if missing:
            sys.exit("Yaml file missing mandatory keys: {}".format(", ".join(missing)))
        world = first(params.get("WORLD_NAME")) or os.environ.get("WORLD_NAME")
        track = Track(world, reverse=common.str2bool(first(params.get("REVERSE_DIR", "False"))))
        model_bucket, model_prefix = first(params["MODEL_S3_BUCKET"]), first(
            params["MODEL_S3_PREFIX"])
        s3 = common.S3(model_bucket, self.region)
        metadata = json.loads(s3.get(first(params["MODEL_METADATA_FILE_S3_KEY"])))
        space = sim.parse_action_space(metadata)
        doc = s3.get_or_none(common.s3_key(model_prefix, common.DEEPRACER_CHECKPOINT_KEY_POSTFIX))
        if doc is None:
            sys.exit(f"No deepracer_checkpoints.json under s3://{model_bucket}/{model_prefix}"
                     "/model: no model to evaluate")
        which = str(first(params.get("EVAL_CHECKPOINT", "last"))).lower()
        name = sim.pick_checkpoint(json.loads(doc), which)
        state = json.loads(s3.get(common.s3_key(model_prefix,
                                                f"model/{name}.data-00000-of-00001")))
        trials = int(first(params.get("NUMBER_OF_TRIALS", "3")))
        rng = random.Random(hash((model_prefix, name)) & 0xFFFFFFFF)
        common.log(C, f"evaluating {name} ({which}) on {world}, {trials} trials")
        metrics, rows_all, clock = [], [], 0.0
        metrics_bucket = first(params["METRICS_S3_BUCKET"])
        metrics_key = first(params["METRICS_S3_OBJECT_KEY"])
        for trial in range(1, trials + 1):
            if self.stopper.stop:
                break
            summary, rows = sim.run_episode(track, space, state["skill"], None, rng, 0.0, trial,
                                            clock, stopper=self.stopper)
            clock = summary["end_time"]
            rows_all += rows
            metrics.append(sim.eval_metric(summary, trial))
            s3.put_json(metrics_key, {"metrics": metrics}, metrics_bucket)
        if params.get("SIMTRACE_S3_BUCKET"):
            s3.put(common.s3_key(first(params["SIMTRACE_S3_PREFIX"]),
                                 common.SIMTRACE_EVAL_S3_POSTFIX.format(0)),
                   sim.simtrace_csv(rows_all), first(params["SIMTRACE_S3_BUCKET"]))
        if params.get("MP4_S3_BUCKET"):
            video = sim.mp4_bytes(rows_all)
            for postfix in common.CAMERA_MP4_S3_POSTFIXES:
                s3.put(common.s3_key(first(params["MP4_S3_OBJECT_PREFIX"]), postfix.format(0)),
                       video, first(params["MP4_S3_BUCKET"]))
        common.log(C, "evaluation done: %s" % [m["completion_percentage"] for m in metrics])
        return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    launch = argv[0] if argv else "distributed_training.launch.py"
    worker = Worker(common.Stopper(C))
    try:
        if launch.startswith("evaluation"):
            return worker.evaluation()
        if launch.startswith("distributed_training"):
            return worker.training()
    except sim.RewardFunctionError as err:
        print(f"RewardFunctionError: {err}", file=sys.stderr, flush=True)
        return 1
    print(f"launch file {launch!r} is not simulated by the stand-in", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
