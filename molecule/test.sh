#!/usr/bin/env bash
# Run the Molecule scenarios of every role (or of the roles named) in lab hosts.
#
#   molecule/test.sh [ROLE...] [-- EXTRA MOLECULE TEST ARGS]
#
# Each scenario gets its own container name and ephemeral directory, so runs from
# several checkouts or sessions on one host never share state. Needs root (rootful
# podman) and `tests/lab/lab.sh setup` done once. Exits non-zero when any scenario
# fails. Whatever happens (a failure, Ctrl-C, TERM), this run's containers, the loop
# devices attached inside them and its ephemeral directories are gone when it ends.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# molecule calls ansible-config and ansible-playbook by name.
export PATH="${RLOPS_VENV:-$REPO/.venv}/bin:$PATH"
command -v molecule >/dev/null || { echo "molecule/test.sh: molecule not found: run make dev" >&2; exit 1; }

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

# The scenario runs as a background job in a process group of its own (set -m), so that
# a signal to this script stops it at once (bash runs traps only between foreground
# commands) and takes molecule, ansible-playbook and the commands they started with it.
set -m
scenario_pid="" ephemeral=""

# What molecule's own cleanup and destroy would have done, for a scenario that did not
# get to them: the shared cleanup playbook (it detaches the loop devices attached inside
# the instance: they outlive the container, and the host has eight), then the containers.
remove_leftovers() {
  local containers
  containers=$(podman ps -a -q --filter "name=^rlops-mol-.*-$$\$")
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
  if [ -n "$scenario_pid" ]; then
    kill -TERM -- "-$scenario_pid" 2>/dev/null || true
    wait "$scenario_pid" 2>/dev/null || true
  fi
  remove_leftovers
  [ -z "$ephemeral" ] || rm -rf "$ephemeral"
  exit 130
}
trap interrupted INT TERM

failed=() timings=() ran=0
for role in "${roles[@]}"; do
  for file in "$REPO/roles/$role"/molecule/*/molecule.yml; do
    [ -f "$file" ] || continue
    scenario=$(basename "$(dirname "$file")")
    ephemeral=$(mktemp -d /tmp/rlops-molecule.XXXXXX)
    start=$SECONDS
    echo "== molecule: $role/$scenario (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    (cd "$REPO/roles/$role" \
      && MOLECULE_EPHEMERAL_DIRECTORY=$ephemeral \
        RLOPS_MOLECULE_INSTANCE="rlops-mol-${role//_/-}-${scenario//_/-}-$$" \
        exec molecule --base-config "$REPO/molecule/config.yml" test -s "$scenario" "${extra[@]}") </dev/null &
    scenario_pid=$!
    rc=0
    wait "$scenario_pid" || rc=$?
    scenario_pid=""
    elapsed=$((SECONDS - start))
    if [ "$rc" -eq 0 ]; then
      echo "== molecule: $role/$scenario passed in $elapsed s"
    else
      echo "== molecule: $role/$scenario FAILED after $elapsed s"
      failed+=("$role/$scenario")
    fi
    timings+=("$role/$scenario ${elapsed}s")
    # Normally nothing is left (molecule's test destroys, after a failure too); this
    # catches a molecule that died before its destroy.
    remove_leftovers
    rm -rf "$ephemeral"
    ephemeral=""
    ran=$((ran + 1))
  done
done

echo "molecule: times: ${timings[*]} (load average now $(cut -d' ' -f1-3 /proc/loadavg))"
if [ ${#failed[@]} -gt 0 ]; then
  echo "molecule: ${#failed[@]} of $ran scenario(s) failed: ${failed[*]}" >&2
  exit 1
fi
echo "molecule: $ran scenario(s) passed"
