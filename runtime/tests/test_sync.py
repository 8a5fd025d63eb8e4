from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from rlops_runtime.checkpoints import local_steps
from rlops_runtime.contract import report_progress
from rlops_runtime.publish import read_latest, remote_steps
from rlops_runtime.session import SessionLayout
from rlops_runtime.storage import open_storage
from rlops_runtime.sync import Syncer


@pytest.fixture(params=["file", "s3-moto"])
def storage(request, tmp_path: Path):
    if request.param == "file":
        return open_storage(f"file://{tmp_path / 'storage'}")
    return open_storage(request.getfixturevalue("s3_bucket"))


@pytest.fixture
def layout(tmp_path: Path) -> SessionLayout:
    layout = SessionLayout.for_session(tmp_path / "data", "sess-1").create()
    layout.run_json.write_text('{"session_id": "sess-1"}')
    layout.storage_env.write_text("AWS_SECRET_ACCESS_KEY=secret\n")
    return layout


def test_background_sync_while_the_job_writes(storage, layout, make_checkpoint):
    published = []
    syncer = Syncer(storage, layout, interval=0.05, on_published=published.append)
    syncer.start()

    def job() -> None:
        for step in range(1, 9):
            make_checkpoint(layout.checkpoints, step * 10)
            with layout.job_log.open("a") as log:
                log.write(f"step {step * 10}\n")
            report_progress(layout.progress, step=step * 10)
            (layout.tensorboard / f"events.{step}").write_bytes(b"e" * step)
            time.sleep(0.03)

    writer = threading.Thread(target=job)
    writer.start()
    writer.join()
    deadline = time.monotonic() + 10
    while not published and time.monotonic() < deadline:
        time.sleep(0.01)
    assert published, "the background thread published nothing while the job ran"
    syncer.stop(final_sync=True)

    steps = [step * 10 for step in range(1, 9)]
    assert published == steps and syncer.last_published == 80
    assert remote_steps(storage, "sess-1") == steps
    assert read_latest(storage, "sess-1") == 80
    assert storage.get_bytes("sess-1/logs/job.log") == layout.job_log.read_bytes()
    assert storage.get_bytes("sess-1/progress.json") == layout.progress.read_bytes()
    assert storage.get_bytes("sess-1/config/run.json") == layout.run_json.read_bytes()
    assert len(storage.list_keys("sess-1/tensorboard/")) == 8
    assert not storage.exists("sess-1/config/storage.env")
    assert local_steps(layout.checkpoints) == steps  # keep_local=0 keeps everything


def test_unchanged_files_are_not_uploaded_again(storage, layout, faulty_storage, make_checkpoint):
    counting = faulty_storage(storage)
    syncer = Syncer(counting, layout)
    make_checkpoint(layout.checkpoints, 10)
    layout.job_log.write_text("line 1\n")
    assert syncer.sync_once() == [10]
    first = len(counting.puts)
    assert syncer.sync_once() == []
    assert len(counting.puts) == first
    with layout.job_log.open("a") as log:
        log.write("line 2\n")
    syncer.sync_once()
    assert counting.puts[first:] == ["sess-1/logs/job.log"]


def test_errors_are_logged_and_retried(storage, layout, faulty_storage, make_checkpoint, caplog):
    flaky = faulty_storage(storage)
    flaky.down = True
    syncer = Syncer(flaky, layout)
    make_checkpoint(layout.checkpoints, 10)
    assert syncer.sync_once() == []  # no exception reaches the caller
    assert "injected failure" in syncer.last_error and "will retry" in caplog.text
    flaky.down = False
    assert syncer.sync_once() == [10]
    assert syncer.last_error is None and read_latest(storage, "sess-1") == 10


def test_stop_without_a_thread_or_final_sync(storage, layout, make_checkpoint):
    syncer = Syncer(storage, layout)
    make_checkpoint(layout.checkpoints, 10)
    syncer.stop(final_sync=False)
    assert remote_steps(storage, "sess-1") == []
    syncer.stop()
    assert remote_steps(storage, "sess-1") == [10]


def test_keep_local_rotates_only_published(storage, layout, make_checkpoint):
    for step in (10, 20, 30):
        make_checkpoint(layout.checkpoints, step)
    damaged = make_checkpoint(layout.checkpoints, 5)
    (damaged / "model.zip").write_bytes(b"x")
    syncer = Syncer(storage, layout, keep_local=1)
    assert syncer.sync_once() == [10, 20, 30]
    assert remote_steps(storage, "sess-1") == [10, 20, 30]
    assert local_steps(layout.checkpoints) == [5, 30]  # 5 was never published: kept


def test_sync_soon_starts_a_round_before_the_interval(layout, make_checkpoint, tmp_path):
    storage = open_storage(f"file://{tmp_path / 'storage'}")
    syncer = Syncer(storage, layout, interval=60)
    syncer.start()
    try:
        time.sleep(0.1)  # the first round, at start, is over
        make_checkpoint(layout.checkpoints, 10)
        syncer.sync_soon()
        deadline = time.monotonic() + 5
        while syncer.last_published != 10:
            assert time.monotonic() < deadline, "sync_soon did not wake the thread"
            time.sleep(0.01)
    finally:
        started = time.monotonic()
        syncer.stop(final_sync=False)
        assert time.monotonic() - started < 5  # stop does not wait for the interval either
    assert read_latest(storage, "sess-1") == 10
