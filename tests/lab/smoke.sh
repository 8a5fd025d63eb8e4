#!/usr/bin/env bash
# Check the lab end to end, in a lab of its own that is always taken down:
# N hosts answer Ansible over SSH with become, run systemd, resolve each other by name,
# have their own host keys; a host of the trainer image (lab.sh up --trainer) has the
# runtime's CLI and a host key and machine id of its own; loop devices attached inside a
# privileged host (to a file in its disks/ dir and to one in its own /tmp) are gone after
# `down`; a host of the Docker image (lab.sh up --docker) answers SSH, its dockerd runs a
# container on overlay2 in /var/lib/docker from the state dir, and `down` removes that.
#
#   tests/lab/smoke.sh [N]        (default 3; needs root and `lab.sh setup` done)
#
# Traffic goes to 127.0.0.1 and the lab's containers only.
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$LAB_DIR/../.." && pwd)
export PATH="${RLOPS_VENV:-$REPO/.venv}/bin:$PATH"
COUNT=${1:-3}
PREFIX=rlops-smoke-$$
RLOPS_LAB_STATE_DIR=$(mktemp -d /tmp/rlops-lab-smoke.XXXXXX)
export RLOPS_LAB_STATE_DIR
LAB="$LAB_DIR/lab.sh"
INVENTORY=$RLOPS_LAB_STATE_DIR/inventory.yml

trap '"$LAB" down >/dev/null 2>&1 || true; rm -rf "$RLOPS_LAB_STATE_DIR"' EXIT
fail() { echo "smoke: FAIL: $*" >&2; exit 1; }
step() { echo "smoke: $*"; }

start=$SECONDS
"$LAB" up "$COUNT" --name "$PREFIX"
step "up $COUNT: $((SECONDS - start)) s"

ansible -i "$INVENTORY" trainers -m ansible.builtin.setup -a gather_subset=min >/dev/null \
  || fail "fact gathering over SSH"
states=$(ansible -i "$INVENTORY" trainers -b -m ansible.builtin.command \
  -a 'systemctl is-system-running' | grep -cx running) || true
[ "$states" -eq "$COUNT" ] || fail "systemd is running on $states of $COUNT hosts"
step "Ansible over SSH with become, systemd running: $COUNT/$COUNT"

out=$(ansible -i "$INVENTORY" "$PREFIX-1" -m ansible.builtin.command -a "getent hosts $PREFIX-$COUNT") \
  || fail "$PREFIX-1 cannot resolve $PREFIX-$COUNT"
grep -Eq "^[0-9.]+ +$PREFIX-$COUNT" <<< "$out" || fail "$PREFIX-1 resolved $PREFIX-$COUNT wrongly: $out"
keys=$(ansible -i "$INVENTORY" trainers -b -m ansible.builtin.command \
  -a 'ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub' | grep -o 'SHA256:[^ ]*' | sort -u | wc -l) \
  || fail "reading host keys"
[ "$keys" -eq "$COUNT" ] || fail "$keys distinct host keys for $COUNT hosts"
step "names resolve, host keys distinct"

start=$SECONDS
"$LAB" up 1 --name "$PREFIX-trainer" --trainer >/dev/null
trainer=$PREFIX-trainer-1
# The venv's CLI (the session layer's link, <data root>/bin/rlops-run, comes with the first
# session: the image is baked by the install phase alone). The host's shell expands the glob.
# shellcheck disable=SC2016
ansible -i "$INVENTORY" "$trainer" -b -m ansible.builtin.shell \
  -a 'set -- /var/lib/rlops/venvs/*/bin/rlops-run; "$1" --help' \
  >/dev/null || fail "$trainer (trainer image): no runtime CLI in a venv under /var/lib/rlops/venvs"
for what in /etc/machine-id /etc/ssh/ssh_host_ed25519_key.pub; do
  [ "$(for name in "$PREFIX-1" "$trainer"; do podman exec "$name" cat "$what"; done | sort -u | wc -l)" -eq 2 ] \
    || fail "$trainer (trainer image) has the $what of $PREFIX-1"
done
step "a host of the trainer image (up in $((SECONDS - start)) s): runtime CLI, own machine id and host key"

"$LAB" up 1 --name "$PREFIX-priv" --privileged >/dev/null
loops=$(ansible -i "$INVENTORY" "$PREFIX-priv-1" -b -m ansible.builtin.shell -a '
  truncate -s 16M /var/lib/rlops-lab/disks/a.img /tmp/b.img &&
  losetup -f --show /var/lib/rlops-lab/disks/a.img && losetup -f --show /tmp/b.img' \
  | grep -o '/dev/loop[0-9]*' | sort -u)
[ "$(wc -l <<< "$loops")" -eq 2 ] || fail "could not attach 2 loop devices: $loops"
# Remember each device with its backing inode: after down, neither pair may remain.
attached=$(losetup -l -n -O NAME,BACK-INO \
  | awk 'NR == FNR { want[$1] = 1; next } $1 in want { print $1, $2 }' <(echo "$loops") -)

start=$SECONDS
"$LAB" up 1 --name "$PREFIX-docker" --docker >/dev/null
docker_host=$PREFIX-docker-1
# A container of a root file system made of /bin/true and its libraries: nothing is pulled.
# shellcheck disable=SC2016  # the host's shell expands it
out=$(ansible -i "$INVENTORY" "$docker_host" -b -m ansible.builtin.shell -a '
  docker info 2>/dev/null | grep "Storage Driver" &&
  tar -ch $(ldd /bin/true | grep -o "/[^ ]*") /bin/true 2>/dev/null | docker import - rlops-smoke >/dev/null &&
  docker run --rm rlops-smoke /bin/true && echo container ran') \
  || fail "$docker_host (--docker): no container ran: $out"
grep -q 'Storage Driver: overlay2' <<< "$out" || fail "$docker_host: dockerd not on overlay2: $out"
[ -d "$RLOPS_LAB_STATE_DIR/docker/$docker_host/overlay2" ] \
  || fail "$docker_host: /var/lib/docker is not the state dir's docker/$docker_host"
step "a host of the Docker image (up in $((SECONDS - start)) s): SSH, a container ran on overlay2"

start=$SECONDS
"$LAB" down
step "down: $((SECONDS - start)) s"
[ ! -e "$RLOPS_LAB_STATE_DIR/docker" ] || fail "the docker hosts' /var/lib/docker left after down"
left=$(losetup -l -n -O NAME,BACK-INO | awk '{ print $1, $2 }' | grep -xF -f <(echo "$attached") || true)
[ -z "$left" ] || fail "loop devices left attached after down: $left"
[ -z "$(podman ps -a -q --filter "label=rlops.lab.state=$RLOPS_LAB_STATE_DIR")" ] \
  || fail "containers left after down"
"$LAB" down >/dev/null 2>&1 || fail "a second down failed"
step "loop devices detached, containers gone, second down is a no-op: OK"
