"""The DeepRacer backend's job: a driver of the session's DeepRacer stack, run by the ordinary
supervisor (as agents/rllib.py is the Ray backend's), so the session has the same status.json,
notices, complete-or-nothing checkpoints, LATEST and sync as any other.

    python -m rlops_runtime.agents.deepracer train     configured by the RLOPS_* variables

The stack (run.json's `deepracer`) is driven through rlops_runtime.deepracer, the one owner of
its rules:

- start: the training project up unless it runs (a model prefix that has finished is refused:
  a resume trains a new model prefix, the increment).
- every RLOPS_DEEPRACER_POLL seconds (5): the model's deepracer_checkpoints.json and the
  training metrics read from the bucket; the progress file (step = the session's episodes,
  mean_return = the last iteration's mean reward, `deepracer` = model prefix, iteration,
  progress, checkpoints); the metrics, checkpoints json, hyperparameters, params and
  simtrace CSVs mirrored into the session's folder (`deepracer/<model prefix>/`, which
  retrieve's pack brings home); a session checkpoint of the model's checkpoint files each
  time last_checkpoint changes (contract.save_checkpoint, so LATEST names it and the
  supervisor syncs it).
- SIGUSR1 (the supervisor's checkpoint request, before a stop or on a notice): a session
  checkpoint of the model's newest checkpoint now.
- SIGTERM (stop, or a spot notice; the supervisor has asked for a checkpoint and published
  it first): the training stopped (the trainer rl_coach started, then the project down), the
  model's newest checkpoint saved, upload-model to deepracer.upload_target when set; exit 0.
- the trainer finishing by itself (model/.finished) or training_minutes passed: the same
  stop without the upload for the first; exit 0.

The session's step is its episodes across models: an increment's new model continues from
the step its pretrained session checkpoint reached (rlops_deepracer.json in each checkpoint).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .. import deepracer as dr
from ..contract import CheckpointRequest, report_progress, save_checkpoint
from ..jsonio import write_bytes_atomic
from ..manifest import step_dirname
from ..storage import StorageError

log = logging.getLogger(__name__)

STATE_FILE = "rlops_deepracer.json"
MIRROR_DIR = "deepracer"
POLL_S = 5.0
# Small objects mirrored every look (the simtrace CSVs once each: they are written whole).
MIRRORED = (dr.CHECKPOINTS_JSON, dr.HYPERPARAMETERS, dr.TRAINING_PARAMS)


@dataclass
class DriverConfig:
    session_id: str
    session_dir: Path
    checkpoint_dir: Path
    resume_from: Path | None
    progress_file: Path | None
    stack: dr.Stack
    poll: float

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> DriverConfig:
        for name in ("RLOPS_SESSION_DIR", "RLOPS_CHECKPOINT_DIR"):
            if not environ.get(name):
                raise ValueError(f"{name} is not set: run the driver under rlops-run")
        session_dir = Path(environ["RLOPS_SESSION_DIR"])
        return cls(
            session_id=environ.get("RLOPS_SESSION_ID", ""),
            session_dir=session_dir,
            checkpoint_dir=Path(environ["RLOPS_CHECKPOINT_DIR"]),
            resume_from=Path(environ["RLOPS_RESUME_FROM"])
            if environ.get("RLOPS_RESUME_FROM") else None,
            progress_file=Path(environ["RLOPS_PROGRESS_FILE"])
            if environ.get("RLOPS_PROGRESS_FILE") else None,
            stack=dr.Stack.of_session(session_dir / "config" / "run.json"),
            poll=float(environ.get("RLOPS_DEEPRACER_POLL") or POLL_S),
        )


# --- Decisions -----------------------------------------------------------------------------
def resume_base(state: dict[str, Any] | None, model_prefix: str) -> tuple[int, str | None]:
    """(the session's step before this model's episodes, the model checkpoint already saved)
    from the resumed checkpoint's rlops_deepracer.json: the same model continues its count;
    a new model prefix (an increment) starts after the step the session reached."""
    if not state:
        return 0, None
    if state.get("model_prefix") == model_prefix:
        return int(state.get("base_step", 0)), state.get("checkpoint")
    return int(state.get("step", 0)), None


def checkpoint_step(base: int, episodes: int, last_saved: int | None) -> int:
    """A new session checkpoint's step: the session's episodes, always past the last one."""
    step = base + episodes
    return step if last_saved is None or step > last_saved else last_saved + 1


def simtrace_to_fetch(keys: list[str], have: set[str]) -> list[str]:
    """The simtrace CSVs not mirrored yet, and the newest again (a worker may rewrite it)."""
    csvs = sorted((k for k in keys if k.endswith(".csv")), key=_iteration_of)
    newest = csvs[-1:] if csvs else []
    return [k for k in csvs if k not in have or k in newest]


def _iteration_of(key: str) -> tuple[int, str]:
    head = key.rsplit("/", 1)[-1].split("-", 1)[0]
    return (int(head) if head.isdigit() else -1, key)


# --- The driver ----------------------------------------------------------------------------
class Driver:
    """One run of the session's stack: up, watch, checkpoint, stop."""

    def __init__(self, cfg: DriverConfig, request: CheckpointRequest, stop: threading.Event,
                 wake: threading.Event | None = None, storage: Any = None) -> None:
        self.cfg = cfg
        self.stack = cfg.stack
        self.request = request
        self.stop = stop
        self.wake = wake or stop  # set by a signal: the loop looks at once
        self.storage = storage if storage is not None else dr.bucket_storage(self.stack.bucket)
        state = None
        if cfg.resume_from and (cfg.resume_from / STATE_FILE).is_file():
            state = json.loads((cfg.resume_from / STATE_FILE).read_text())
        self.base, self.saved_name = resume_base(state, self.stack.model_prefix)
        self.last_step: int | None = int(state["step"]) if state else None
        self.state: dict[str, Any] = {}
        self.mirrored: set[str] = set()
        self.mirror_root = cfg.session_dir / MIRROR_DIR / self.stack.model_prefix

    # reading ------------------------------------------------------------------------
    def look(self) -> dict[str, Any]:
        self.state = dr.read_state(self.storage, self.stack)
        return self.state

    def report(self) -> None:
        if not self.cfg.progress_file:
            return
        state = self.state
        episodes = state.get("episodes", 0)
        report_progress(self.cfg.progress_file, step=self.base + episodes,
                        episodes=self.base + episodes, mean_return=state.get("mean_return"),
                        deepracer={"pretrained_prefix": self.stack.pretrained_prefix,
                                   **{key: state.get(key) for key in (
                                       "model_prefix", "iteration", "episodes", "progress",
                                       "last_checkpoint", "best_checkpoint", "finished")}})

    def mirror(self) -> None:
        """The model's small objects and simtrace into deepracer/<model prefix>/ (rewritten
        atomically: a pack reads whole files)."""
        stack, storage = self.stack, self.storage
        keys = [stack.key(k) for k in MIRRORED] + [stack.metrics_key]
        keys += simtrace_to_fetch(storage.list_keys(stack.key(dr.SIMTRACE_DIR) + "/"),
                                  self.mirrored)
        for key in keys:
            data = storage.get_bytes(key)
            if data is None:
                continue
            relative = (f"metrics/{dr.METRICS_NAME}" if key == stack.metrics_key
                        else key[len(stack.model_prefix) + 1:])
            # Rewritten every look: whole for a pack, not fsynced (storage holds the original).
            write_bytes_atomic(self.mirror_root / relative, data, durable=False)
            self.mirrored.add(key)

    # checkpoints --------------------------------------------------------------------
    def checkpoint(self, force: bool = False) -> Path | None:
        """A session checkpoint of the model's newest checkpoint when it is new (or `force`:
        a request); None when there is none yet or its files were rotated away."""
        self.request.clear()
        name = self.state.get("last_checkpoint")
        if not name or (name == self.saved_name and not force):
            return None
        stack, storage = self.stack, self.storage
        files = dr.checkpoint_keys(storage.list_keys(stack.key("model/")), stack.model_prefix,
                                   name)
        if not any(k.endswith(".index") for k in files):
            log.warning("checkpoint %s of %s has no files any more: not saved", name,
                        stack.model_prefix)
            return None
        extra = [stack.key(dr.CHECKPOINTS_JSON), stack.key(dr.MODEL_METADATA),
                 stack.key(dr.HYPERPARAMETERS)]
        step = checkpoint_step(self.base, self.state.get("episodes", 0), self.last_step)
        record = {"model_prefix": stack.model_prefix, "checkpoint": name,
                  "best_checkpoint": self.state.get("best_checkpoint"),
                  "base_step": self.base, "step": step,
                  "episodes": self.state.get("episodes", 0),
                  "iteration": self.state.get("iteration"),
                  "bucket": stack.bucket, "session": self.cfg.session_id}

        def write(folder: Path) -> None:
            for key in files + extra:
                data = storage.get_bytes(key)
                if data is None:
                    if key in files:
                        raise dr.DeepRacerError(f"s3://{stack.bucket}/{key} went away")
                    continue
                target = folder / key[len(stack.model_prefix) + 1:]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            (folder / dr.COACH_CHECKPOINT).write_text(name)
            (folder / STATE_FILE).write_text(json.dumps(record, indent=2) + "\n")

        try:
            folder = save_checkpoint(self.cfg.checkpoint_dir, step, write, self.cfg.session_id)
        except dr.DeepRacerError as exc:  # rotated while copying: the next one will do
            log.warning("checkpoint %s not saved: %s", name, exc)
            return None
        self.saved_name, self.last_step = name, step
        log.info("session checkpoint %s: %s of %s", step_dirname(step), name, stack.model_prefix)
        return folder

    # the run ------------------------------------------------------------------------
    def start(self) -> None:
        if self.storage.exists(self.stack.key(dr.FINISHED)):
            raise ValueError(
                f"model s3://{self.stack.bucket}/{self.stack.model_prefix} has finished "
                f"({dr.FINISHED}): resume trains a new model prefix from it (the increment)")
        answer = dr.up(self.stack)
        log.info("%s", answer["msg"])

    def finish(self, upload: bool) -> int:
        """The training stopped (the trainer rl_coach started, then the project down), so
        that the model holds still; its newest checkpoint saved; the model uploaded when
        asked and a target is set (the same checkpoint: nothing trains any more). 1 when
        the stop could not make sure the trainer is gone (said in the log's last line)."""
        failed = None
        try:
            log.info("stop: %s", dr.stop_training(self.stack))
        except dr.DeepRacerError as exc:  # checkpoint and upload all the same
            failed = str(exc)
        try:
            self.look()
            self.checkpoint()
            self.mirror()
            self.report()
        except StorageError as exc:  # the stack is stopped; the last published one stands
            log.error("the final checkpoint cannot be read from storage: %s", exc)
            return 1
        if upload and self.stack.upload_target:
            try:
                uploaded = dr.upload_model(self.stack, storage_for=self.storage_for)
                log.info("upload-model: %s", uploaded)
            except (dr.DeepRacerError, StorageError) as exc:  # the checkpoint is published
                log.error("upload-model to %s failed: %s", self.stack.upload_target, exc)
        if failed:
            log.error("%s", failed)
            return 1
        return 0

    def storage_for(self, bucket: str) -> Any:
        return self.storage if bucket == self.stack.bucket else dr.bucket_storage(bucket)

    def run(self) -> int:
        self.start()
        started = time.monotonic()
        while True:
            try:
                self.look()
                self.mirror()
                self.checkpoint(force=self.request.pending)
                self.report()
            except StorageError as exc:  # storage away for a while: the stack trains on
                log.warning("cannot read the model from storage: %s", exc)
            if self.stop.is_set():
                log.info("stop asked: stop the training, checkpoint, upload-model")
                return self.finish(upload=True)
            if self.state.get("finished"):
                log.info("the trainer finished %s", self.stack.model_prefix)
                return self.finish(upload=False)
            left = dr.wait_seconds(started, self.stack.training_minutes)
            if left is not None and left <= 0:
                log.info("training_minutes %s reached", self.stack.training_minutes)
                return self.finish(upload=True)
            self.wake.wait(self.cfg.poll if left is None else max(0.0, min(self.cfg.poll, left)))
            self.wake.clear()


def install_handlers(request: CheckpointRequest, stop: threading.Event,
                     wake: threading.Event) -> None:
    """SIGUSR1: a checkpoint request; SIGTERM: stop. Either wakes the loop at once (the
    supervisor waits for the checkpoint, then for the stop)."""
    request.install(then=wake.set)

    def on_stop(signum: int, frame: object) -> None:
        stop.set()
        wake.set()

    signal.signal(signal.SIGTERM, on_stop)


def train(environ: Mapping[str, str]) -> int:
    request, stop, wake = CheckpointRequest(), threading.Event(), threading.Event()
    install_handlers(request, stop, wake)
    cfg = DriverConfig.from_env(environ)
    return Driver(cfg, request, stop, wake).run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rlops_runtime.agents.deepracer")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("train", help="drive the session's DeepRacer stack under rlops-run")
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        return train(os.environ)
    except (ValueError, dr.DeepRacerError) as exc:  # one clear line as the job's last words
        log.error("%s", exc)
        return 2
    except StorageError as exc:  # the bucket away at the start: the supervisor's restart
        log.error("%s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
