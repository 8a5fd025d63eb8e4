#!/usr/bin/env bash
# Run the Molecule scenarios of every role (or of the roles named) in lab hosts.
#
#   molecule/test.sh [ROLE...] [-- EXTRA MOLECULE TEST ARGS]
#
# Each scenario gets its own container name and ephemeral directory, so runs from
# several checkouts or sessions on one host never share state. Needs root (rootful
# podman) and `tests/lab/lab.sh setup` done once.
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

# Interrupted: take this run's containers down (molecule's destroy will not run).
trap 'podman ps -a -q --filter "name=^rlops-mol-.*-$$\$" | xargs -r podman rm -f -t 3 >/dev/null; exit 130' INT TERM

failed=() ran=0
for role in "${roles[@]}"; do
  for file in "$REPO/roles/$role"/molecule/*/molecule.yml; do
    [ -f "$file" ] || continue
    scenario=$(basename "$(dirname "$file")")
    ephemeral=$(mktemp -d /tmp/rlops-molecule.XXXXXX)
    start=$SECONDS
    echo "== molecule: $role/$scenario"
    if (cd "$REPO/roles/$role" \
      && MOLECULE_EPHEMERAL_DIRECTORY=$ephemeral \
        RLOPS_MOLECULE_INSTANCE="rlops-mol-${role//_/-}-${scenario//_/-}-$$" \
        molecule --base-config "$REPO/molecule/config.yml" test -s "$scenario" "${extra[@]}"); then
      echo "== molecule: $role/$scenario passed in $((SECONDS - start)) s"
    else
      echo "== molecule: $role/$scenario FAILED after $((SECONDS - start)) s"
      failed+=("$role/$scenario")
    fi
    rm -rf "$ephemeral"
    ran=$((ran + 1))
  done
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "molecule: ${#failed[@]} of $ran scenario(s) failed: ${failed[*]}" >&2
  exit 1
fi
echo "molecule: $ran scenario(s) passed"
