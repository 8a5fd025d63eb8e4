"""--check on all six playbooks on this machine: each reports what it would change and
changes nothing, checked by comparing the host's state (every file under the data root and
the results folder, the session's supervisor) before and after. Then resume with other
settings: what the checkpoints depend on is refused, a new budget applied.

About 2.5 min on 2 cores with the trainer venv cached (one short session).
"""

from __future__ import annotations

import json

from harness import Unchanged, has_checkpoint, host_recap, tree_state

BUDGET = {"trainer_total_timesteps": 400000, "trainer_checkpoint_interval": 8192}


def test_check_mode_changes_nothing_then_resume_with_other_settings(playbooks):
    roots = (playbooks.data_root, playbooks.results)

    # A fresh host: train_new --check says what it would do and leaves no trace.
    out = playbooks.run("train_new", "--check", **BUDGET, rlops_name="check").stdout
    assert host_recap(out)["failed"] == 0
    assert not playbooks.data_root.exists() and not playbooks.results.exists()

    out = playbooks.run("train_new", **BUDGET, rlops_name="check").stdout
    session = playbooks.session_from(out)
    running = playbooks.wait(session, has_checkpoint, 180, "checkpointed while running")

    # A running session: stop --check would stop it, and it keeps running.
    out = playbooks.run("stop", "--check", rlops_session=session).stdout
    assert host_recap(out)["changed"] >= 1 and "would stop session" in out, out[-3000:]
    after = playbooks.status(session)
    assert after["state"] == "running"
    assert after["supervisor_pid"] == running["supervisor_pid"]

    playbooks.run("stop", rlops_session=session)
    assert playbooks.status(session)["state"] == "stopped"

    # A stopped session: nothing any playbook does in check mode changes a file.
    unchanged = Unchanged(lambda: {"the data root and results folder": tree_state(*roots)})
    outputs = {
        "status": playbooks.run("status", "--check").stdout,
        "stop": playbooks.run("stop", "--check", rlops_session=session).stdout,
        "resume": playbooks.run("resume", "--check", rlops_session=session).stdout,
        "resume longer": playbooks.run("resume", "--check", rlops_session=session,
                                       trainer_total_timesteps=800000).stdout,
        "retrieve": playbooks.run("retrieve", "--check", rlops_session=session).stdout,
        "evaluate": playbooks.run("evaluate", "--check", rlops_session=session).stdout,
        "train_new": playbooks.run("train_new", "--check", **BUDGET, rlops_name="check2").stdout,
    }
    unchanged.check("status, stop, resume, retrieve, evaluate, train_new --check")
    assert playbooks.status(session)["state"] == "stopped"

    assert host_recap(outputs["stop"])["changed"] == 0          # already stopped
    assert host_recap(outputs["status"])["changed"] == 0
    assert "would start session" in outputs["resume"]
    assert host_recap(outputs["resume"])["changed"] >= 1
    assert "new or changed files would be copied" in outputs["retrieve"]
    assert "would run 10 episodes" in outputs["evaluate"]
    assert host_recap(outputs["evaluate"])["changed"] >= 1
    run_json = json.loads((playbooks.session_dir(session) / "config" / "run.json").read_text())
    assert run_json["total_timesteps"] == BUDGET["trainer_total_timesteps"]
    assert not any((playbooks.data_root / "sessions").glob("check2-*"))

    # Resume with other settings: what the checkpoints depend on is refused, and nothing
    # changes; a new budget beyond the step reached is applied.
    out = playbooks.run("resume", ok=False, rlops_session=session, trainer_env_id="Acrobot-v1",
                        trainer_seed=7).stdout
    assert ("trainer_env_id ('CartPole-v1', asked for 'Acrobot-v1') and trainer_seed (0, asked "
            "for 7) cannot change on resume") in out, out[-3000:]
    assert json.loads((playbooks.session_dir(session) / "config" / "run.json").read_text()) \
        == run_json
    assert playbooks.status(session)["state"] == "stopped"
    # The venv's set is the recorded one: asking for another is refused too.
    out = playbooks.run("resume", ok=False, rlops_session=session,
                        trainer_requirements=["six==1.16.0"]).stdout
    assert "trainer_requirements cannot change on resume" in out, out[-3000:]

    stopped_at = playbooks.status(session)["last_checkpoint_step"]
    longer = stopped_at + 8192
    out = playbooks.run("resume", rlops_session=session, trainer_total_timesteps=longer).stdout
    assert f"changed total_timesteps {BUDGET['trainer_total_timesteps']} -> {longer}" in out
    done = playbooks.wait(session, lambda s: s.get("state") == "completed", 240, "completed")
    assert done["resumed_from_step"] == stopped_at and done["step"] >= longer

    # A completed session given more to do starts again; without a change it stays put.
    out = playbooks.run("resume", rlops_session=session).stdout
    assert host_recap(out)["changed"] == 0 and playbooks.status(session)["state"] == "completed"
    playbooks.run("resume", rlops_session=session, trainer_total_timesteps=longer + 8192)
    again = playbooks.wait(session, lambda s: s.get("state") == "completed"
                           and s["step"] >= longer + 8192, 240, "completed again")
    assert again["resumed_from_step"] >= longer
