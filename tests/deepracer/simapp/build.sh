#!/usr/bin/env bash
# Builds the stand-in DeepRacer simapp image offline, as a root file system tar for
# `docker import` (inside a lab host, see tests/deepracer/README.md):
#   the lab image (tests/lab/lab.sh image: Debian bookworm, python3)
#   + python3-boto3 python3-yaml docker-compose jq from the Debian mirror (apt in a container)
#   + /root/sagemaker-venv (system site packages, so `source .../activate` works as in the real image)
#   + files/ (rl_coach/start.py, run.sh, sage-train.sh, train, the standin package)
#   + the tracks (roles/deepracer_stack/files/tracks, else shared/deepracer/tracks)
#   + localbucket.py (the tests' S3 server, from the project venv) under /opt/localbucket.
# Prints the tar's path. Cached: rebuilt only when an input changed (a hash of them all).
#
#   tests/deepracer/simapp/build.sh [--force]
#   docker import --change 'ENTRYPOINT ["/bin/bash", "-c"]' --change 'CMD ["bash"]' \
#     --change 'WORKDIR /opt/ml/code' simapp-standin.tar awsdeepracercommunity/deepracer-simapp:6.0.4-cpu
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
OUT_DIR=${RLOPS_SIMAPP_OUT:-$REPO/.venv/deepracer-simapp}
LAB_IMAGE=${RLOPS_LAB_IMAGE:-localhost/rlops-lab:bookworm}
PYTHON=${RLOPS_VENV:-$REPO/.venv}/bin/python
PACKAGES="python3-boto3 python3-yaml docker-compose jq"
TAR=$OUT_DIR/simapp-standin.tar

log() { printf 'simapp: %s\n' "$*" >&2; }
die() { printf 'simapp: error: %s\n' "$*" >&2; exit 1; }

force=0
[ "${1:-}" = --force ] && force=1

tracks_dir() {
  local d
  for d in "$REPO/roles/deepracer_stack/files/tracks" "$REPO/../shared/deepracer/tracks" \
    /work/shared/deepracer/tracks; do
    if compgen -G "$d/*.npy" >/dev/null; then printf '%s\n' "$d"; return 0; fi
  done
  die "no track .npy files (roles/deepracer_stack/files/tracks or shared/deepracer/tracks)"
}

TRACKS=$(tracks_dir)
[ -x "$PYTHON" ] || die "no $PYTHON (make dev)"
LOCALBUCKET=$("$PYTHON" -c 'import localbucket; print(localbucket.__file__)') \
  || die "localbucket is not in $PYTHON's venv (make dev)"
podman image exists "$LAB_IMAGE" || "$REPO/tests/lab/lab.sh" image >&2

recipe() {
  {
    printf '%s\n' "$PACKAGES" "$(podman image inspect --format '{{.Id}}' "$LAB_IMAGE")"
    sed -n '/^build()/,/^}/p' "$0"
    (cd "$HERE/files" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
    (cd "$TRACKS" && sha256sum ./*.npy)
    sha256sum < "$LOCALBUCKET"
  } | sha256sum | cut -c1-16
}

build() {
  local name=rlops-simapp-build-$$
  podman rm -f "$name" >/dev/null 2>&1 || true
  # shellcheck disable=SC2064
  trap "podman rm -f '$name' >/dev/null 2>&1 || true" EXIT
  podman run --name "$name" "$LAB_IMAGE" /bin/bash -c "
    set -e
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null
    python3 -m venv --system-site-packages /root/sagemaker-venv
    rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb /usr/share/doc /usr/share/man
    mkdir -p /opt/ml/code/standin/tracks /opt/localbucket /tmp/sagemaker" >&2
  podman cp "$HERE/files/." "$name:/"
  for t in "$TRACKS"/*.npy; do podman cp "$t" "$name:/opt/ml/code/standin/tracks/"; done
  podman cp "$LOCALBUCKET" "$name:/opt/localbucket/localbucket.py"
  podman export -o "$TAR.tmp" "$name"
  mv "$TAR.tmp" "$TAR"
  podman rm -f "$name" >/dev/null
  trap - EXIT
}

mkdir -p "$OUT_DIR"
hash=$(recipe)
if [ "$force" = 0 ] && [ -f "$TAR" ] && [ "$(cat "$TAR.recipe" 2>/dev/null)" = "$hash" ]; then
  log "$TAR is up to date (recipe $hash)"
else
  start=$SECONDS
  log "building $TAR (recipe $hash)"
  build
  printf '%s\n' "$hash" > "$TAR.recipe"
  log "built in $((SECONDS - start)) s ($(du -m "$TAR" | cut -f1) MB)"
fi
printf '%s\n' "$TAR"
