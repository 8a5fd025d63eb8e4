"""rlops-run evaluate: evaluate a session's newest complete checkpoint in this process."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .checkpoints import newest_complete_local
from .jsonio import read_json
from .publish import fetch_newest_complete
from .session import SessionLayout
from .session_contract import RAY_BACKEND, backend_name
from .storage import open_storage
from .supervisor import RunConfig, load_storage_env


class NoCheckpointError(LookupError):
    """The session has no complete checkpoint where we looked."""


def find_checkpoint(layout: SessionLayout, from_storage: bool = False) -> tuple[int, Path]:
    """The newest complete checkpoint, local or (downloaded) from the session's storage."""
    if from_storage:
        config = RunConfig.load(layout.run_json)
        os.environ.update(load_storage_env(layout))
        found = fetch_newest_complete(
            open_storage(config.storage_uri), layout.session_id, layout.checkpoints
        )
    else:
        found = newest_complete_local(layout.checkpoints)
    if found is None:
        raise NoCheckpointError(f"session {layout.session_id} has no complete checkpoint")
    return found


def evaluate_session(
    layout: SessionLayout, episodes: int, video: bool = True, from_storage: bool = False
) -> dict[str, Any]:
    """Evaluate with the reference agent of the session's backend (run.json's `backend`:
    SB3 on one host, RLlib for Ray, which needs no cluster); writes eval/eval.json (+ one
    episode's video)."""
    run = read_json(layout.run_json) if layout.run_json.is_file() else None
    if backend_name(run) == RAY_BACKEND:
        from .agents.rllib import evaluate
    else:
        from .agents.sb3 import evaluate

    _step, folder = find_checkpoint(layout, from_storage)
    return evaluate(folder, episodes, layout.eval_dir, video=video)
