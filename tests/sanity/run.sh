#!/usr/bin/env bash
# `ansible-test sanity` for rlops.fleet, the gate every Galaxy collection passes.
#
#   tests/sanity/run.sh [ansible-test sanity options, e.g. --test pylint]
#
# Runs without Galaxy and without ansible-test's download of get-pip.py:
# - ansible-test wants the collection at ansible_collections/<ns>/<name> with the
#   collections it needs beside it. A temporary tree links this checkout as rlops/fleet
#   and its dependencies (galaxy.yml) from the `ansible` package in the venv.
# - each sanity test runs in a venv of its own, bootstrapped by a get-pip script that
#   ansible-test downloads once into ~/.ansible/test/cache. We put a script there that
#   calls ensurepip instead. The test requirements themselves (exact pins shipped with
#   ansible-test) come from PyPI on the first run and stay in ~/.ansible/test/venv,
#   keyed by their hash: later runs install nothing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VENV=${RLOPS_VENV:-$ROOT/.venv}

die() { printf 'sanity: error: %s\n' "$*" >&2; exit 1; }

[ -x "$VENV/bin/ansible-test" ] || die "no ansible-test in $VENV (run make dev)"
# The controller's Python only (ansible-test's --docker is not available here).
PYTHON_VERSION=$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
# The collections galaxy.yml depends on, as namespace/name.
read -r -a DEPENDENCIES < <("$VENV/bin/python" - "$ROOT/galaxy.yml" <<'PY'
import sys
import yaml
with open(sys.argv[1]) as handle:
    print(" ".join(name.replace(".", "/") for name in yaml.safe_load(handle)["dependencies"]))
PY
)

# The shellcheck test is skipped with only a warning when the program is missing: install it
# (Debian's package, as tests/lab/lab.sh installs podman) or refuse.
if ! command -v shellcheck >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    printf 'sanity: installing shellcheck\n' >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends shellcheck >/dev/null
  else
    die "shellcheck is not installed (the shellcheck test would be skipped): install it"
  fi
fi

# Bundled collections of the `ansible` package: site-packages/ansible_collections.
BUNDLED=$("$VENV/bin/python" -c \
  'import ansible, pathlib; print(pathlib.Path(ansible.__file__).parents[1] / "ansible_collections")')

TREE=$(mktemp -d "${TMPDIR:-/tmp}/rlops-sanity.XXXXXX")
trap 'rm -rf "$TREE"' EXIT
mkdir -p "$TREE/ansible_collections/rlops"
ln -s "$ROOT" "$TREE/ansible_collections/rlops/fleet"
for dep in "${DEPENDENCIES[@]}"; do
  [ -d "$BUNDLED/$dep" ] || die "collection ${dep/\//.} not found in $BUNDLED (is the ansible package installed?)"
  mkdir -p "$TREE/ansible_collections/${dep%/*}"
  ln -s "$BUNDLED/$dep" "$TREE/ansible_collections/$dep"
done

# The pip version ansible-test bootstraps its venvs with names the cached script.
PIP_VERSION=$("$VENV/bin/python" -W ignore - "$PYTHON_VERSION" <<'PY'
import sys
import types
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(types.SimpleNamespace(version=sys.argv[1]))["pip"])
PY
) ||
  die "cannot read the pip version ansible-test bootstraps with"
GET_PIP=$HOME/.ansible/test/cache/get_pip_${PIP_VERSION//./_}.py
if [ ! -s "$GET_PIP" ]; then
  mkdir -p "$(dirname "$GET_PIP")"
  printf 'import ensurepip; ensurepip.bootstrap(upgrade=True)\n' > "$GET_PIP"
fi

cd "$TREE/ansible_collections/rlops/fleet"
export ANSIBLE_TEST_CONTENT_ROOT=$PWD
"$VENV/bin/ansible-test" sanity --local --python "$PYTHON_VERSION" --color no "$@"
