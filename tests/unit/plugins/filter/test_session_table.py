from ansible_collections.rlops.fleet.plugins.filter.session_table import (
    cluster_note,
    deepracer_note,
    format_age,
    session_table,
)


def test_format_age():
    assert [format_age(s) for s in (None, 5, 425, 11520, 187200)] == \
        ["-", "5s", "7m05s", "3h12m", "2d04h"]


def test_table_aligns_and_computes_checkpoint_age():
    lines = session_table([
        {"session_id": "cartpole-1", "host": "localhost", "state": "running", "step": 8192,
         "total_timesteps": 100000, "mean_return": 187.25,
         "last_checkpoint_time": "2026-11-22T05:16:00Z"},
        {"session_id": "b", "host": "lab-2", "state": "stopped"},
    ], now="2026-11-22T05:17:30Z")
    assert lines[0].split() == ["SESSION", "HOST", "STATE", "STEP", "RETURN", "CHECKPOINT", "AGE"]
    assert lines[1].split() == [
        "cartpole-1", "localhost", "running", "8192/100000", "187.2", "1m30s"]
    assert lines[2].split() == ["b", "lab-2", "stopped", "-", "-", "-"]
    column = lines[0].index("HOST")
    assert lines[1][column:].startswith("localhost") and lines[2][column:].startswith("lab-2")


def _record(**fields):
    record = {"session_id": "s-1", "host": "h1", "state": "completed", "unsynced_steps": [],
              "sync_error": None, "supervisor_alive": False, "notices": None}
    record.update(fields)
    return record


def _publish(rc=0, stdout="", stderr="", host="h1", session_id="s-1"):
    return {"host": host, "session_id": session_id, "rc": rc, "stdout": stdout,
            "stderr": stderr}


def test_no_notes_for_a_session_that_is_all_in_storage():
    lines = session_table([_record()], now="2026-11-22T05:17:30Z")
    assert len(lines) == 2


def test_checkpoints_not_in_storage_after_the_supervisor_is_gone():
    record = _record(unsynced_steps=[57344, 60160], sync_error="cannot reach the S3 endpoint")
    assert session_table([record], now="2026-11-22T05:17:30Z")[2:] == [
        "s-1 on h1: 2 checkpoints not in storage yet (newest 60160) "
        "(cannot reach the S3 endpoint)"]


def test_a_supervisor_still_trying_and_a_running_session_behind_by_one_sync():
    trying = _record(unsynced_steps=[60160], sync_error="down", supervisor_alive=True)
    running = _record(session_id="s-2", state="running", unsynced_steps=[8192],
                      supervisor_alive=True)
    assert session_table([trying, running], now="2026-11-22T05:17:30Z")[3:] == [
        "s-1 on h1: 1 checkpoint not in storage yet (newest 60160): the supervisor keeps "
        "trying (down)"]


def test_what_publish_did_would_do_or_could_not_do():
    pending = _record(unsynced_steps=[32768, 57344, 60160], sync_error="down")
    done = _publish(stdout='{"published": [57344, 60160], "unsynced_steps": []}')
    dry = _publish(stdout='{"would_publish": [57344, 60160], "damaged": []}')
    failed = _publish(rc=2, stderr="WARNING ...\nrlops-run: error: storage s3://b/p: down; "
                      "3 checkpoints not in storage yet (newest 60160)\n")
    notes = [session_table([pending], publishes=[p])[2:] for p in (done, dry, failed)]
    assert notes == [
        ["s-1 on h1: published 2 checkpoints that storage lacked (newest 60160)"],
        ["s-1 on h1: 2 checkpoints not in storage yet (newest 60160): publish would send them"],
        ["s-1 on h1: 3 checkpoints not in storage yet (newest 60160), not published now: "
         "storage s3://b/p: down; 3 checkpoints not in storage yet (newest 60160)"],
    ]
    # As a loop over records registers it; a skipped one says nothing.
    looped = {"host": "h1", "rc": 0, "stdout": '{"published": [60160]}', "stderr": "",
              "ansible_loop_var": "__rlops_record", "__rlops_record": pending}
    assert session_table([pending], publishes=[looped])[2:] == [
        "s-1 on h1: published 1 checkpoint that storage lacked (newest 60160)"]
    skipped = {"host": "h1", "skipped": True, "ansible_loop_var": "r", "r": pending}
    assert session_table([pending], publishes=[skipped])[2:] == [
        "s-1 on h1: 3 checkpoints not in storage yet (newest 60160) (down)"]
    # A result of another host's session of the same name says nothing about this one.
    assert session_table([pending], publishes=[_publish(host="h2", stdout="{}")])[2:] == [
        "s-1 on h1: 3 checkpoints not in storage yet (newest 60160) (down)"]


def test_spot_notices_not_watched_while_running():
    notices = {"mode": "auto", "source": "ec2-imds", "watching": False,
               "since": "2026-11-22T05:15:31Z", "last_error": "IMDS at x: timed out"}
    running = _record(state="running", notices=notices)
    watching = _record(session_id="s-2", state="running", notices=dict(notices, watching=True))
    off_ec2 = _record(session_id="s-3", state="running", notices={"source": None})
    assert session_table([running, watching, off_ec2], now="2026-11-22T05:17:30Z")[4:] == [
        "s-1 on h1: spot notices not watched since 2026-11-22T05:15:31Z: IMDS at x: timed out"]


def test_a_ray_sessions_cluster_under_the_table():
    record = {"session_id": "s", "host": "head", "state": "running", "step": 10,
              "nodes": 3, "env_runners": {"healthy": 1, "total": 2, "restarts": 1}}
    assert session_table([record], now="2026-12-07T00:00:00Z")[-1] == (
        "s on head: Ray cluster: 3 nodes, env runners 1/2 healthy (1 restarted)")
    assert cluster_note({"nodes": 1, "env_runners": {"healthy": 2, "total": 2}}) == (
        "Ray cluster: 1 node, env runners 2/2 healthy")
    assert cluster_note({"state": "running", "nodes": None, "env_runners": None}) is None


def test_a_deepracer_sessions_model_under_the_table():
    record = _record(state="running", episodes=60, deepracer={
        "model_prefix": "m-2", "pretrained_prefix": "m-1", "iteration": 3, "progress": 41.25,
        "last_checkpoint": "3_Step-1800.ckpt", "best_checkpoint": "2_Step-1200.ckpt"})
    assert deepracer_note(record) == (
        "DeepRacer model m-2 (from m-1): iteration 3, 60 episodes, progress 41.2%, "
        "last checkpoint 3_Step-1800.ckpt, best checkpoint 2_Step-1200.ckpt")
    assert "s-1 on h1: DeepRacer model m-2 (from m-1)" in session_table([record])[2]
    assert deepracer_note(_record(deepracer={"model_prefix": "m"})) == "DeepRacer model m"
    assert deepracer_note(_record()) is None
    assert deepracer_note(_record(deepracer={"iteration": 1})) is None
