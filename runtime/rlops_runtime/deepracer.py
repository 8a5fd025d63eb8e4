"""The DeepRacer backend's stack on its host: the one owner of how it starts, stops, is read,
evaluated and uploaded (`rlops-run deepracer up|stop|running|upload-model`; the session's
driver, agents/deepracer.py; `session evaluate` of a deepracer session).

The stack is deepracer_stack's compose project (run.json's `deepracer`: project names, the
rendered training.yml / evaluation.yml, the compose command, DR_RUN_ID, the model prefix in
the session's bucket). Its S3 objects are read and written with the session's S3 client
(storage.env: credentials and RLOPS_S3_ENDPOINT_URL) rooted at the bucket, beside the
session's own `<prefix>/<session>/`.

The trap it exists for: rl_coach starts the trainer through the docker socket with a compose
file of its own under /tmp/sagemaker (SageMaker local mode), so the project's `down` leaves
the trainer running. `stop_training` finds it by what compose put on its container
(session_contract.trainer_containers, the rule deepracer_stack's stop shares): the label
naming its compose file (under the sagemaker dir) and the file's environment (RUN_ID is the
stack's, TRAINING_JOB_NAME the model prefix), as DRfC's stop.sh greps the file, never by
container name (compose v1 names `tmpX_algo-1-x_1`, v2 `tmpX-algo-1-x-1`); `docker inspect`
reads both with the docker group's rights (the SDK's folders are root's, 0700). It stops and
removes that container (`docker stop`, as compose does, then `docker rm`), then takes the
project down.

Decisions are pure functions (tested without Docker or S3); the shell runs compose and the
storage client. Nothing here deletes an S3 object or a file the user made.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .jsonio import read_json, utc_iso, write_json_atomic
from .session_contract import (
    CONFIG_FILES_LABEL,
    DEEPRACER_KEY,
    ContractError,
    deepracer_problems,
    parse_storage_uri,
    trainer_containers,
)

log = logging.getLogger(__name__)

TRAINING_FILE = "training.yml"
EVALUATION_FILE = "evaluation.yml"
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
COMPOSE_TIMEOUT = 300.0
# The simapp's keys under a model prefix (deepracer-simapp bundle/markov/boto/s3/constants.py).
CHECKPOINTS_JSON = "model/deepracer_checkpoints.json"
COACH_CHECKPOINT = "model/.coach_checkpoint"
FINISHED = "model/.finished"
MODEL_METADATA = "model/model_metadata.json"
HYPERPARAMETERS = "ip/hyperparameters.json"
TRAINING_PARAMS = "training_params.yaml"
EVALUATION_PARAMS = "evaluation_params.yaml"
SIMTRACE_DIR = "training-simtrace"
METRICS_NAME = "TrainingMetrics.json"
CHECKPOINT_RE = re.compile(r"^(?P<number>[0-9]+)_Step-(?P<steps>[0-9]+)\.ckpt$")
# A line of DRfC's params YAML: every key and scalar single-quoted (prepare-config.py).
_PARAM_LINE = re.compile(r"^'(?P<key>[^']+)':(?: '(?P<value>(?:[^']|'')*)')?\s*$")
_PARAM_ITEM = re.compile(r"^- '(?P<value>(?:[^']|'')*)'\s*$")


class DeepRacerError(Exception):
    """The stack cannot do what was asked; the message says what and why."""


@dataclass(frozen=True)
class Stack:
    """run.json's `deepracer` object (session_contract.deepracer_problems)."""

    project: str
    eval_project: str
    compose_command: tuple[str, ...]
    compose_dir: Path
    sagemaker_dir: Path
    run_id: int
    model_prefix: str
    bucket: str
    metrics_prefix: str
    pretrained_prefix: str | None = None
    upload_target: str | None = None
    training_minutes: float | None = None

    @classmethod
    def from_dict(cls, obj: Any) -> Stack:
        problems = deepracer_problems(obj)
        if problems:
            raise DeepRacerError("run.json: " + "; ".join(problems))
        return cls(obj["project"], obj["eval_project"], tuple(obj["compose_command"]),
                   Path(obj["compose_dir"]), Path(obj["sagemaker_dir"]), int(obj["run_id"]),
                   obj["model_prefix"], obj["bucket"], obj["metrics_prefix"],
                   obj.get("pretrained_prefix"), obj.get("upload_target"),
                   obj.get("training_minutes"))

    @classmethod
    def of_session(cls, run_json: Path) -> Stack:
        data = read_json(run_json)
        if not isinstance(data, dict) or not isinstance(data.get(DEEPRACER_KEY), dict):
            raise DeepRacerError(f"{run_json} has no {DEEPRACER_KEY} object: the session is "
                                 "not a DeepRacer session")
        return cls.from_dict(data[DEEPRACER_KEY])

    @property
    def training_file(self) -> Path:
        return self.compose_dir / TRAINING_FILE

    @property
    def evaluation_file(self) -> Path:
        return self.compose_dir / EVALUATION_FILE

    def key(self, postfix: str, prefix: str | None = None) -> str:
        return f"{prefix or self.model_prefix}/{postfix}"

    @property
    def metrics_key(self) -> str:
        return f"{self.metrics_prefix}/{METRICS_NAME}"


# --------------------------------------------------------------------------- decisions


def compose_argv(command: tuple[str, ...] | list[str], files: list[Path | str],
                 project: str | None, *args: str) -> list[str]:
    """`<compose> [--project-name P] --file F ... <args>` (v1 and v2 take the same words)."""
    argv = list(command)
    if project:
        argv += ["--project-name", project]
    for name in files:
        argv += ["--file", str(name)]
    return argv + list(args)


def docker_ps_argv(command: tuple[str, ...] | list[str], project: str,
                   service: str | None = None) -> list[str]:
    """The running containers of a compose project (and service), by compose's labels (the
    same in v1 and v2), with the docker CLI compose runs beside."""
    argv = [docker_cli(command), "ps", "--quiet", "--filter", f"label={PROJECT_LABEL}={project}"]
    if service:
        argv += ["--filter", f"label={SERVICE_LABEL}={service}"]
    return argv


def checkpoint_number(name: str | None) -> int | None:
    """N of a simapp checkpoint name `N_Step-S.ckpt`; None for anything else."""
    match = CHECKPOINT_RE.match(name or "")
    return int(match.group("number")) if match else None


def checkpoint_names(doc: Any) -> dict[str, str | None]:
    """last and best checkpoint names of deepracer_checkpoints.json (None where absent)."""
    doc = doc if isinstance(doc, dict) else {}

    def name(key: str) -> str | None:
        entry = doc.get(key)
        value = entry.get("name") if isinstance(entry, dict) else None
        return value if isinstance(value, str) and value else None

    return {"last": name("last_checkpoint"), "best": name("best_checkpoint")}


def training_summary(metrics_doc: Any, episodes_per_iteration: int | None) -> dict[str, Any]:
    """TrainingMetrics.json read as the status shows it: training episodes, the iteration
    they make (episodes per iteration from the trainer's hyperparameters), the mean reward
    and mean completion % of the last complete iteration's episodes (of all so far before
    the first)."""
    entries = metrics_doc.get("metrics") if isinstance(metrics_doc, dict) else None
    training = [m for m in entries or [] if isinstance(m, dict)
                and m.get("phase", "training") == "training"]
    per = episodes_per_iteration if episodes_per_iteration and episodes_per_iteration > 0 else 0
    iteration = len(training) // per if per else None
    recent = training[(iteration - 1) * per: iteration * per] if iteration else training

    def mean(key: str) -> float | None:
        values = [float(m[key]) for m in recent if isinstance(m.get(key), (int, float))]
        return round(sum(values) / len(values), 3) if values else None

    return {"episodes": len(training), "iteration": iteration,
            "mean_return": mean("reward_score"), "progress": mean("completion_percentage")}


def checkpoint_keys(keys: list[str], model_prefix: str, name: str) -> list[str]:
    """The objects of one simapp checkpoint under `<prefix>/model/`: `<name>.*` (index,
    data, meta) and its frozen graph `model_<N>.pb`."""
    number = checkpoint_number(name)
    base = f"{model_prefix}/model/"
    wanted = [k for k in keys if k.startswith(base) and (
        k[len(base):].startswith(f"{name}.")
        or (number is not None and k[len(base):] == f"model_{number}.pb"))]
    return sorted(wanted)


def parse_params(text: str) -> dict[str, Any]:
    """DRfC's params YAML (prepare-config.py: every key and scalar single-quoted, lists as
    `- 'v'` items) as a dict of strings and lists of strings, without a YAML library."""
    doc: dict[str, Any] = {}
    current = None
    for line in text.splitlines():
        if not line.strip() or line.strip() == "---":
            continue
        pair = _PARAM_LINE.match(line)
        if pair:
            current = pair.group("key").replace("''", "'")
            value = pair.group("value")
            doc[current] = [] if value is None else value.replace("''", "'")
            continue
        item = _PARAM_ITEM.match(line)
        if item and current is not None and isinstance(doc.get(current), list):
            doc[current].append(item.group("value").replace("''", "'"))
            continue
        raise DeepRacerError(f"params YAML line {line!r} is not DRfC's form ('KEY': 'value')")
    return doc


def render_params(doc: dict[str, Any]) -> str:
    """parse_params's inverse: DRfC's all-quoted form, keys sorted, `---` first."""
    def quote(value: str) -> str:
        return "'" + str(value).replace("'", "''") + "'"

    lines = ["---"]
    for key in sorted(doc):
        value = doc[key]
        if isinstance(value, list):
            lines.append(f"{quote(key)}:")
            lines += [f"- {quote(v)}" for v in value]
        else:
            lines.append(f"{quote(key)}: {quote(value)}")
    return "\n".join(lines) + "\n"


def first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else value


def evaluation_result(metrics_doc: Any) -> dict[str, Any]:
    """The evaluation's answer from its metrics file (the simapp's EvalMetrics entries):
    trials, mean progress, mean and best lap time of the completed laps, per-trial rows."""
    entries = metrics_doc.get("metrics") if isinstance(metrics_doc, dict) else None
    rows = []
    for entry in entries or []:
        if not isinstance(entry, dict):
            continue
        progress = entry.get("completion_percentage")
        elapsed = entry.get("elapsed_time_in_milliseconds")
        rows.append({"trial": entry.get("trial"), "progress": progress,
                     "lap_time": round(elapsed / 1000, 3)
                     if isinstance(elapsed, (int, float)) and progress == 100 else None,
                     "status": entry.get("episode_status"),
                     "off_track": entry.get("off_track_count"),
                     "crashes": entry.get("crash_count")})
    progresses = [r["progress"] for r in rows if isinstance(r["progress"], (int, float))]
    laps = [r["lap_time"] for r in rows if r["lap_time"] is not None]
    return {"episodes": len(rows),
            "mean_progress": round(sum(progresses) / len(progresses), 3) if progresses else None,
            "laps_completed": len(laps),
            "mean_lap_time": round(sum(laps) / len(laps), 3) if laps else None,
            "best_lap_time": min(laps) if laps else None, "trials": rows}


def upload_plan(source: str, target_prefix: str, keys: list[str], checkpoints_doc: Any,
                which: str = "last") -> dict[str, Any]:
    """What dr-upload-model copies (scripts/upload/upload-model.sh), as {"checkpoint": name,
    "copy": [[source key, target key]], "write": {target key: bytes-as-text}} for a model
    `source` (its prefix, `keys` its objects) to `target_prefix`: the chosen checkpoint's
    files (last or best), deepracer_checkpoints.json rewritten so that last = best = it,
    .coach_checkpoint naming it, model_metadata.json (in model/ and at the top), the
    reward function, ip/hyperparameters.json, metrics/. DeepRacerError naming what is
    missing, before anything is copied (as the script aborts)."""
    names = checkpoint_names(checkpoints_doc)
    name = names.get(which)
    if which not in ("last", "best"):
        raise DeepRacerError(f"upload-model takes the last or the best checkpoint, not {which!r}")
    if not name:
        raise DeepRacerError(f"s3 {source}/{CHECKPOINTS_JSON} names no {which} checkpoint: "
                             "has the model trained one yet?")
    files = checkpoint_keys(keys, source, name)
    if not any(k.endswith(".index") for k in files):
        raise DeepRacerError(f"checkpoint {name} of {source} has no files under "
                             f"{source}/model/ (the trainer keeps the newest four and the best)")
    have = set(keys)
    missing = [k for k in (f"{source}/{MODEL_METADATA}", f"{source}/{HYPERPARAMETERS}")
               if k not in have]
    reward = f"{source}/reward_function.py"
    if reward not in have:
        missing.append(reward)
    if missing:
        raise DeepRacerError(f"upload-model of {source}: missing {', '.join(missing)}")
    entry = {}
    for key in ("last_checkpoint", "best_checkpoint"):
        candidate = checkpoints_doc.get(key) if isinstance(checkpoints_doc, dict) else None
        if isinstance(candidate, dict) and candidate.get("name") == name:
            entry = candidate
    chosen = {**entry, "name": name}
    copy = [[k, f"{target_prefix}/model/{k.rsplit('/', 1)[1]}"] for k in files]
    copy += [[f"{source}/{MODEL_METADATA}", f"{target_prefix}/{MODEL_METADATA}"],
             [f"{source}/{MODEL_METADATA}", f"{target_prefix}/model_metadata.json"],
             [reward, f"{target_prefix}/reward_function.py"],
             [f"{source}/{HYPERPARAMETERS}", f"{target_prefix}/{HYPERPARAMETERS}"]]
    copy += [[k, f"{target_prefix}/{k[len(source) + 1:]}"] for k in sorted(have)
             if k.startswith(f"{source}/metrics/")]
    both = {"last_checkpoint": chosen, "best_checkpoint": chosen}
    write = {f"{target_prefix}/{CHECKPOINTS_JSON}": json.dumps(both),
             f"{target_prefix}/{COACH_CHECKPOINT}": name}
    return {"checkpoint": name, "copy": copy, "write": write}


def retarget_params(doc: dict[str, Any], bucket: str, prefix: str) -> dict[str, Any]:
    """A model's training params as they read at its new place (bug not copied:
    upload-model.sh leaves the target's bucket and prefix unexported, so its YAML names the
    script's defaults)."""
    out = dict(doc)
    for key in ("SAGEMAKER_SHARED_S3_BUCKET", "METRICS_S3_BUCKET", "SIMTRACE_S3_BUCKET"):
        if key in out:
            out[key] = bucket
    for key in ("SAGEMAKER_SHARED_S3_PREFIX", "SIMTRACE_S3_PREFIX"):
        if key in out:
            out[key] = prefix
    if "METRICS_S3_OBJECT_KEY" in out:
        out["METRICS_S3_OBJECT_KEY"] = f"{prefix}/metrics/{METRICS_NAME}"
    return out


# --------------------------------------------------------------------------- the shell


def run(argv: list[str], timeout: float = COMPOSE_TIMEOUT,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """One compose or docker command; DeepRacerError with its output when it fails."""
    log.info("%s", " ".join(argv))
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              cwd=cwd, stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DeepRacerError(f"{' '.join(argv)}: {exc}") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise DeepRacerError(f"{' '.join(argv)} exited {proc.returncode}: " + " | ".join(tail))
    return proc


def running(stack: Stack, project: str | None = None, service: str | None = None) -> list[str]:
    """The ids of the project's running containers (the training's unless named)."""
    out = run(docker_ps_argv(stack.compose_command, project or stack.project, service),
              timeout=60).stdout
    return out.split()


def up(stack: Stack, check: bool = False) -> dict[str, Any]:
    """The training project up (`--detach`) unless one of its containers runs; never
    wipes anything (the model prefix's guard is deepracer_stack's upload)."""
    if not stack.training_file.is_file():
        raise DeepRacerError(f"{stack.training_file} is missing: deepracer_stack's compose "
                             "entry point renders it")
    if running(stack):
        return {"changed": False, "msg": f"project {stack.project} is running"}
    if not check:
        run(compose_argv(stack.compose_command, [stack.training_file], stack.project,
                         "up", "--detach"), cwd=stack.compose_dir)
    return {"changed": True, "msg": f"project {stack.project} started"}


def docker_cli(command: tuple[str, ...] | list[str]) -> str:
    """The docker CLI beside the compose command (`docker compose`'s own, or `docker`)."""
    return command[0] if command and Path(command[0]).name == "docker" else "docker"


def find_trainers(stack: Stack) -> list[dict[str, Any]]:
    """The trainer containers of this training (trainer_containers) on this host now."""
    docker = docker_cli(stack.compose_command)
    ids = run([docker, "ps", "--all", "--quiet", "--filter", f"label={CONFIG_FILES_LABEL}"],
              timeout=60).stdout.split()
    if not ids:
        return []
    try:
        inspected = json.loads(run([docker, "inspect", *ids], timeout=60).stdout or "[]")
    except (ValueError, DeepRacerError):  # one went away between ps and inspect: ask again
        inspected = json.loads(run([docker, "inspect", *ids], timeout=60).stdout or "[]")
    return trainer_containers(inspected, stack.sagemaker_dir, stack.run_id, stack.model_prefix)


def stop_training(stack: Stack, check: bool = False) -> dict[str, Any]:
    """Stop the training: the trainer rl_coach started outside the project (found by its
    compose labels and environment: find_trainers) stopped as compose stops it and removed,
    then the project down."""
    docker = docker_cli(stack.compose_command)
    trainers = find_trainers(stack)
    running_ids = [t["id"] for t in trainers if t["running"]]
    actions = [f"stop the trainer {t['name']} ({', '.join(t['config_files'])})"
               for t in trainers if t["running"]]
    if trainers:
        actions.append(f"remove {', '.join(t['name'] for t in trainers)}")
    if not check:
        if running_ids:
            run([docker, "stop", *running_ids])  # SIGTERM, SIGKILL after 10 s: compose's stop
        if trainers:
            run([docker, "rm", "--force", *[t["id"] for t in trainers]])
    project_up = bool(running(stack))
    if project_up or stack.training_file.is_file():
        actions.append(f"project {stack.project} down")
        if not check:
            run(compose_argv(stack.compose_command, [stack.training_file], stack.project,
                             "down"), cwd=stack.compose_dir)
    return {"changed": bool(trainers) or project_up,
            "trainers": [{k: t[k] for k in ("name", "config_files", "running")}
                         for t in trainers], "actions": actions}


def bucket_storage(bucket: str) -> Any:
    """The session's S3 client rooted at `bucket` (credentials and endpoint from the
    environment: the supervisor's storage.env)."""
    from .storage import open_storage

    return open_storage(f"s3://{bucket}")


def get_json(storage: Any, key: str) -> Any:
    data = storage.get_bytes(key)
    if data is None:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return None  # being replaced: read again at the next look


def episodes_per_iteration(storage: Any, stack: Stack) -> int | None:
    hp = get_json(storage, stack.key(HYPERPARAMETERS))
    value = hp.get("num_episodes_between_training") if isinstance(hp, dict) else None
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def read_state(storage: Any, stack: Stack) -> dict[str, Any]:
    """The model's state in the bucket: checkpoint names, training summary, finished."""
    checkpoints = get_json(storage, stack.key(CHECKPOINTS_JSON))
    names = checkpoint_names(checkpoints)
    summary = training_summary(get_json(storage, stack.metrics_key),
                               episodes_per_iteration(storage, stack))
    return {"model_prefix": stack.model_prefix, **summary,
            "last_checkpoint": names["last"], "best_checkpoint": names["best"],
            "finished": storage.exists(stack.key(FINISHED))}


def upload_model(stack: Stack, target: str | None = None, which: str = "last",
                 source: str | None = None, storage_for: Callable[[str], Any] = bucket_storage,
                 check: bool = False) -> dict[str, Any]:
    """dr-upload-model: the model's chosen checkpoint and what a DeepRacer console import
    needs, copied to `target` (s3://bucket/prefix; run.json's upload_target unless given),
    with the session's S3 client. Nothing on the target is deleted (DRfC's -w is not here)."""
    target = target or stack.upload_target
    if not target:
        raise DeepRacerError("upload-model needs a target s3://bucket/prefix (the session's "
                             "deepracer.upload_target is not set)")
    try:
        parsed = parse_storage_uri(target)
    except ContractError as exc:
        raise DeepRacerError(str(exc)) from None
    if parsed.scheme != "s3" or not parsed.prefix:
        raise DeepRacerError(f"upload-model's target must be s3://bucket/prefix, got {target!r}")
    source = source or stack.model_prefix
    src = storage_for(stack.bucket)
    keys = src.list_keys(f"{source}/")
    plan = upload_plan(source, parsed.prefix, keys, get_json(src, f"{source}/{CHECKPOINTS_JSON}"),
                       which)
    params = src.get_bytes(f"{source}/{TRAINING_PARAMS}")
    if params is not None:
        doc = retarget_params(parse_params(params.decode()), parsed.location, parsed.prefix)
        plan["write"][f"{parsed.prefix}/{TRAINING_PARAMS}"] = render_params(doc)
    answer = {"source": f"s3://{stack.bucket}/{source}", "target": target,
              "checkpoint": plan["checkpoint"], "objects": len(plan["copy"]) + len(plan["write"]),
              "changed": not check}
    if check:
        return answer
    dst = src if parsed.location == stack.bucket else storage_for(parsed.location)
    for from_key, to_key in plan["copy"]:
        data = src.get_bytes(from_key)
        if data is None:
            raise DeepRacerError(f"s3://{stack.bucket}/{from_key} went away during the upload")
        dst.put_bytes(to_key, data)
    for to_key, text in plan["write"].items():
        dst.put_bytes(to_key, text.encode())
    return answer


# --------------------------------------------------------------------------- evaluation


@dataclass
class Evaluation:
    """One evaluation run's keys, from the evaluation params YAML deepracer_stack uploaded."""

    metrics_key: str
    trials: int
    mp4_prefix: str | None
    simtrace_prefix: str | None
    checkpoint: str


def evaluation_keys(params: dict[str, Any], stack: Stack) -> Evaluation:
    metrics = first(params.get("METRICS_S3_OBJECT_KEY"))
    if not metrics:
        raise DeepRacerError(f"s3://{stack.bucket}/{stack.key(EVALUATION_PARAMS)} has no "
                             "METRICS_S3_OBJECT_KEY")
    try:
        trials = int(first(params.get("NUMBER_OF_TRIALS")) or 0)
    except ValueError:
        trials = 0
    mp4 = first(params.get("MP4_S3_OBJECT_PREFIX")) if params.get("MP4_S3_BUCKET") else None
    return Evaluation(metrics, trials, mp4 or None,
                      first(params.get("SIMTRACE_S3_PREFIX")) or None,
                      str(first(params.get("EVAL_CHECKPOINT")) or "last"))


def evaluate_run(stack: Stack, eval_dir: Path, timeout: float,
                 storage: Any | None = None, poll: float = 2.0) -> dict[str, Any]:
    """The evaluation project up, robomaker waited for (until it exits, or DeepRacerError
    after `timeout` s), the project down; then the metrics read and the MP4s, metrics and
    simtrace copied into eval_dir. The params YAML is deepracer_stack's (uploaded first)."""
    from .waiting import wait_for

    storage = storage or bucket_storage(stack.bucket)
    if not stack.evaluation_file.is_file():
        raise DeepRacerError(f"{stack.evaluation_file} is missing: deepracer_stack's compose "
                             "entry point renders it")
    if running(stack):
        raise DeepRacerError(f"the training project {stack.project} is running: stop the "
                             "session before evaluating it")
    raw = storage.get_bytes(stack.key(EVALUATION_PARAMS))
    if raw is None:
        raise DeepRacerError(f"s3://{stack.bucket}/{stack.key(EVALUATION_PARAMS)} is missing: "
                             "deepracer_stack uploads the evaluation params first")
    keys = evaluation_keys(parse_params(raw.decode()), stack)
    before = storage.get_bytes(keys.metrics_key)
    files = [stack.evaluation_file]
    run(compose_argv(stack.compose_command, files, stack.eval_project, "up", "--detach"),
        cwd=stack.compose_dir)
    try:
        done = wait_for(lambda: True if not running(stack, stack.eval_project, "robomaker")
                        else None, timeout, poll)
    finally:
        run(compose_argv(stack.compose_command, files, stack.eval_project, "down"),
            cwd=stack.compose_dir)
    if done is None:
        raise DeepRacerError(f"the evaluation's robomaker did not finish within {timeout:g} s")
    data = storage.get_bytes(keys.metrics_key)
    if data is None or data == before:
        logs = compose_argv(stack.compose_command, files, stack.eval_project, "logs")
        raise DeepRacerError(f"the evaluation wrote no new metrics at s3://{stack.bucket}/"
                             f"{keys.metrics_key} (its robomaker's log: {' '.join(logs)})")
    doc = json.loads(data)
    eval_dir.mkdir(parents=True, exist_ok=True)
    (eval_dir / "deepracer-evaluation-metrics.json").write_bytes(data)
    copied = []
    for prefix, kind in ((keys.mp4_prefix, ".mp4"), (keys.simtrace_prefix, ".csv")):
        for key in storage.list_keys(f"{prefix}/") if prefix else []:
            if key.endswith(kind):
                name = key[len(prefix) + 1:].replace("/", "-")
                payload = storage.get_bytes(key)
                if payload is not None:
                    (eval_dir / name).write_bytes(payload)
                    copied.append(name)
    result = {"model_prefix": stack.model_prefix, "checkpoint": keys.checkpoint,
              "metrics_key": keys.metrics_key, "asked_trials": keys.trials,
              **evaluation_result(doc), "copied": sorted(copied), "finished": utc_iso()}
    write_json_atomic(eval_dir / "eval.json", result)
    return result


def evaluate_session(layout: Any, episodes: int, video: bool,
                     timeout: float | None = None) -> dict[str, Any]:
    """`session evaluate` of a DeepRacer session: the stack's evaluation with the session's
    storage credentials (episodes and video are the params YAML's, set by the controller;
    a different trial count is said in the answer)."""
    from .supervisor import load_storage_env

    os.environ.update(load_storage_env(layout))
    stack = Stack.of_session(layout.run_json)
    wait = timeout if timeout is not None else float(
        os.environ.get("RLOPS_DEEPRACER_EVAL_TIMEOUT") or 600 + 120 * episodes)
    result = evaluate_run(stack, layout.eval_dir, wait)
    if result["asked_trials"] and result["asked_trials"] != episodes:
        result["note"] = (f"the evaluation params ask for {result['asked_trials']} trials, "
                          f"not {episodes}")
    result["video"] = video
    return result


def wait_seconds(started: float, minutes: float | None) -> float | None:
    """Seconds left of training_minutes from `started` (monotonic); None without a limit."""
    if not minutes:
        return None
    return started + minutes * 60 - time.monotonic()


# --------------------------------------------------------------------------- the command


DR_ACTIONS = ("up", "stop", "running", "upload-model")


def add_parser(sub: Any) -> None:
    """`rlops-run deepracer up|stop|running|upload-model`: the stack's rules for the
    deepracer_stack role's own start and stop entry points and for a user's hand."""
    cmd = sub.add_parser(
        "deepracer", help="the DeepRacer stack on this host: up, stop (the trainer rl_coach "
                          "started too), running, upload-model; answers in JSON")
    cmd.add_argument("action", choices=DR_ACTIONS)
    source = cmd.add_mutually_exclusive_group(required=True)
    source.add_argument("--session-dir", help="a DeepRacer session: its run.json's deepracer "
                                              "object and its storage.env")
    source.add_argument("--stack-stdin", action="store_true",
                        help='JSON on stdin: {"deepracer": {run.json\'s deepracer object}, '
                             '"credentials": {the S3 client\'s environment}}')
    cmd.add_argument("--target", help="upload-model: s3://bucket/prefix (default: the "
                                      "stack's upload_target)")
    cmd.add_argument("--checkpoint", choices=["last", "best"], default="last",
                     help="upload-model: which checkpoint (dr-upload-model's default: last)")
    cmd.add_argument("--check", action="store_true", help="say what would be done, change "
                                                          "nothing")
    cmd.set_defaults(func=cmd_deepracer)


def stack_from_args(args: Any, stdin: str) -> Stack:
    if args.session_dir:
        from .supervisor import parse_env_file

        root = Path(args.session_dir)
        env_file = root / "config" / "storage.env"
        if env_file.is_file():
            os.environ.update(parse_env_file(env_file.read_text()))
        return Stack.of_session(root / "config" / "run.json")
    from .jsonio import parse_json_object

    try:
        data = parse_json_object(stdin, "--stack-stdin")
    except ValueError as exc:
        raise DeepRacerError(str(exc)) from None
    credentials = data.get("credentials") or {}
    if not isinstance(credentials, dict):
        raise DeepRacerError("--stack-stdin: credentials must be an object of names to values")
    os.environ.update({str(k): str(v) for k, v in credentials.items()})
    return Stack.from_dict(data.get(DEEPRACER_KEY))


def cmd_deepracer(args: Any) -> int:
    import sys

    try:
        stack = stack_from_args(args, sys.stdin.read() if args.stack_stdin else "")
    except DeepRacerError as exc:  # bad input: nothing was done
        print(f"rlops-run: error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.action == "up":
            answer = up(stack, check=args.check)
        elif args.action == "stop":
            answer = stop_training(stack, check=args.check)
        elif args.action == "running":
            ids = running(stack)
            answer = {"running": bool(ids), "containers": ids, "changed": False}
        else:
            answer = upload_model(stack, args.target, args.checkpoint, check=args.check)
    except DeepRacerError as exc:
        print(f"rlops-run: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"ok": True, "project": stack.project, **answer}, indent=2))
    return 0
