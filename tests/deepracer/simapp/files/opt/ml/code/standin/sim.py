"""The stand-in's car, policy and checkpoint files: pure functions, no I/O."""

import collections
import json
import math

HZ = 15.0  # simulation steps per second, as the simapp's agent runs
SIMTRACE_COLUMNS = ["episode", "steps", "X", "Y", "yaw", "steer", "throttle", "action", "reward",
                    "done", "all_wheels_on_track", "progress", "closest_waypoint", "track_len",
                    "tstamp", "episode_status", "pause_duration", "obstacle_crash_counter",
                    "wall_clock"]
STATUS_LABEL = {"lap_complete": "Lap complete", "off_track": "Off track",
                "time_up": "Time Up", "in_progress": "In progress"}
REWARD_BOUND = 1e5


class RewardFunctionError(Exception):
    pass


# ------------------------------------------------------------------ checkpoint names/files

def checkpoint_name(number, steps):
    return f"{number}_Step-{steps}.ckpt"


def checkpoint_number(name):
    return int(name.split("_Step")[0])


def checkpoint_files(name):
    """S3 names under model/ of one checkpoint (rl_coach/TensorFlow), plus its frozen graph."""
    number = checkpoint_number(name)
    return [name + ".index", name + ".data-00000-of-00001", name + ".meta",
            f"model_{number}.pb"]


def checkpoint_bodies(name, state):
    """The bytes of each file: the policy state is the data file's JSON."""
    data = json.dumps(state, sort_keys=True).encode()
    files = checkpoint_files(name)
    return {files[0]: (f"standin-index {name}\n").encode(), files[1]: data,
            files[2]: (f"standin-meta {name}\n").encode(),
            files[3]: b"standin-frozen-graph\n" + data}


def initial_state(pretrained=None, pretrained_from=None):
    if pretrained:
        return {"skill": pretrained["skill"], "iteration": 0, "steps": 0,
                "pretrained_from": pretrained_from, "episodes": 0}
    return {"skill": 0.0, "iteration": 0, "steps": 0, "pretrained_from": None, "episodes": 0}


def train(state, episodes, lr):
    """The next policy state after one iteration on these episode summaries."""
    mean_progress = sum(e["progress"] for e in episodes) / max(len(episodes), 1)
    rate = min(1.0, max(float(lr), 1e-8) / 3e-4) * 0.2
    skill = min(1.0, state["skill"] + rate * (1.0 - state["skill"]) * (0.5 + mean_progress / 200))
    return {**state, "skill": round(skill, 6), "iteration": state["iteration"] + 1,
            "steps": state["steps"] + sum(e["steps"] for e in episodes),
            "episodes": state["episodes"] + len(episodes)}


def models_to_delete(names, keep, best):
    """Checkpoint names to remove: all but the newest keep ones and the best."""
    ordered = sorted(set(names), key=checkpoint_number)
    kept = set(ordered[-keep:]) | ({best} if best else set())
    return [n for n in ordered if n not in kept]


def checkpoints_json(best, last):
    return {"best_checkpoint": best, "last_checkpoint": last}


def pick_checkpoint(doc, which):
    """Name of the best or last checkpoint of a deepracer_checkpoints.json (best falls back to
    last when no evaluation chose one yet, as the simapp does)."""
    if which == "best" and doc.get("best_checkpoint", {}).get("name"):
        return doc["best_checkpoint"]["name"]
    return doc["last_checkpoint"]["name"]


# ------------------------------------------------------------------ action space and car

def parse_action_space(metadata):
    kind = str(metadata.get("action_space_type", "discrete")).lower()
    space = metadata["action_space"]
    if kind == "continuous":
        steer, speed = space["steering_angle"], space["speed"]
        return {"type": "continuous", "steer": (float(steer["low"]), float(steer["high"])),
                "speed": (float(speed["low"]), float(speed["high"]))}
    return {"type": "discrete",
            "actions": [(float(a["steering_angle"]), float(a["speed"])) for a in space]}


def choose_action(space, offset, skill):
    """(steering deg, speed m/s, action column) the policy takes at this lateral offset."""
    wanted = max(-30.0, min(30.0, -offset * 60.0))
    if space["type"] == "continuous":
        low, high = space["steer"]
        steer = max(low, min(high, wanted))
        speed = space["speed"][0] + (space["speed"][1] - space["speed"][0]) * (0.5 + skill / 2)
        return steer, speed, -1
    index = min(range(len(space["actions"])),
                key=lambda k: (abs(space["actions"][k][0] - wanted), -space["actions"][k][1]))
    steer, speed = space["actions"][index]
    return steer, speed, index


def run_episode(track, space, skill, reward_fn, rng, start_dist, episode, sim_clock,
                wall_clock=0.0, max_seconds=180.0, stopper=None):
    """One episode from start_dist; returns (summary, simtrace rows). reward_fn None: no
    reward (evaluation)."""
    dist, offset, steps, total_reward = start_dist, 0.0, 0, 0.0
    rows, status, progress = [], "in_progress", 0.0
    noise, gain = 0.09 * (1.0 - skill) + 0.004, 0.05 + 0.3 * skill
    start_time = sim_clock
    while status == "in_progress":
        if stopper is not None and stopper.stop:
            break
        steer, speed, action = choose_action(space, offset, skill)
        steps += 1
        dist += max(speed, 0.1) / HZ
        offset += rng.gauss(0.0, noise) - gain * offset
        progress = min(100.0, 100.0 * (dist - start_dist) / track.length)
        sim_clock += 1.0 / HZ
        x, y, heading, _i, width = track.point_at(dist, offset)
        offtrack = abs(offset) > width / 2
        if offtrack:
            status = "off_track"
        elif progress >= 100.0:
            status = "lap_complete"
        elif sim_clock - start_time > max_seconds:
            status = "time_up"
        params = track.params(dist, offset, 0.0, speed, steer, steps, progress, offtrack, sim_clock)
        reward = 0.0
        if reward_fn is not None:
            try:
                reward = float(reward_fn(params))
            except Exception as err:  # the simapp stops the job on any error of the user's code
                raise RewardFunctionError(
                    f"reward_function raised {type(err).__name__}: {err}") from err
            if not math.isfinite(reward) or abs(reward) > REWARD_BOUND:
                raise RewardFunctionError(f"reward_function returned {reward!r}: must be a finite"
                                          " float in [-1e5, 1e5]")
        total_reward += reward
        rows.append(collections.OrderedDict(zip(SIMTRACE_COLUMNS, [
            episode, steps, f"{x:.4f}", f"{y:.4f}", f"{heading:.4f}", f"{steer:.2f}",
            f"{speed:.2f}", action, f"{reward:.4f}", status != "in_progress",
            params["all_wheels_on_track"], f"{progress:.4f}", params["closest_waypoints"][1],
            f"{track.length:.2f}", f"{sim_clock:.3f}", status, "0.00", 0,
            "%.4f" % (wall_clock + sim_clock)])))
    summary = {"episode": episode, "steps": steps, "reward": total_reward,
               "progress": progress, "status": status if status != "in_progress" else "time_up",
               "start_time": start_time, "end_time": sim_clock}
    return summary, rows


def simtrace_csv(rows):
    if not rows:
        return ",".join(SIMTRACE_COLUMNS) + "\n"
    lines = [",".join(SIMTRACE_COLUMNS)]
    lines += [",".join(str(v) for v in row.values()) for row in rows]
    return "\n".join(lines) + "\n"


def training_metric(summary, episode, trial, phase):
    """One entry of TrainingMetrics.json's "metrics" (simapp TrainingMetrics)."""
    return {"reward_score": int(round(summary["reward"])),
            "metric_time": int(round(summary["end_time"] * 1000)),
            "start_time": int(round(summary["start_time"] * 1000)),
            "elapsed_time_in_milliseconds": int(round(
                (summary["end_time"] - summary["start_time"]) * 1000)),
            "episode": episode, "trial": trial, "phase": phase,
            "completion_percentage": int(summary["progress"]),
            "episode_status": STATUS_LABEL[summary["status"]]}


def eval_metric(summary, trial):
    """One entry of an evaluation metrics file (simapp EvalMetrics)."""
    off = 1 if summary["status"] == "off_track" else 0
    return {"completion_percentage": int(summary["progress"]),
            "metric_time": int(round(summary["end_time"] * 1000)),
            "start_time": int(round(summary["start_time"] * 1000)),
            "elapsed_time_in_milliseconds": int(round(
                (summary["end_time"] - summary["start_time"]) * 1000)),
            "episode_status": STATUS_LABEL[summary["status"]],
            "crash_count": 0, "immobilized_count": 0, "off_track_count": off,
            "reversed_count": 0, "reset_count": off, "trial": trial}


def mp4_bytes(rows):
    """A minimal ISO base media file (ftyp + free + mdat with the car's path): the keys and
    container type of the simapp's videos, without frames."""
    def box(kind, payload):
        return len(payload).__add__(8).to_bytes(4, "big") + kind + payload
    path = "\n".join("{},{}".format(r["X"], r["Y"]) for r in rows).encode()
    return (box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2mp41") + box(b"free", b"standin")
            + box(b"mdat", path))


def with_eval_metadata_keys(params, postfix):
    """An evaluation YAML as the simapp reads it (yaml_file.py, _postprocess_yaml_values):
    MODEL_METADATA_FILE_S3_KEY is not in DRfC's evaluation params, so each model's is
    `<its MODEL_S3_PREFIX>/<postfix>` (model/model_metadata.json)."""
    if "MODEL_METADATA_FILE_S3_KEY" in params:
        return params
    prefixes = params.get("MODEL_S3_PREFIX")
    if prefixes is None:
        return params
    if not isinstance(prefixes, list):
        prefixes = [prefixes]
    return {**params,
            "MODEL_METADATA_FILE_S3_KEY": [f"{prefix}/{postfix}" for prefix in prefixes]}
