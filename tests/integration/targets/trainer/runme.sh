#!/usr/bin/env bash
# shellcheck disable=SC2015  # `test && ok "..." || bad "..."` is if/else here: ok only echoes
# Integration test of rlops.fleet.trainer (make trainer-it runs all of it).
#   tests/integration/targets/trainer/runme.sh [PHASE...]   PHASE: preflight, live, local,
#   lockset, systemd, all (default: all = preflight live lockset systemd; systemd needs root and podman,
#   tests/lab/lab.sh setup). Times on 2 cores: tests/integration/targets/trainer/README.md.
# preflight: the inputs the role must refuse, each with its own message, and check mode on
#       a fresh host.
# live: a real session on this machine (connection local; process supervisor, no systemd
#       as PID 1): start -> running, re-run changed=0, check mode changed=0, stop ->
#       stopped, resume from the stopped step, stop, lose the session folder and resume
#       from storage, a short session that completes and is left alone; then a job of
#       its own (files/job, with a requirements file, no torch) as trainer_source=local and
#       from a git repository on this machine, then rlops.fleet.job_source alone on that
#       repository (job_source.yml): `local` runs those alone.
# lockset: exact versions on this machine: a Python without a lock refused, LunarLander-v3
#       (Box2D added) under a lock of its own, recorded in config/requirements.lock, and a
#       resume on a fresh data root and venv root that installs the recorded set from storage;
#       again from s3:// storage (localbucket) that only the host reads.
# systemd: the same life on a lab host (tests/lab: systemd as PID 1, SSH, become) plus a
#       reboot that resumes the session by itself. The host boots from the lab's trainer
#       image (tests/lab/lab.sh trainer-image: the venv is in it) with the lab's settings.
# The runtime is copied at the start (an edit in the checkout during the run would be a
# change to the re-runs). The local venvs live in VENV_ROOT (default .venv/trainer-venvs,
# shared with tests/e2e: keyed by their requirements, built once). KEEP=1 keeps the
# temporary folder.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../../../.." && pwd)"
export ANSIBLE_CONFIG="$REPO/ansible.cfg"
export ANSIBLE_NOCOLOR=1
export ANSIBLE_FORCE_COLOR=0
PLAYBOOK="$REPO/.venv/bin/ansible-playbook"
PYTHON="$REPO/.venv/bin/python"
PHASES=("${@:-all}")
WORK="$(mktemp -d /tmp/rlops-trainer-it.XXXXXX)"
SESSION="it-cartpole-$(date -u +%Y%m%dt%H%M%Sz)"
LOG="$WORK/last.log"
FAILS=0
VENV_ROOT="${VENV_ROOT:-$REPO/.venv/trainer-venvs}"
# The runtime as it is now: several people edit one tree, and the role reinstalls a changed one.
mkdir -p "$WORK/runtime"
tar -C "$REPO/runtime" --exclude=tests --exclude=__pycache__ --exclude='*.egg-info' -cf - . \
    | tar -C "$WORK/runtime" -xf -
RUNTIME=(-e trainer_runtime_source_path="$WORK/runtime")

# The target: this machine by default; use_lab switches to a lab host.
HOST=localhost
DATA_ROOT="$WORK/data"
TARGET=(-i "localhost," -c local -e ansible_python_interpreter="$PYTHON" -e trainer_data_root="$DATA_ROOT"
        -e trainer_venv_root="$VENV_ROOT" "${RUNTIME[@]}")
ON_HOST=()          # prefix that runs a command on the target
LAB_STATE=""
S3_PID=""           # localbucket of the lockset phase

cleanup() {
    # Stop the local supervisors this test started and still run (by their own pid files;
    # a stopped session's file stays), wait up to 10 s for them to end, take a lab down.
    local pidfile pids=() pid
    for pidfile in "$WORK"/data*/sessions/*/supervisor.pid; do
        [[ -f "$pidfile" ]] || continue
        pid="$(cat "$pidfile")"
        kill "$pid" 2>/dev/null && pids+=("$pid")
    done
    local tries=0 alive
    while ((tries < 50)); do
        alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.2
        tries=$((tries + 1))
    done
    [[ -n "$S3_PID" ]] && kill "$S3_PID" 2>/dev/null || true
    if [[ -n "$LAB_STATE" ]]; then
        RLOPS_LAB_STATE_DIR="$LAB_STATE" "$REPO/tests/lab/lab.sh" down >/dev/null 2>&1 || true
    fi
    if [[ "${KEEP:-0}" == 1 ]]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

use_lab() {
    # One lab host of our own (own state dir, own name prefix) from the trainer image,
    # with the lab's settings (tests/lab_hosts.py: LAB_VARS, the CPU torch wheelhouse).
    LAB_STATE="$WORK/lab"
    local started=$SECONDS
    RLOPS_LAB_STATE_DIR="$LAB_STATE" "$REPO/tests/lab/lab.sh" up 1 --trainer --name "trainer-it-$$" >/dev/null
    HOST="trainer-it-$$-1"
    DATA_ROOT=/var/lib/rlops
    ON_HOST=(podman exec "$HOST")
    TARGET=(-i "$LAB_STATE/inventory.yml" "${RUNTIME[@]}" -e "$(cd "$REPO/tests" && "$PYTHON" -c '
import json
from lab_hosts import LAB_VARS, build_wheelhouse
print(json.dumps({**LAB_VARS, "trainer_wheelhouse": str(build_wheelhouse())}))')")
    echo "lab host $HOST up in $((SECONDS - started)) s"
}

play() {
    # play ARGS... : run the test playbook against the target; output in $LOG, time in $PLAYED.
    local started=$SECONDS rc=0
    "$PLAYBOOK" "${TARGET[@]}" "$@" "${PLAY_YML:-$HERE/trainer.yml}" >"$LOG" 2>&1 || rc=$?
    PLAYED=$((SECONDS - started))
    return "$rc"
}
PLAYED=0

recap() { grep -E "^$HOST +:" "$LOG" | tail -1; }

ok() { echo "PASS $1"; }
bad() { echo "FAIL $1"; sed 's/^/    /' "$LOG" | tail -60; FAILS=$((FAILS + 1)); }

expect_refused() {
    # expect_refused NAME FRAGMENT ARGS... : the play fails and says FRAGMENT.
    local name="$1" fragment="$2"
    shift 2
    if play "$@"; then bad "$name (the play passed)"; return; fi
    if grep -qF -- "$fragment" "$LOG"; then ok "$name (${PLAYED} s)"; else bad "$name (no '$fragment')"; fi
}

expect_run() {
    # expect_run NAME CHANGED ARGS... : the play passes; CHANGED is '0' or 'any'.
    local name="$1" changed="$2"
    shift 2
    if ! play "$@"; then bad "$name"; return; fi
    if [[ "$changed" == 0 ]] && ! recap | grep -q 'changed=0 '; then
        bad "$name (not idempotent: $(recap))"
        grep -B1 -E '^changed:' "$LOG" | sed 's/^/    /' | head -40
        return
    fi
    ok "$name (${PLAYED} s): $(recap | sed 's/  */ /g')"
}

status_field() {
    # status_field FIELD [SESSION]: one field of `rlops-run status` on the target.
    "${ON_HOST[@]}" "$DATA_ROOT/bin/rlops-run" status --data-root "$DATA_ROOT" --session "${2:-$SESSION}" \
        | "$PYTHON" -c "import json,sys; print(json.load(sys.stdin)[0]['$1'])"
}

on_host_test() { "${ON_HOST[@]}" test "$@"; }

wait_for_checkpoint() {
    # wait_for_checkpoint [AFTER_STEP [SESSION]]: until the session has a local checkpoint newer.
    local after="${1:-0}" session="${2:-$SESSION}" latest
    for _ in $(seq 180); do
        latest="$("${ON_HOST[@]}" cat "$DATA_ROOT/sessions/$session/checkpoints/LATEST" 2>/dev/null || echo 0)"
        ((10#${latest:-0} > after)) && return 0
        sleep 1
    done
    echo "    no checkpoint after step $after within 180 s"
}

expect_resumed_from() {
    local resumed
    resumed="$(status_field resumed_from_step)"
    if [[ "$resumed" != None && "$resumed" -ge "${1:-1}" ]]; then
        ok "resumed from step $resumed (stopped at $1)"
    else
        bad "resumed_from_step $resumed, stopped at $1"
    fi
}

expect_state() {
    local state
    state="$(status_field state "${2:-$SESSION}")"
    [[ "$state" == "$1" ]] && ok "status $state" || bad "status $state, expected $1"
}

preflight() {
    local s=(-e trainer_session_id="$SESSION")
    expect_refused "bad session id" "session id 'Bad_Id' is invalid" -e trainer_session_id=Bad_Id
    expect_refused "missing session id" "trainer_session_id" -e trainer_mode=new
    expect_refused "unknown mode (argument spec)" "trainer_mode" "${s[@]}" -e trainer_mode=restart
    expect_refused "git without version" "trainer_source_version is required" "${s[@]}" \
        -e trainer_source=git -e trainer_source_repo=https://example.invalid/x.git \
        -e '{"trainer_entrypoint": ["python", "train.py"]}'
    expect_refused "local without entrypoint" "trainer_entrypoint is required" "${s[@]}" \
        -e trainer_source=local -e trainer_source_path="$HERE"
    expect_refused "local source missing" "is not a folder on the controller" "${s[@]}" \
        -e trainer_source=local -e trainer_source_path=/nonexistent/job \
        -e '{"trainer_entrypoint": ["python", "train.py"]}'
    expect_refused "storage scheme" "unsupported storage URI 'ftp://x/y'" "${s[@]}" -e trainer_storage_uri=ftp://x/y
    expect_refused "azure storage without credentials" "no Azure Storage credentials" "${s[@]}" \
        -e trainer_storage_uri=az://models/rl
    # Refused by the controller's preflight, before the host's venv is touched.
    if grep -q "TASK \[rlops.fleet.runtime" "$LOG"; then bad "az:// refused only after the install"; fi
    expect_refused "relative file storage" "a file:// path must be absolute" "${s[@]}" \
        -e trainer_storage_uri=file://relative/path
    expect_refused "zero timesteps" "trainer_total_timesteps must be greater than 0" "${s[@]}" \
        -e trainer_total_timesteps=0
    expect_refused "systemd without systemd" "trainer_service_manager=systemd needs" "${s[@]}" \
        -e trainer_service_manager=systemd
    expect_refused "unknown user" "trainer_user nobody-here does not exist" "${s[@]}" \
        -e trainer_user=nobody-here
    expect_refused "trainer_state=stopped (stopping is the session layer's)" \
        "stop one with playbooks/stop.yml" "${s[@]}" -e trainer_state=stopped
    mkdir -p "$DATA_ROOT/sessions/$SESSION/checkpoints/000000002048"
    expect_refused "new over an existing session" "session $SESSION already exists on localhost: run resume.yml" \
        "${s[@]}"
    rm -rf "$DATA_ROOT"
    expect_run "check mode on a fresh host" any "${s[@]}" --check -e '{"expect_states": ["unknown"]}'
    if [[ -e "$DATA_ROOT" ]]; then
        bad "preflight or check mode changed the host"
    else
        ok "preflight failures and check mode changed nothing"
    fi
}

session_life() {
    # The life of one session on the target (local or lab). 3M steps run for many minutes
    # here: long enough to stop the job in the middle and resume it.
    local s=(-e trainer_session_id="$SESSION" -e trainer_total_timesteps=3000000
             -e trainer_checkpoint_interval=16384 -e trainer_start_timeout=180
             -e trainer_sync_interval=2)
    local r=("${s[@]}" -e trainer_mode=resume)
    local stopped=("${r[@]}" -e stop=true -e '{"expect_states": ["stopped"]}')
    local dir="$DATA_ROOT/sessions/$SESSION"

    expect_refused "invalid hyperparameters" "'n_stepz' is not a PPO hyperparameter" "${s[@]}" \
        -e '{"trainer_hyperparameters": {"n_stepz": 64}}'
    on_host_test ! -e "$dir" && ok "no session folder after invalid hyperparameters" \
        || bad "session folder created before validation"
    expect_refused "resume of an unknown session" "cannot be resumed" "${r[@]}"
    on_host_test ! -e "$dir" && ok "no session folder after an unknown resume" \
        || bad "session folder created for an unknown session"

    expect_run "new session started" any "${s[@]}" -e trainer_mode=new
    expect_state running
    expect_run "re-run (resume) is idempotent" 0 "${r[@]}"
    expect_run "check mode on the running session" 0 "${r[@]}" --check

    wait_for_checkpoint
    expect_refused "new over a session with checkpoints" "session $SESSION already exists on $HOST: run resume.yml" \
        "${s[@]}" -e trainer_mode=new

    expect_run "stop" any "${stopped[@]}"
    expect_state stopped
    local step1
    step1="$(status_field last_checkpoint_step)"
    echo "    stopped at checkpoint $step1"
    expect_run "stop again is idempotent" 0 "${stopped[@]}"

    expect_run "resume" any "${r[@]}"
    expect_resumed_from "$step1"
    expect_run "resume re-run is idempotent" 0 "${r[@]}"
}

finish_life() {
    # Short session: it completes, and a re-run leaves it alone.
    local short=(-e trainer_session_id="$SESSION-short" -e trainer_total_timesteps=2048
                 -e trainer_checkpoint_interval=1024)
    expect_run "short session started" any "${short[@]}"
    for _ in $(seq 120); do
        [[ "$(status_field state "$SESSION-short" 2>/dev/null)" == completed ]] && break
        sleep 1
    done
    # The first run after completion may change something (systemd: disable the unit).
    expect_run "re-run of the completed session" any "${short[@]}" -e trainer_mode=resume \
        -e '{"expect_states": ["completed"]}'
    expect_run "re-run of the completed session is idempotent" 0 "${short[@]}" -e trainer_mode=resume \
        -e '{"expect_states": ["completed"]}'
}

live() {
    local r=(-e trainer_session_id="$SESSION" -e trainer_mode=resume -e trainer_start_timeout=180)
    local stopped=("${r[@]}" -e stop=true -e '{"expect_states": ["stopped"]}')
    session_life
    wait_for_checkpoint "$(status_field last_checkpoint_step)"
    expect_run "stop after resume" any "${stopped[@]}"
    local step2
    step2="$(status_field last_checkpoint_step)"
    echo "    stopped at checkpoint $step2"
    # The host lost the session (a new disk): resume restores config/ from storage and
    # the supervisor downloads the newest published checkpoint.
    rm -rf "${DATA_ROOT:?}/sessions/$SESSION"
    expect_run "resume on a new disk" any "${r[@]}"
    [[ -f "$DATA_ROOT/sessions/$SESSION/config/run.json" ]] && ok "run.json restored from storage" \
        || bad "no run.json"
    expect_resumed_from "$step2"
    expect_run "final stop" any "${stopped[@]}"
    finish_life
    local_source
    git_source
}

local_source() {
    # trainer_source=local: the job in files/job (no torch, no SB3), its requirements file.
    local l=(-e trainer_session_id="$SESSION-local" -e trainer_source=local
             -e trainer_source_path="$HERE/files/job" -e trainer_requirements_file=requirements.txt
             -e '{"trainer_entrypoint": ["python", "train.py"], "trainer_runtime_extras": []}'
             -e trainer_torch_requirement= -e trainer_total_timesteps=100000
             -e trainer_checkpoint_interval=300 -e trainer_sync_interval=2)
    local dir="$DATA_ROOT/sessions/$SESSION-local"
    expect_run "local job started" any "${l[@]}"
    "${ON_HOST[@]}" grep -q "packaging" "$dir/logs/job.log" && ok "the job imported its requirement" \
        || bad "no requirement in the job's log"
    expect_run "local job re-run is idempotent" 0 "${l[@]}" -e trainer_mode=resume
    wait_for_checkpoint 0 "$SESSION-local"
    expect_run "local job stopped" any "${l[@]}" -e trainer_mode=resume -e stop=true \
        -e '{"expect_states": ["stopped"]}'
    local step
    step="$(status_field last_checkpoint_step "$SESSION-local")"
    expect_run "local job resumed" any "${l[@]}" -e trainer_mode=resume
    local resumed
    resumed="$(status_field resumed_from_step "$SESSION-local")"
    [[ "$resumed" != None && "$resumed" -ge "$step" && "$step" -gt 0 ]] \
        && ok "local job resumed from step $resumed (stopped at $step)" \
        || bad "local job resumed_from_step $resumed, stopped at $step"
    expect_run "local job final stop" any "${l[@]}" -e trainer_mode=resume -e stop=true \
        -e '{"expect_states": ["stopped"]}'
}

git_source() {
    # trainer_source=git: the same job, from a repository on this machine, pinned to a commit.
    local repo="$WORK/job.git" sha
    git init -q --bare "$repo"
    git -C "$WORK" clone -q "$repo" job-work 2>/dev/null
    cp "$HERE/files/job/"* "$WORK/job-work/"
    git -C "$WORK/job-work" add -A
    git -C "$WORK/job-work" -c user.name=it -c user.email=it@localhost commit -q -m job
    git -C "$WORK/job-work" push -q origin HEAD
    sha="$(git -C "$WORK/job-work" rev-parse HEAD)"
    local g=(-e trainer_session_id="$SESSION-git" -e trainer_source=git -e trainer_source_repo="file://$repo"
             -e trainer_source_version="$sha" -e trainer_requirements_file=requirements.txt
             -e '{"trainer_entrypoint": ["python", "train.py"], "trainer_runtime_extras": []}'
             -e trainer_torch_requirement= -e trainer_total_timesteps=100000
             -e trainer_checkpoint_interval=300 -e trainer_sync_interval=2)
    expect_run "git job started" any "${g[@]}"
    [[ "$(git -C "$DATA_ROOT/sessions/$SESSION-git/source" rev-parse HEAD)" == "$sha" ]] \
        && ok "git job at commit ${sha:0:12}" || bad "git job not at $sha"
    expect_run "git job re-run is idempotent" 0 "${g[@]}" -e trainer_mode=resume
    expect_run "git job stopped" any "${g[@]}" -e trainer_mode=resume -e stop=true \
        -e '{"expect_states": ["stopped"]}'
    job_source_role "$repo" "$sha"
}

job_source_role() {
    # job_source_role REPO SHA: rlops.fleet.job_source on its own (job_source.yml), git looked
    # for on the host: check mode creates nothing, a clone at SHA, a re-run changes nothing, a
    # new version is checked out, local changes in the clone are refused and kept.
    local repo="$1" sha="$2" dest="$WORK/job-source/source" sha2
    local j=(-e job_source_kind=git -e job_source_repo="file://$repo" -e job_source_dest="$dest"
             -e job_source_owner="$(id -un)")
    mkdir -p "$WORK/job-source"
    PLAY_YML="$HERE/job_source.yml" expect_run "job_source check mode" any "${j[@]}" \
        -e job_source_version="$sha" --check
    [[ ! -e "$dest" ]] && ok "job_source check mode created nothing" || bad "check mode made $dest"
    PLAY_YML="$HERE/job_source.yml" expect_run "job_source clone" any "${j[@]}" -e job_source_version="$sha"
    [[ "$(git -C "$dest" rev-parse HEAD)" == "$sha" ]] && ok "job_source clone at ${sha:0:12}" \
        || bad "job_source clone not at $sha"
    PLAY_YML="$HERE/job_source.yml" expect_run "job_source re-run is idempotent" 0 "${j[@]}" \
        -e job_source_version="$sha"
    echo "# v2" >>"$WORK/job-work/train.py"
    git -C "$WORK/job-work" -c user.name=it -c user.email=it@localhost commit -q -am v2
    git -C "$WORK/job-work" push -q origin HEAD
    sha2="$(git -C "$WORK/job-work" rev-parse HEAD)"
    PLAY_YML="$HERE/job_source.yml" expect_run "job_source new version" any "${j[@]}" -e job_source_version="$sha2"
    [[ "$(git -C "$dest" rev-parse HEAD)" == "$sha2" ]] && ok "job_source clone moved to ${sha2:0:12}" \
        || bad "job_source clone not at $sha2"
    echo "# mine" >>"$dest/train.py"
    PLAY_YML="$HERE/job_source.yml" expect_refused "job_source local changes refused" "Local modifications" \
        "${j[@]}" -e job_source_version="$sha"
    grep -q "# mine" "$dest/train.py" && ok "job_source kept the local change" || bad "local change lost"
}

venv_of() {
    # venv_of RUN_JSON: the venv the session's job runs in (its command's interpreter).
    "$PYTHON" -c 'import json, os, sys; print(os.path.dirname(os.path.dirname(json.load(open(sys.argv[1]))["command"][0])))' "$1"
}

recorded_set() {
    # Exact versions. A Python without a lock is refused before anything changes. A new
    # session takes a lock of its own (trainer_runtime_lock: the collection's with six one
    # release older) and LunarLander-v3, whose Box2D extra the role adds; it records that set
    # in config/requirements.lock, which reaches storage. The host then loses its data disk
    # and its venvs: a resume with the default inputs (no lock given, no env id) reads the
    # recorded set from storage and installs exactly it, in a venv of the same identity.
    local id="$SESSION-lock" own="$WORK/own.lock" data2="$WORK/data2" venvs2="$WORK/venvs2" minor
    minor="$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    sed 's/^six==.*/six==1.16.0/' "$WORK/runtime/locks/python$minor.txt" >"$own"
    local n=(-e trainer_session_id="$id" -e trainer_storage_uri="file://$WORK/lock-storage"
             -e trainer_total_timesteps=1000000 -e trainer_checkpoint_interval=2048
             -e trainer_sync_interval=2 -e trainer_start_timeout=300)
    local old_python
    local candidates=("${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.9.*/bin/python3.9)
    old_python=""
    [[ -x "${candidates[0]}" ]] && old_python="${candidates[0]}"
    if [[ -n "$old_python" ]]; then
        expect_refused "a Python without a lock" "is Python 3.9, for which the collection locks no versions" \
            "${n[@]}" -e trainer_python="$old_python"
        [[ ! -e "$DATA_ROOT/sessions/$id" ]] && ok "nothing made for the refused Python" \
            || bad "a session folder for the refused Python"
    else
        echo "    (no Python 3.9 here: the refusal of a Python without a lock is not run)"
    fi
    expect_run "LunarLander-v3 with a lock of its own" any "${n[@]}" -e trainer_env_id=LunarLander-v3 \
        -e trainer_runtime_lock="$own"
    local record="$DATA_ROOT/sessions/$id/config/requirements.lock" venv
    venv="$(venv_of "$DATA_ROOT/sessions/$id/config/run.json")"
    grep -qx '# requirement: rlops-runtime\[box2d,s3,sb3\]' "$record" && grep -qx 'six==1.16.0' "$record" \
        && ok "recorded: rlops-runtime[box2d,s3,sb3] under the session's own lock" || bad "record: $(head -5 "$record")"
    [[ "$("$venv/bin/python" -c 'import Box2D, six; print(six.__version__)')" == 1.16.0 ]] \
        && ok "the venv holds the lock's six 1.16.0 and Box2D" || bad "venv $venv: not the lock's versions"
    local step
    for _ in $(seq 180); do
        step="$(cat "$WORK/lock-storage/$id/checkpoints/LATEST" 2>/dev/null || echo 0)"
        ((10#$step > 0)) && [[ -f "$WORK/lock-storage/$id/config/requirements.lock" ]] && break
        sleep 1
    done
    cmp -s "$record" "$WORK/lock-storage/$id/config/requirements.lock" \
        && ok "the record is in storage (checkpoint $((10#$step)) too)" || bad "no record in storage"
    expect_run "stop" any "${n[@]}" -e trainer_mode=resume -e stop=true -e '{"expect_states": ["stopped"]}'
    step="$(status_field last_checkpoint_step "$id")"
    local r2=("${n[@]}" -e trainer_mode=resume -e trainer_data_root="$data2" -e trainer_venv_root="$venvs2")
    expect_run "resume on a fresh data root and venv root" any "${r2[@]}"
    cmp -s "$record" "$data2/sessions/$id/config/requirements.lock" \
        && ok "the recorded set came back from storage" || bad "record on the new data root differs"
    local venv2
    venv2="$(venv_of "$data2/sessions/$id/config/run.json")"
    [[ "$venv2" == "$venvs2/$(basename "$venv")" ]] && ok "same venv identity ($(basename "$venv"))" \
        || bad "venv $venv2, first ran in $venv"
    [[ "$("$venv2/bin/python" -c 'import Box2D, six; print(six.__version__)')" == 1.16.0 ]] \
        && ok "the new venv holds the recorded set (six 1.16.0, Box2D)" || bad "venv $venv2: not the recorded set"
    local resumed
    resumed="$("$data2/bin/rlops-run" status --data-root "$data2" --session "$id" \
        | "$PYTHON" -c "import json,sys; print(json.load(sys.stdin)[0]['resumed_from_step'])")"
    [[ "$resumed" != None && "$resumed" -ge "$step" ]] && ok "resumed from step $resumed (stopped at $step)" \
        || bad "resumed_from_step $resumed, stopped at $step"
    expect_run "resumed session stopped" any "${r2[@]}" -e stop=true -e '{"expect_states": ["stopped"]}'
    # The same storage as s3:// that only the host reads (trainer_storage_check=host, as an
    # endpoint only the hosts reach): localbucket serves a copy of it. A resume on a third
    # fresh data root reads the recorded set on the host (storage_check's read) and installs it.
    local data3="$WORK/data3" port url
    mkdir -p "$WORK/s3" && cp -a "$WORK/lock-storage" "$WORK/s3/lock-bucket"
    sed -i "s#file://$WORK/lock-storage#s3://lock-bucket#" "$WORK/s3/lock-bucket/$id/config/run.json"
    port="$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    url="http://127.0.0.1:$port"
    "$REPO/.venv/bin/localbucket" "$WORK/s3" --host 127.0.0.1 --port "$port" >"$WORK/s3.log" 2>&1 &
    S3_PID=$!
    for _ in $(seq 50); do curl -s -o /dev/null "$url/" && break; sleep 0.2; done
    local r3=("${n[@]}" -e trainer_mode=resume -e trainer_data_root="$data3" -e trainer_venv_root="$venvs2"
              -e trainer_storage_uri=s3://lock-bucket -e trainer_storage_check=host
              -e "{\"trainer_storage_credentials\": {\"RLOPS_S3_ENDPOINT_URL\": \"$url\",
                   \"AWS_ACCESS_KEY_ID\": \"lab\", \"AWS_SECRET_ACCESS_KEY\": \"lab\"}}")
    expect_run "resume from s3:// storage only the host reads" any "${r3[@]}"
    cmp -s "$record" "$data3/sessions/$id/config/requirements.lock" \
        && [[ "$(venv_of "$data3/sessions/$id/config/run.json")" == "$venv2" ]] \
        && ok "the recorded set came from s3:// on the host: same venv ($(basename "$venv2"))" \
        || bad "record or venv on the third data root differ"
    expect_run "s3:// resumed session stopped" any "${r3[@]}" -e stop=true -e '{"expect_states": ["stopped"]}'
    kill "$S3_PID" 2>/dev/null || true
}

systemd() {
    use_lab
    local unit="rlops-trainer@$SESSION.service"
    local r=(-e trainer_session_id="$SESSION" -e trainer_mode=resume -e trainer_start_timeout=300)
    session_life
    [[ "$("${ON_HOST[@]}" systemctl is-enabled "$unit")" == enabled ]] && ok "$unit enabled" \
        || bad "$unit not enabled"
    # A reboot: systemd stops the unit (the supervisor checkpoints), boots, starts it.
    wait_for_checkpoint "$(status_field last_checkpoint_step)"
    local before_pid
    before_pid="$(status_field supervisor_pid)"
    podman restart "$HOST" >/dev/null
    local active
    for _ in $(seq 120); do
        active=$("${ON_HOST[@]}" systemctl is-active "$unit" 2>/dev/null || true)
        [[ "$active" == active && "$(status_field state 2>/dev/null)" == running
           && "$(status_field supervisor_pid)" != "$before_pid" ]] && break
        sleep 2
    done
    expect_state running
    local resumed
    resumed="$(status_field resumed_from_step)"
    [[ "$resumed" != None && "$resumed" -gt 0 ]] && ok "resumed by itself after the reboot from step $resumed" \
        || bad "no resume after the reboot (resumed_from_step $resumed)"
    # sshd comes up after the unit: wait for it, not a fixed time.
    for _ in $(seq 60); do
        "${ON_HOST[@]}" systemctl is-active --quiet ssh.service && break
        sleep 0.5
    done
    expect_run "re-run after the reboot is idempotent" 0 "${r[@]}"
    expect_run "final stop" any "${r[@]}" -e stop=true -e '{"expect_states": ["stopped"]}'
    [[ "$("${ON_HOST[@]}" systemctl is-enabled "$unit" || true)" == disabled ]] && ok "$unit disabled" \
        || bad "$unit still enabled"
    finish_life
}

TIMES=()
phase() {
    local started=$SECONDS
    echo "== $1 (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    case "$1" in
        preflight) preflight ;;
        live) live ;;
        local) local_source; git_source ;;
        lockset) recorded_set ;;
        systemd) systemd ;;
    esac
    TIMES+=("$1 $((SECONDS - started)) s")
}
for what in "${PHASES[@]}"; do
    case "$what" in
        preflight|live|local|lockset|systemd) ;;
        all) ;;
        *) echo "usage: $0 [preflight|live|local|lockset|systemd|all]..."; exit 2 ;;
    esac
done
for what in "${PHASES[@]}"; do
    if [[ "$what" == all ]]; then
        for one in preflight live lockset systemd; do phase "$one"; done
    else
        phase "$what"
    fi
done
echo "times: $(IFS=,; all="${TIMES[*]}"; echo "${all//,/, }") (load average $(cut -d' ' -f1-3 /proc/loadavg))"
echo "$FAILS failure(s)"
[[ "$FAILS" == 0 ]]
