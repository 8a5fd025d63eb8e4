#!/usr/bin/env bash
# shellcheck disable=SC2015  # `test && ok "..." || bad "..."` is if/else here: ok only echoes
# Integration test of rlops.fleet.ray_cluster on 3 lab hosts of the lab's Ray image
# (its venv of the Ray set; systemd as PID 1, SSH, become).
#   tests/integration/targets/ray_cluster/runme.sh [PHASE...]
# Phases (all of them, in this order, when none is named):
#   bad_input   refused before anything changes: no venv, another Ray version on one host,
#               a GPU asked for where none is and an unknown user (one message for both)
#   start       check mode on fresh hosts changes nothing; start: 3 nodes and the
#               resources, the tunnel printed, the token 0640, the same on every node and
#               never in the output
#   restarts    a changed setting restarts every node; a stopped worker and a worker that
#               cannot reach the head: refused naming that worker and the address, then
#               both started by a re-run once the head is reachable
#   idempotent  a re-run changes nothing, nor does check mode on the running cluster
#   check_mode  check mode with a change says what it would restart and changes nothing;
#               check mode of stop leaves Ray running
#   stop        no Ray process left on any host (workers first)
#   stopped     token and units kept; a second stop and check mode of stop change nothing
#   restart     a start after the stop brings the 3 nodes back, then a stop
#   one_host    one host runs single-host on Ray; ray_cluster_state=stopped stops it
# tests/lab_ray runs these phases on its own three hosts, around a Ray session of the
# playbooks (the session's stop and resume stand in for `stop` and `restart`): make lab-ray.
# Cost, measured on the 2-core machine: see the Makefile's ray-cluster-it. The lab needs
# ~3 GB of memory while the cluster is up (head ~1.8 GB with the dashboard, workers ~0.4 GB
# each). Needs root, podman and the lab's Ray image (tests/lab/lab.sh ray-image, built when
# missing); run it under the machine's heavy lock where several suites share it.
# KEEP=1 keeps the lab and the temporary folder. RAY_IT_LAB=<state dir> runs against a lab of 3
# hosts already up there (tests/lab/lab.sh up 3; left up; its group_vars apply), with the Ray
# venv at RAY_IT_VENV (default: the one of the Ray image, found on the head).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../../../.." && pwd)"
export ANSIBLE_CONFIG="$REPO/ansible.cfg"
export ANSIBLE_NOCOLOR=1
export ANSIBLE_FORCE_COLOR=0
PLAYBOOK="$REPO/.venv/bin/ansible-playbook"
PYTHON="$REPO/.venv/bin/python"
WORK="$(mktemp -d /tmp/rlops-ray-it.XXXXXX)"
LOG="$WORK/last.log"
RESULT="$WORK/result.json"
FAILS=0
PREFIX="ray-it-$$"
LAB_STATE="${RAY_IT_LAB:-$WORK/lab}"
HOSTS=("$PREFIX-1" "$PREFIX-2" "$PREFIX-3")
HEAD="${HOSTS[0]}"
VENV="${RAY_IT_VENV:-}"
RAY_IMAGE="${RLOPS_LAB_RAY_IMAGE:-localhost/rlops-lab-ray:bookworm}"
TEMP_DIR=/var/lib/rlops/ray
LAB_UP=false

cleanup() {
    if [[ "${KEEP:-0}" == 1 ]]; then
        echo "kept $WORK (lab state $LAB_STATE)"
        return
    fi
    if $LAB_UP; then RLOPS_LAB_STATE_DIR="$LAB_STATE" "$REPO/tests/lab/lab.sh" down >/dev/null 2>&1 || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

on() { local host="$1"; shift; podman exec "$host" "$@"; }
# The same with every capability (the host's routes), so that the hosts need not be privileged.
on_privileged() { local host="$1"; shift; podman exec --privileged "$host" "$@"; }

ok() { echo "PASS $1"; }
bad() { echo "FAIL $1"; sed 's/^/    /' "$LOG" | tail -60; FAILS=$((FAILS + 1)); }

play() {
    # play ARGS... : the test playbook against the lab; output in $LOG, time in $PLAYED.
    local started=$SECONDS rc=0
    rm -f "$RESULT"
    "$PLAYBOOK" -i "$LAB_STATE/inventory.yml" -e ray_cluster_venv="$VENV" -e result_file="$RESULT" \
        "$@" "$HERE/ray_cluster.yml" >"$LOG" 2>&1 || rc=$?
    PLAYED=$((SECONDS - started))
    return "$rc"
}
PLAYED=0

recap_changed() {
    # The sum of changed= over the hosts of the last play.
    grep -E "^$PREFIX-[0-9]+ +:" "$LOG" | sed -E 's/.*changed=([0-9]+).*/\1/' | awk '{s += $1} END {print s + 0}'
}

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
    local sum
    sum="$(recap_changed)"
    if [[ "$changed" == 0 && "$sum" != 0 ]]; then
        bad "$name (not idempotent: changed=$sum)"
        grep -B1 -E '^changed:' "$LOG" | sed 's/^/    /' | head -40
        return
    fi
    ok "$name (${PLAYED} s, changed=$sum)"
}

unchanged_hosts() {
    # unchanged_hosts: the role's files on every host, to compare before and after a run.
    local host
    for host in "${HOSTS[@]}"; do
        on "$host" sh -c 'ls -l --time-style=+%s /etc/rlops/ray /etc/systemd/system/rlops-ray-* \
            /usr/local/libexec/rlops-ray-* 2>/dev/null; md5sum /etc/rlops/ray/* 2>/dev/null; \
            systemctl is-active rlops-ray-head rlops-ray-worker 2>/dev/null' || true
    done
}

ray_processes() {
    # ray_processes HOST: the Ray processes on HOST (raylet, gcs_server, ray start, ray::*).
    on "$1" pgrep -a -f -- "$TEMP_DIR|^ray::|rlops-ray-(head|worker)" || true
}

result_field() { "$PYTHON" -c "import json,sys; print(json.load(open('$RESULT'))$1)"; }

cluster_nodes() {
    # cluster_nodes: live nodes as the head's Ray sees them (as the units' user, with the token).
    on "$HEAD" runuser -u lab -- env RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH=/etc/rlops/ray/auth_token \
        "$VENV/bin/python" -c "
import ray
ray.init(address='$(result_field "['address']")', logging_level='ERROR')
print(sum(1 for n in ray.nodes() if n['Alive']), ray.cluster_resources().get('rlops_rollout', 0),
      ray.cluster_resources().get('rlops_learner', 0))" 2>/dev/null | tail -1
}

boot() {
    local started=$SECONDS
    echo "== boot (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    if [[ -n "${RAY_IT_LAB:-}" ]]; then
        mapfile -t HOSTS < <(grep -E '^    [a-z0-9-]+:$' "$LAB_STATE/inventory.yml" | tr -d ' :')
        HEAD="${HOSTS[0]}"
        PREFIX="${HEAD%-1}"
    else
        # The Ray image as it is (built when missing): the role needs its venv, not the
        # newest runtime (`up --ray` would rebuild it after any edit of runtime/ or the
        # trainer's roles).
        podman image exists "$RAY_IMAGE" || "$REPO/tests/lab/lab.sh" ray-image >/dev/null
        LAB_UP=true
        RLOPS_LAB_STATE_DIR="$LAB_STATE" "$REPO/tests/lab/lab.sh" up 3 --image "$RAY_IMAGE" \
            --name "$PREFIX" >/dev/null
    fi
    if [[ -z "$VENV" ]]; then
        VENV="$(on "$HEAD" sh -c 'ls -d /var/lib/rlops/venvs/*/bin/ray' | head -1)"
        VENV="${VENV%/bin/ray}"
    fi
    [[ -n "$VENV" ]] || { echo "no Ray venv on $HEAD"; exit 1; }
    echo "lab of 3 (${HOSTS[*]}) up in $((SECONDS - started)) s; venv $VENV"
}

bad_input() {
    echo "== bad input (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    local before
    before="$(unchanged_hosts)"
    expect_refused "no venv" "/nonexistent/venv" -e ray_cluster_venv=/nonexistent/venv
    # Another Ray on the third host: a dist-info of 2.59.0 ahead of the venv's on its path.
    local odd="${HOSTS[2]}"
    on "$odd" sh -c "mkdir -p /opt/odd/bin /opt/odd/site/ray-2.59.0.dist-info \
        && printf 'Metadata-Version: 2.1\nName: ray\nVersion: 2.59.0\n' >/opt/odd/site/ray-2.59.0.dist-info/METADATA \
        && printf '#!/bin/sh\nPYTHONPATH=/opt/odd/site exec $VENV/bin/python \"\$@\"\n' >/opt/odd/bin/python \
        && chmod +x /opt/odd/bin/python"
    for host in "${HOSTS[@]:0:2}"; do on "$host" ln -sfn "$VENV" /opt/odd; done
    expect_refused "another Ray version on one host" "$odd" -e ray_cluster_venv=/opt/odd
    grep -qF "2.59.0" "$LOG" && ok "the message says the odd version" || bad "no 2.59.0 in the message"
    # Two problems at once: both in the one message.
    expect_refused "a GPU where none is" "GPU" -e ray_cluster_num_gpus=1 -e ray_cluster_user=nobody-here
    grep -qF "nobody-here" "$LOG" && ok "an unknown user, in the same message" || bad "no nobody-here in the message"
    [[ "$(unchanged_hosts)" == "$before" ]] && ok "refusals changed nothing" || bad "a refusal changed a host"
}

# The start phase sets a drain time of its own, so that `restarts` changes every node's files
# by going back to the default: the cluster ends as the playbooks start it (tests/lab_ray's
# session then finds it unchanged).
START_CHANGE=(-e ray_cluster_drain_timeout=7)

start() {
    echo "== start (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    local before
    before="$(unchanged_hosts)"
    expect_run "check mode on fresh hosts" any --check "${START_CHANGE[@]}"
    [[ "$(unchanged_hosts)" == "$before" ]] && ok "check mode on fresh hosts changed nothing" \
        || bad "check mode changed a host"
    expect_run "start" any "${START_CHANGE[@]}"
    local nodes
    nodes="$(result_field "['expected']['nodes']")"
    [[ "$nodes" == 3 ]] && ok "result: 3 nodes expected" || bad "result: $nodes nodes expected"
    grep -qF "ssh -N -L 8265:127.0.0.1:8265" "$LOG" && ok "the tunnel is printed: $(result_field "['dashboard_tunnel']")" \
        || bad "no tunnel printed"
    local live
    live="$(cluster_nodes)"
    [[ "$live" == "3 "* ]] && ok "the head sees 3 live nodes (nodes, rlops_rollout, rlops_learner: $live)" \
        || bad "the head sees: $live"
    on "$HEAD" stat -c '%a %U %G' /etc/rlops/ray/auth_token | grep -qx '640 root lab' && ok "token 0640 root:lab" \
        || bad "token mode: $(on "$HEAD" stat -c '%a %U %G' /etc/rlops/ray/auth_token)"
    local sums
    sums="$(for host in "${HOSTS[@]}"; do on "$host" md5sum /etc/rlops/ray/auth_token | cut -d' ' -f1; done | sort -u | wc -l)"
    [[ "$sums" == 1 ]] && ok "the same token on every node" || bad "$sums different tokens"
    grep -qF "$(on "$HEAD" cat /etc/rlops/ray/auth_token)" "$LOG" && bad "the token is in the output" \
        || ok "the token is not in the output"
}

main_pids() {
    # main_pids: the main process of each host's Ray unit.
    local host
    for host in "${HOSTS[@]}"; do
        on "$host" systemctl show -p MainPID --value rlops-ray-head.service rlops-ray-worker.service \
            | grep -vx -e 0 -e '' || true
    done
}

restarts() {
    echo "== restarts (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    local before after
    before="$(main_pids)"
    expect_run "a changed setting restarts the nodes (back to the default drain time)" any
    after="$(main_pids)"
    [[ -n "$after" && -z "$(comm -12 <(sort <<<"$before") <(sort <<<"$after"))" ]] \
        && ok "every node restarted (main pids $(echo "$before" | paste -sd,) -> $(echo "$after" | paste -sd,))" \
        || bad "not every node restarted: $(echo "$before" | paste -sd,) -> $(echo "$after" | paste -sd,)"
    on "$HEAD" grep -qx RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=5 /etc/rlops/ray/node.env \
        && ok "the new setting is in node.env" || bad "node.env: $(on "$HEAD" cat /etc/rlops/ray/node.env)"
    # A stopped worker, and a worker that cannot reach the head (a blackhole route to it).
    local head_ip
    head_ip="$(result_field "['address']" | cut -d: -f1)"
    on "${HOSTS[1]}" systemctl stop rlops-ray-worker.service
    on "${HOSTS[2]}" systemctl stop rlops-ray-worker.service
    on_privileged "${HOSTS[2]}" ip route add blackhole "$head_ip/32"
    expect_refused "a worker that cannot reach the head" \
        "${HOSTS[2]} cannot reach the head $HEAD at $head_ip:6379" -e ray_cluster_reach_timeout=3
    grep -F "cannot reach the head" "$LOG" | grep -qF "${HOSTS[1]}" \
        && bad "the refusal names ${HOSTS[1]}, which reaches the head" || ok "the refusal names only ${HOSTS[2]}"
    on_privileged "${HOSTS[2]}" ip route del blackhole "$head_ip/32"
    expect_run "reachable again: a re-run starts the stopped workers" any
    local host
    for host in "${HOSTS[@]:1}"; do
        [[ "$(on "$host" systemctl is-active rlops-ray-worker.service)" == active ]] \
            && ok "$host's worker is active" || bad "$host's worker is not active"
    done
    local live
    live="$(cluster_nodes)"
    [[ "$live" == "3 "* ]] && ok "3 live nodes again ($live)" || bad "the head sees: $live"
}

ray_left_running() {
    # ray_left_running: every host still runs Ray.
    local host gone=""
    for host in "${HOSTS[@]}"; do [[ -z "$(ray_processes "$host")" ]] && gone+=" $host"; done
    [[ -z "$gone" ]] && ok "Ray still runs on every host" || bad "Ray is gone on:$gone"
}

no_ray_left() {
    # no_ray_left HOST...: no Ray process on these hosts.
    local host procs left=""
    for host in "$@"; do
        procs="$(ray_processes "$host")"
        [[ -n "$procs" ]] && left+=" $host: $procs;"
    done
    [[ -z "$left" ]] && ok "no Ray process left on $*" || bad "Ray processes left:$left"
}

idempotent() {
    echo "== idempotent (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    expect_run "re-run" 0
    local before
    before="$(unchanged_hosts)"
    expect_run "check mode on the running cluster" 0 --check
    [[ "$(unchanged_hosts)" == "$before" ]] && ok "check mode changed nothing" || bad "check mode changed a host"
}

check_mode() {
    echo "== check mode (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    local before
    before="$(unchanged_hosts)"
    expect_run "check mode with a change" any --check "${START_CHANGE[@]}"
    grep -qF "would (re)start the Ray nodes" "$LOG" && ok "check mode says what it would restart" \
        || bad "check mode did not say what it would restart"
    expect_run "check mode of stop" any --check -e entry=stop
    ray_left_running
    [[ "$(unchanged_hosts)" == "$before" ]] && ok "check mode changed nothing" || bad "check mode changed a host"
}

stop() {
    echo "== stop (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    expect_run "stop" any -e entry=stop
    no_ray_left "${HOSTS[@]}"
}

stopped() {
    echo "== stopped (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    on "$HEAD" test -s /etc/rlops/ray/auth_token && on "$HEAD" test -f /etc/systemd/system/rlops-ray-head.service \
        && ok "token and units kept" || bad "token or unit gone after stop"
    expect_run "stop again" 0 -e entry=stop
    expect_run "check mode of stop on a stopped cluster" 0 --check -e entry=stop
}

restart() {
    echo "== restart (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    expect_run "start after stop" any
    local live
    live="$(cluster_nodes)"
    [[ "$live" == "3 "* ]] && ok "3 live nodes after a restart ($live)" || bad "the head sees: $live"
    expect_run "stop after the restart" any -e entry=stop
    no_ray_left "${HOSTS[@]}"
}

one_host() {
    # One host: not refused, it runs single-host on Ray (learner and env runners on the head).
    echo "== one host (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    expect_run "one host runs single-host" any --limit "$HEAD"
    local live
    live="$(cluster_nodes)"
    [[ "$live" == "1 1.0 1.0" ]] && ok "one node with rlops_rollout 1 and rlops_learner 1" \
        || bad "the single host shows: $live"
    expect_run "its stop through ray_cluster_state=stopped" any --limit "$HEAD" -e ray_cluster_state=stopped
    no_ray_left "$HEAD"
}

ALL=(bad_input start restarts idempotent check_mode stop stopped restart one_host)
PHASES=("$@")
[[ ${#PHASES[@]} -gt 0 ]] || PHASES=("${ALL[@]}")
for phase in "${PHASES[@]}"; do
    [[ " ${ALL[*]} " == *" $phase "* ]] || { echo "unknown phase $phase (phases: ${ALL[*]})"; exit 2; }
done
TIMES=()
for phase in boot "${PHASES[@]}"; do
    started=$SECONDS
    "$phase"
    TIMES+=("$phase $((SECONDS - started)) s")
done
echo "times: $(IFS=,; all="${TIMES[*]}"; echo "${all//,/, }") (load average $(cut -d' ' -f1-3 /proc/loadavg))"
echo "$FAILS failure(s)"
[[ "$FAILS" == 0 ]]
