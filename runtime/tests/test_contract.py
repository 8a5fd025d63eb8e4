from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from rlops_runtime.checkpoints import local_steps, newest_complete_local
from rlops_runtime.contract import CheckpointRequest, report_progress, save_checkpoint
from rlops_runtime.jsonio import read_json
from rlops_runtime.manifest import check_folder, load_manifest


def write_model(data: bytes):
    return lambda folder: (folder / "model.zip").write_bytes(data)


def test_save_checkpoint_writes_a_complete_folder_and_latest(tmp_path: Path):
    ckpt = tmp_path / "checkpoints"
    folder = save_checkpoint(ckpt, 4096, write_model(b"w1"), session="cartpole-x")
    assert folder == ckpt / "000000004096"
    assert check_folder(folder) == []
    manifest = load_manifest(folder)
    assert manifest["session"] == "cartpole-x" and manifest["step"] == 4096
    assert [f["path"] for f in manifest["files"]] == ["model.zip"]
    assert (ckpt / "LATEST").read_text() == "4096"
    assert sorted(p.name for p in ckpt.iterdir()) == ["000000004096", "LATEST"]


def test_failing_write_fn_leaves_nothing(tmp_path: Path):
    ckpt = tmp_path / "checkpoints"
    save_checkpoint(ckpt, 1, write_model(b"w1"))

    def broken(folder: Path) -> None:
        (folder / "model.zip").write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(ckpt, 2, broken)
    assert sorted(p.name for p in ckpt.iterdir()) == ["000000000001", "LATEST"]
    assert (ckpt / "LATEST").read_text() == "1"


def test_saving_an_existing_complete_step_keeps_it(tmp_path: Path):
    ckpt = tmp_path / "checkpoints"
    first = save_checkpoint(ckpt, 7, write_model(b"first"))
    again = save_checkpoint(ckpt, 7, write_model(b"second"))
    assert again == first
    assert (first / "model.zip").read_bytes() == b"first"
    assert sorted(p.name for p in ckpt.iterdir()) == ["000000000007", "LATEST"]


def test_saving_over_a_damaged_step_moves_it_aside(tmp_path: Path):
    ckpt = tmp_path / "checkpoints"
    folder = save_checkpoint(ckpt, 7, write_model(b"first"))
    (folder / "model.zip").write_bytes(b"fir")  # truncated on disk
    new = save_checkpoint(ckpt, 7, write_model(b"second"))
    assert check_folder(new) == [] and (new / "model.zip").read_bytes() == b"second"
    damaged = [p for p in ckpt.iterdir() if p.name.startswith(".damaged-7-")]
    assert len(damaged) == 1 and (damaged[0] / "model.zip").read_bytes() == b"fir"


def test_damaged_checkpoints_are_skipped_on_resume(tmp_path: Path):
    ckpt = tmp_path / "checkpoints"
    save_checkpoint(ckpt, 100, write_model(b"a"))
    truncated = save_checkpoint(ckpt, 200, write_model(b"bbbb"))
    no_manifest = save_checkpoint(ckpt, 300, write_model(b"c"))
    (truncated / "model.zip").write_bytes(b"bb")
    (no_manifest / "manifest.json").unlink()
    assert local_steps(ckpt) == [100, 200]
    assert newest_complete_local(ckpt) == (100, ckpt / "000000000100")


def test_kill_9_during_save_leaves_only_a_tmp_folder(tmp_path: Path):
    ckpt = tmp_path / "checkpoints"
    save_checkpoint(ckpt, 100, write_model(b"a"))
    ready = tmp_path / "ready"
    script = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from rlops_runtime.contract import save_checkpoint

        def write(folder):
            (folder / "model.zip").write_bytes(b"partial")
            Path({str(ready)!r}).touch()
            time.sleep(60)

        save_checkpoint({str(ckpt)!r}, 200, write)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    names = sorted(p.name for p in ckpt.iterdir())
    assert names == [f".tmp-200-{proc.pid}", "000000000100", "LATEST"]
    assert local_steps(ckpt) == [100]
    assert newest_complete_local(ckpt) == (100, ckpt / "000000000100")
    assert (ckpt / "LATEST").read_text() == "100"
    # The next save of that step (by another process) is unaffected by the leftover.
    assert check_folder(save_checkpoint(ckpt, 200, write_model(b"b"))) == []


def test_report_progress_adds_updated_time(tmp_path: Path):
    path = tmp_path / "progress.json"
    report_progress(path, step=4096, episodes=12, mean_return=20.5)
    data = read_json(path)
    assert {k: data[k] for k in ("step", "episodes", "mean_return")} == {
        "step": 4096, "episodes": 12, "mean_return": 20.5}
    assert data["updated"].endswith("Z") and len(data["updated"]) == 20


def test_checkpoint_request_is_a_flag_set_by_sigusr1():
    previous = signal.getsignal(signal.SIGUSR1)
    try:
        request = CheckpointRequest().install()
        assert not request.pending
        os.kill(os.getpid(), signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while not request.pending and time.monotonic() < deadline:
            time.sleep(0.01)
        assert request.pending
        request.clear()
        assert not request.pending
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_checkpoint_request_calls_then_after_the_flag_is_set():
    """install(then=...): a loop waiting on an Event wakes at once (the DeepRacer driver)."""
    previous = signal.getsignal(signal.SIGUSR1)
    seen = []
    try:
        request = CheckpointRequest()
        request.install(then=lambda: seen.append(request.pending))
        os.kill(os.getpid(), signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
        assert seen == [True]
    finally:
        signal.signal(signal.SIGUSR1, previous)
