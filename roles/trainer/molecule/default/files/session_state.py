#!/usr/bin/env python3
"""What a lab host says about one training session, as one JSON object (verify.yml).

    session_state.py --data-root R --session S --storage DIR [--wait-checkpoint S] [--wait-step S]

Reads systemd (is-active, is-enabled, the unit's User=), `<R>/bin/rlops-run status` and
status.json, and the newest checkpoint on the host and in file storage, each checked
against its manifest (sizes and sha256) here rather than by the runtime under test.
--wait-checkpoint: wait up to S seconds for a complete local checkpoint.
--wait-step: read the status again until its step grows (up to S seconds).
Standard library only: it runs with the host's python3, outside the job's venv.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path


def run(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip()


def checkpoint(root: Path) -> dict:
    """The step LATEST names under root (a checkpoints/ folder) and whether it is complete."""
    try:
        step = int((root / "LATEST").read_text().strip())
    except (OSError, ValueError):
        return {"step": None, "complete": False, "problems": ["no readable LATEST"]}
    folder = root / f"{step:012d}"
    problems = []
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        files = manifest["files"]
        if manifest.get("step") != step:
            problems.append(f"manifest step {manifest.get('step')}")
    except (OSError, ValueError, KeyError) as exc:
        return {"step": step, "complete": False, "problems": [f"manifest: {exc}"]}
    for entry in files:
        path = folder / entry["path"]
        try:
            data = path.read_bytes()
        except OSError as exc:
            problems.append(f"{entry['path']}: {exc}")
            continue
        if len(data) != entry["size"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
            problems.append(f"{entry['path']}: size or sha256 differs")
    return {"step": step, "complete": not problems and bool(files),
            "files": sorted(entry["path"] for entry in files), "problems": problems}


def status(cli: Path, data_root: Path, session: str) -> dict:
    out = subprocess.run([str(cli), "status", "--data-root", str(data_root), "--session", session],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return {"state": None, "step": None, "error": out.stderr.strip()[-400:]}
    return json.loads(out.stdout)[0]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument("--session", required=True)
    parser.add_argument("--storage", type=Path, required=True)
    parser.add_argument("--wait-checkpoint", type=float, default=0)
    parser.add_argument("--wait-step", type=float, default=0)
    args = parser.parse_args()
    session_dir = args.data_root / "sessions" / args.session
    cli = args.data_root / "bin" / "rlops-run"
    unit = f"rlops-trainer@{args.session}.service"

    deadline = time.monotonic() + args.wait_checkpoint
    local = checkpoint(session_dir / "checkpoints")
    while not local["complete"] and time.monotonic() < deadline:
        time.sleep(1)
        local = checkpoint(session_dir / "checkpoints")

    first = status(cli, args.data_root, args.session)
    later = first
    deadline = time.monotonic() + args.wait_step
    while time.monotonic() < deadline:
        time.sleep(1)
        later = status(cli, args.data_root, args.session)
        if (later["step"] or 0) > (first["step"] or 0):
            break

    try:
        status_file = json.loads((session_dir / "status.json").read_text())
    except (OSError, ValueError) as exc:
        status_file = {"error": str(exc)}
    json.dump({
        "active": run(["systemctl", "is-active", unit]),
        "enabled": run(["systemctl", "is-enabled", unit]),
        "unit_user": run(["systemctl", "show", "--property=User", "--value", unit]),
        "status": first,
        "status_later": later,
        "status_file": status_file,
        "local_checkpoint": local,
        "storage_checkpoint": checkpoint(args.storage / args.session / "checkpoints"),
    }, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
