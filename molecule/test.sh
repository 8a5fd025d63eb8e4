#!/usr/bin/env bash
# Run the Molecule scenarios of every role (or of the roles named) in lab hosts.
#
#   molecule/test.sh [ROLE...] [-- EXTRA MOLECULE TEST ARGS]
#
# Each scenario gets its own container name and ephemeral directory, so runs from
# several checkouts or sessions on one host never share state, and two scenarios of one
# run can go at once: RLOPS_MOLECULE_JOBS (default 2) run side by side, each one's output
# printed whole when it ends. Needs root (rootful podman) and `tests/lab/lab.sh setup` done
# once. Exits non-zero when any scenario fails. Whatever happens (a failure, Ctrl-C,
# TERM), this run's containers, the loop devices attached inside them and its ephemeral
# directories are gone when it ends.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# molecule calls ansible-config and ansible-playbook by name.
export PATH="${RLOPS_VENV:-$REPO/.venv}/bin:$PATH"
command -v molecule >/dev/null || { echo "molecule/test.sh: molecule not found: run make dev" >&2; exit 1; }
JOBS=${RLOPS_MOLECULE_JOBS:-2}
[[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || { echo "molecule/test.sh: RLOPS_MOLECULE_JOBS=$JOBS: give a count" >&2; exit 2; }

roles=() extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --) shift; extra=("$@"); break ;;
    *) roles+=("$1") ;;
  esac
  shift
done
if [ ${#roles[@]} -eq 0 ]; then
  for dir in "$REPO"/roles/*/molecule; do
    [ -d "$dir" ] && roles+=("$(basename "$(dirname "$dir")")")
  done
fi

"$REPO/tests/lab/lab.sh" image
# Scenarios that boot the trainer image (the lab image with the trainer's venv) need it
# up to date: built once, by the trainer role, when its inputs changed.
for role in "${roles[@]}"; do
  if grep -qs 'rlops-lab-trainer' "$REPO/roles/$role"/molecule/*/molecule.yml; then
    "$REPO/tests/lab/lab.sh" trainer-image >/dev/null
    break
  fi
done

# The scenarios, ROLE/SCENARIO each.
scenarios=()
for role in "${roles[@]}"; do
  for file in "$REPO/roles/$role"/molecule/*/molecule.yml; do
    [ -f "$file" ] || continue
    scenarios+=("$role/$(basename "$(dirname "$file")")")
  done
done

# Each scenario runs as a background job in a process group of its own (set -m), so that
# a signal to this script stops them at once (bash runs traps only between foreground
# commands) and takes molecule, ansible-playbook and the commands they started with them.
set -m
declare -A ephemeral_of=() started_of=() scenario_of=()
logs=$(mktemp -d /tmp/rlops-molecule-logs.XXXXXX)

instance_of() {  # ROLE/SCENARIO -> its container's name in this run
  local role=${1%/*} scenario=${1#*/}
  echo "rlops-mol-${role//_/-}-${scenario//_/-}-$$"
}

# What molecule's own cleanup and destroy would have done, for a scenario that did not
# get to them: the shared cleanup playbook (it detaches the loop devices attached inside
# the instance: they outlive the container, and the host has eight), then the container.
remove_leftovers() {  # ROLE/SCENARIO
  local containers ephemeral=${ephemeral_of[$1]}
  # <instance>-1: a scenario whose host lab.sh makes (deepracer_stack: lab.sh up 1 --docker).
  containers=$(podman ps -a -q --filter "name=^$(instance_of "$1")(-1)?\$")
  [ -n "$containers" ] || return 0
  if [ -f "$ephemeral/inventory/ansible_inventory.yml" ]; then
    ansible-playbook -i "$ephemeral/inventory/ansible_inventory.yml" "$REPO/molecule/cleanup.yml" \
      </dev/null >/dev/null 2>&1 || echo "molecule/test.sh: cleanup playbook failed" >&2
  fi
  echo "$containers" | xargs -r podman rm -f -t 3 >/dev/null
}

interrupted() {
  trap - INT TERM
  echo "== molecule: interrupted: removing this run's instances" >&2
  local pid one
  for pid in "${!scenario_of[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for pid in "${!scenario_of[@]}"; do
    wait "$pid" 2>/dev/null || true
    one=${scenario_of[$pid]}
    remove_leftovers "$one"
    rm -rf "${ephemeral_of[$one]}"
  done
  rm -rf "$logs"
  exit 130
}
trap interrupted INT TERM

start() {  # ROLE/SCENARIO
  local role=${1%/*} scenario=${1#*/} ephemeral
  ephemeral=$(mktemp -d /tmp/rlops-molecule.XXXXXX)
  # The key Ansible logs in with (molecule/podman-ssh.sh authorises it in the instance).
  ssh-keygen -q -t ed25519 -N '' -C molecule -f "$ephemeral/id_ed25519" </dev/null
  echo "== molecule: $1 started (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  (cd "$REPO/roles/$role" \
    && MOLECULE_EPHEMERAL_DIRECTORY=$ephemeral RLOPS_MOLECULE_INSTANCE=$(instance_of "$1") \
      exec molecule --base-config "$REPO/molecule/config.yml" test -s "$scenario" "${extra[@]}") \
    </dev/null >"$logs/${1//\//-}.log" 2>&1 &
  ephemeral_of[$1]=$ephemeral started_of[$1]=$SECONDS scenario_of[$!]=$1
}

failed=() timings=() ran=0
finish() {  # PID RC
  local one=${scenario_of[$1]} elapsed
  unset "scenario_of[$1]"
  elapsed=$((SECONDS - ${started_of[$one]}))
  echo "== molecule: $one output"
  cat "$logs/${one//\//-}.log"
  if [ "$2" -eq 0 ]; then
    echo "== molecule: $one passed in $elapsed s"
  else
    echo "== molecule: $one FAILED after $elapsed s"
    failed+=("$one")
  fi
  timings+=("$one ${elapsed}s")
  # Normally nothing is left (molecule's test destroys, after a failure too); this
  # catches a molecule that died before its destroy.
  remove_leftovers "$one"
  rm -rf "${ephemeral_of[$one]}"
  ran=$((ran + 1))
}

started=$SECONDS
next=0
while [ "$next" -lt ${#scenarios[@]} ] || [ ${#scenario_of[@]} -gt 0 ]; do
  while [ "$next" -lt ${#scenarios[@]} ] && [ ${#scenario_of[@]} -lt "$JOBS" ]; do
    start "${scenarios[$next]}"
    next=$((next + 1))
  done
  rc=0 done_pid=""
  wait -n -p done_pid "${!scenario_of[@]}" || rc=$?
  [ -n "$done_pid" ] || continue
  finish "$done_pid" "$rc"
done
rm -rf "$logs"

echo "molecule: times: ${timings[*]}; all ${JOBS} at a time: $((SECONDS - started)) s" \
  "(load average now $(cut -d' ' -f1-3 /proc/loadavg))"
if [ ${#failed[@]} -gt 0 ]; then
  echo "molecule: ${#failed[@]} of $ran scenario(s) failed: ${failed[*]}" >&2
  exit 1
fi
echo "molecule: $ran scenario(s) passed"
