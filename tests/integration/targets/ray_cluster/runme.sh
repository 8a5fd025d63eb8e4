#!/usr/bin/env bash
# shellcheck disable=SC2015  # `test && ok "..." || bad "..."` is if/else here: ok only echoes
# Integration test of rlops.fleet.ray_cluster on 3 lab hosts of the lab's Ray image
# (its venv of the Ray set; systemd as PID 1, SSH, become).
#   tests/integration/targets/ray_cluster/runme.sh
# Phases, in one lab: bad input refused before anything changes (no venv, another Ray
# version on one host, a GPU asked for where none is, an unknown user); start (3 nodes, the
# resources, the token the same on every node and never in the output); a re-run changes
# nothing; check mode changes nothing (and says what it would restart); a changed setting
# restarts every node; a stopped worker unit started again by a re-run; a worker that cannot
# reach the head refused naming it and the address; stop leaves no Ray process (workers
# first), a second stop and check mode change nothing; a start after the stop brings the
# cluster back; one host runs single-host on Ray.
# Cost, measured on the 2-core machine: 8 min 8 s at load 3-5 with other suites running
# (boot 5 s, bad input 30 s, start 132 s, restarts 204 s, stop 117 s); 3 min 25 s at load
# 1.5-3 on hosts already up. The lab needs ~3 GB of memory while the cluster is up (head
# ~1.8 GB with the dashboard, workers ~0.4 GB each). Needs root, podman and the lab's Ray
# image (tests/lab/lab.sh ray-image, built when missing); run it under the machine's heavy
# lock where several suites share it.
# KEEP=1 keeps the lab and the temporary folder. RAY_IT_LAB=<state dir> runs against a lab of 3
# hosts already up there (tests/lab/lab.sh up 3 --privileged; left up), with the Ray venv at
# RAY_IT_VENV (default: the one of the Ray image, found on the head).
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
        # trainer's roles). --privileged: the reach test puts a blackhole route on a worker.
        podman image exists "$RAY_IMAGE" || "$REPO/tests/lab/lab.sh" ray-image >/dev/null
        LAB_UP=true
        RLOPS_LAB_STATE_DIR="$LAB_STATE" "$REPO/tests/lab/lab.sh" up 3 --image "$RAY_IMAGE" --privileged \
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
    expect_refused "a GPU where none is" "GPU" -e ray_cluster_num_gpus=1
    expect_refused "unknown user" "nobody-here" -e ray_cluster_user=nobody-here
    [[ "$(unchanged_hosts)" == "$before" ]] && ok "refusals changed nothing" || bad "a refusal changed a host"
}

start() {
    echo "== start (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    local before
    before="$(unchanged_hosts)"
    expect_run "check mode on fresh hosts" any --check
    [[ "$(unchanged_hosts)" == "$before" ]] && ok "check mode on fresh hosts changed nothing" \
        || bad "check mode changed a host"
    expect_run "start" any
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
    expect_run "re-run" 0
    before="$(unchanged_hosts)"
    expect_run "check mode on the running cluster" 0 --check
    expect_run "check mode with a change" any --check -e ray_cluster_drain_timeout=7
    grep -qF "would (re)start the Ray nodes" "$LOG" && ok "check mode says what it would restart" \
        || bad "check mode did not say what it would restart"
    [[ "$(unchanged_hosts)" == "$before" ]] && ok "check mode changed nothing" || bad "check mode changed a host"
}

main_pids() {
    # main_pids: the main process of each host's Ray unit.
    local host
    for host in "${HOSTS[@]}"; do
        on "$host" systemctl show -p MainPID --value rlops-ray-head.service rlops-ray-worker.service \
            | grep -vx -e 0 -e '' || true
    done
}

restart_worker() {
    echo "== restarts (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    local before after
    before="$(main_pids)"
    expect_run "a changed setting restarts the nodes" any -e ray_cluster_drain_timeout=7
    after="$(main_pids)"
    [[ -n "$after" && -z "$(comm -12 <(sort <<<"$before") <(sort <<<"$after"))" ]] \
        && ok "every node restarted (main pids $(echo "$before" | paste -sd,) -> $(echo "$after" | paste -sd,))" \
        || bad "not every node restarted: $(echo "$before" | paste -sd,) -> $(echo "$after" | paste -sd,)"
    on "$HEAD" grep -qx RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=7 /etc/rlops/ray/node.env \
        && ok "the new setting is in node.env" || bad "node.env: $(on "$HEAD" cat /etc/rlops/ray/node.env)"
    expect_run "back to the default" any
    on "${HOSTS[1]}" systemctl stop rlops-ray-worker.service
    expect_run "re-run starts the stopped worker" any
    [[ "$(on "${HOSTS[1]}" systemctl is-active rlops-ray-worker.service)" == active ]] \
        && ok "${HOSTS[1]}'s worker is active" || bad "${HOSTS[1]}'s worker is not active"
    local live
    live="$(cluster_nodes)"
    [[ "$live" == "3 "* ]] && ok "3 live nodes again ($live)" || bad "the head sees: $live"
    # A worker that cannot reach the head: a blackhole route to the head's address.
    local head_ip
    head_ip="$(result_field "['address']" | cut -d: -f1)"
    on "${HOSTS[2]}" systemctl stop rlops-ray-worker.service
    on "${HOSTS[2]}" ip route add blackhole "$head_ip/32"
    expect_refused "a worker that cannot reach the head" \
        "${HOSTS[2]} cannot reach the head $HEAD at $head_ip:6379" -e ray_cluster_reach_timeout=3
    on "${HOSTS[2]}" ip route del blackhole "$head_ip/32"
    expect_run "reachable again: started" any
}

stop() {
    echo "== stop (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    expect_run "check mode of stop" any --check -e entry=stop
    local left=""
    for host in "${HOSTS[@]}"; do [[ -z "$(ray_processes "$host")" ]] && left+=" $host"; done
    [[ -z "$left" ]] && ok "check mode of stop left Ray running" || bad "Ray is gone on:$left after a check"
    expect_run "stop" any -e entry=stop
    left=""
    for host in "${HOSTS[@]}"; do
        local procs
        procs="$(ray_processes "$host")"
        [[ -n "$procs" ]] && left+=" $host: $procs;"
    done
    [[ -z "$left" ]] && ok "no Ray process left on any host" || bad "Ray processes left:$left"
    on "$HEAD" test -s /etc/rlops/ray/auth_token && on "$HEAD" test -f /etc/systemd/system/rlops-ray-head.service \
        && ok "token and units kept" || bad "token or unit gone after stop"
    expect_run "stop again" 0 -e entry=stop
    expect_run "check mode of stop on a stopped cluster" 0 --check -e entry=stop
    expect_run "start after stop" any
    local live
    live="$(cluster_nodes)"
    [[ "$live" == "3 "* ]] && ok "3 live nodes after a restart ($live)" || bad "the head sees: $live"
    expect_run "final stop" any -e ray_cluster_state=stopped
    # One host: not refused, it runs single-host on Ray (learner and env runners on the head).
    expect_run "one host runs single-host" any --limit "$HEAD"
    live="$(cluster_nodes)"
    [[ "$live" == "1 1.0 1.0" ]] && ok "one node with rlops_rollout 1 and rlops_learner 1" \
        || bad "the single host shows: $live"
    expect_run "its stop" any --limit "$HEAD" -e entry=stop
    [[ -z "$(ray_processes "$HEAD")" ]] && ok "no Ray process left on $HEAD" || bad "Ray left on $HEAD"
}

TIMES=()
for phase in boot bad_input start restart_worker stop; do
    started=$SECONDS
    "$phase"
    TIMES+=("$phase $((SECONDS - started)) s")
done
echo "times: $(IFS=,; all="${TIMES[*]}"; echo "${all//,/, }") (load average $(cut -d' ' -f1-3 /proc/loadavg))"
echo "$FAILS failure(s)"
[[ "$FAILS" == 0 ]]
