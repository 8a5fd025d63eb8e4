#!/usr/bin/env bash
# Lab hosts: real systemd machines in podman containers, built offline from Debian
# packages, reachable over SSH on 127.0.0.1. Used by Molecule scenarios and by the
# end-to-end tests. See tests/lab/README.md.
#
#   lab.sh setup                 install podman & co, write the podman settings
#   lab.sh image [--force]       build localhost/rlops-lab:bookworm (cached by recipe hash)
#   lab.sh trainer-image [--force]  the same with the trainer's venv in it (trainer_image.py)
#   lab.sh ray-image [--force]      the same with the Ray set's venv in it
#   lab.sh docker-image [--force]   the lab image with Docker's engine and docker-compose v1
#   lab.sh up N [--name PREFIX] [--privileged] [--trainer|--ray|--docker|--image IMAGE] [--timeout S]
#   lab.sh down [--all]          remove lab containers, network, loop devices
#   lab.sh status
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE_DIR=${RLOPS_LAB_STATE_DIR:-$LAB_DIR/.state}
IMAGE=${RLOPS_LAB_IMAGE:-localhost/rlops-lab:bookworm}
# The lab image with the trainer's venv in it, made by tests/lab/trainer_image.py.
TRAINER_IMAGE=${RLOPS_LAB_TRAINER_IMAGE:-localhost/rlops-lab-trainer:bookworm}
# The same with the Ray set's venv (trainer_backend: ray), made by trainer_image.py --kind ray.
RAY_IMAGE=${RLOPS_LAB_RAY_IMAGE:-localhost/rlops-lab-ray:bookworm}
# The lab image with Debian's docker.io and docker-compose (1.29.2, v1: bookworm has no
# compose v2), for hosts that run containers themselves (up --docker).
DOCKER_IMAGE=${RLOPS_LAB_DOCKER_IMAGE:-localhost/rlops-lab-docker:bookworm}
DOCKER_PACKAGES="docker.io docker-compose"
DOCKER_RECIPE_LABEL=rlops.lab.docker
PYTHON=${RLOPS_VENV:-$LAB_DIR/../../.venv}/bin/python
SUITE=bookworm
NETWORK=rlops-lab
PREFIX_DEFAULT=rlops-lab
LABEL=rlops.lab.state      # value: the absolute state dir that owns the container
RECIPE_LABEL=rlops.lab.recipe
SSH_KEY=$STATE_DIR/id_ed25519
# /var/lib/docker of each --docker host: a directory of this machine's disk (DOCKER_DIR/<host>),
# so that dockerd inside uses overlay2 (on the container's own overlay it falls back to vfs,
# a full copy of an image per container). Removed by down, and when its host is made anew.
DOCKER_DIR=$STATE_DIR/docker
INVENTORY=$STATE_DIR/inventory.yml
CONTAINERS_CONF=${RLOPS_LAB_CONTAINERS_CONF:-/etc/containers/containers.conf}

# Packages baked into the image. Part of the recipe hash.
IMAGE_PACKAGES=systemd,systemd-sysv,python3,python3-venv,sudo,openssh-server,iproute2,ca-certificates,procps
# Host packages `setup` installs. Rootful podman needs neither uidmap, slirp4netns nor
# fuse-overlayfs; netavark + aardvark-dns give the named network its DNS.
HOST_PACKAGES=(podman runc conmon netavark aardvark-dns iptables debootstrap openssh-client)

log() { printf 'lab: %s\n' "$*" >&2; }
die() { printf 'lab: error: %s\n' "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }
need_root() { [ "$(id -u)" -eq 0 ] || die "$1 needs root (rootful podman, debootstrap, losetup)"; }

# ---------------------------------------------------------------------------- setup

cmd_setup() {
  need_root setup
  local missing=() pkg
  for pkg in "${HOST_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  write_containers_conf "$CONTAINERS_CONF"
  log "setup done ($(podman --version))"
}

# Merge the settings this host needs (runc: crun fails on the hybrid cgroups here;
# cgroupfs: no systemd on the host; no default ulimits: any but "host" is refused) into
# containers.conf, keeping everything else; a second run changes nothing. Line-based,
# so comments and layout survive.
write_containers_conf() {
  local conf=$1
  mkdir -p "$(dirname "$conf")"
  python3 - "$conf" <<'PY'
import pathlib
import re
import sys

WANTED = {  # section -> key -> TOML value
    "engine": {"runtime": '"runc"', "cgroup_manager": '"cgroupfs"'},
    "containers": {"default_ulimits": "[]"},
    # setup installs netavark, not the CNI plugins: never let podman pick CNI.
    "network": {"network_backend": '"netavark"'},
}
path = pathlib.Path(sys.argv[1])
old = path.read_text() if path.exists() else ""
lines = old.splitlines()
section_re = re.compile(r"^\s*\[([^\[\]]+)\]\s*(#.*)?$")


def section_bounds(name):
    """(header index, end index) of [name], or None."""
    start = None
    for i, line in enumerate(lines):
        m = section_re.match(line)
        if m and start is not None:
            return start, i
        if m and m.group(1).strip() == name:
            start = i
    return (start, len(lines)) if start is not None else None


for section, keys in WANTED.items():
    for key, value in keys.items():
        bounds = section_bounds(section)
        if bounds is None:
            if lines and lines[-1].strip():
                lines.append("")
            lines += [f"[{section}]", f"{key} = {value}"]
            continue
        start, end = bounds
        key_re = re.compile(rf"^\s*{re.escape(key)}\s*=")
        for i in range(start + 1, end):
            if key_re.match(lines[i]):
                last = i
                if lines[i].split("=", 1)[1].strip().startswith("[") and "]" not in lines[i]:
                    # A multi-line array: drop its continuation lines too.
                    while last + 1 < end and "]" not in lines[last]:
                        last += 1
                lines[i : last + 1] = [f"{key} = {value}"]
                break
        else:
            lines.insert(start + 1, f"{key} = {value}")

new = "\n".join(lines) + "\n"
try:
    import tomllib

    parsed = tomllib.loads(new)
    for section, keys in WANTED.items():
        for key, value in keys.items():
            assert parsed[section][key] == tomllib.loads(f"v = {value}")["v"], (section, key)
except ImportError:  # Python < 3.11: no parser to check with
    pass
if new != old:
    path.write_text(new)
    print(f"lab: wrote {path}", file=sys.stderr)
PY
}

# ---------------------------------------------------------------------------- image

# First apt source whose suites include $SUITE: a one-line .list entry or a deb822
# .sources stanza. Prints "URI [KEYRING]".
host_mirror() {
  python3 - "$SUITE" /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources <<'PY'
import pathlib
import sys

suite, files = sys.argv[1], [pathlib.Path(p) for p in sys.argv[2:]]


def one_line(text):
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        opts, words = {}, words[1:]
        if words and words[0].startswith("["):
            while words:
                w = words.pop(0).strip("[]")
                if "=" in w:
                    k, v = w.split("=", 1)
                    opts[k.lower()] = v
                if "]" in w or w == "":
                    break
        if len(words) >= 2:
            yield words[0], [words[1]], opts.get("signed-by", "")


def deb822(text):
    for stanza in text.split("\n\n"):
        fields, key = {}, None
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0].isspace() and key:
                fields[key] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            yield uri, fields.get("suites", "").split(), fields.get("signed-by", "")


for f in files:
    if not f.is_file():
        continue
    entries = deb822(f.read_text()) if f.suffix == ".sources" else one_line(f.read_text())
    for uri, suites, keyring in entries:
        if suite in suites:
            keyring = keyring if keyring.startswith("/") and pathlib.Path(keyring).is_file() else ""
            print(uri, keyring)
            sys.exit(0)
sys.exit(f"lab: error: no apt source for suite {suite!r} in /etc/apt/sources.list(.d)")
PY
}

# Everything below runs on the unpacked root file system before it is imported. The
# text of this function is part of the recipe hash: edit it and the image rebuilds.
customise_rootfs() {
  local root=$1
  # The lab user Ansible connects as.
  chroot "$root" useradd --create-home --shell /bin/bash lab
  install -d -m 0700 -o "$(chroot "$root" id -u lab)" -g "$(chroot "$root" id -g lab)" "$root/home/lab/.ssh"
  printf 'lab ALL=(ALL) NOPASSWD: ALL\n' > "$root/etc/sudoers.d/lab"
  chmod 0440 "$root/etc/sudoers.d/lab"
  # The host's extra CA certificates (the network here re-signs TLS): without them pip
  # and apt over https fail inside. pip is pointed at the system bundle, not certifi.
  local ca found=0
  for ca in /usr/local/share/ca-certificates/*.crt /usr/local/share/ca-certificates/*/*.crt; do
    [ -f "$ca" ] || continue
    install -D -m 0644 "$ca" "$root/usr/local/share/ca-certificates/host-${ca##*/}"
    found=1
  done
  if [ "$found" = 0 ] && [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    install -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/usr/local/share/ca-certificates/host-bundle.crt"
  fi
  chroot "$root" update-ca-certificates >/dev/null
  printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > "$root/etc/pip.conf"
  # No host keys in the image: each container makes its own at first boot.
  rm -f "$root"/etc/ssh/ssh_host_*
  cat > "$root/etc/systemd/system/rlops-lab-hostkeys.service" <<'UNIT'
[Unit]
Description=Generate SSH host keys missing on this lab host
Before=ssh.service

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A
RemainAfterExit=yes

[Install]
RequiredBy=ssh.service
UNIT
  chroot "$root" systemctl enable ssh.service rlops-lab-hostkeys.service >/dev/null 2>&1
  # One machine-id per container, made at boot; no apt package cache.
  : > "$root/etc/machine-id"
  rm -f "$root/var/lib/dbus/machine-id" "$root"/var/cache/apt/archives/*.deb
}

recipe_hash() {
  local ca
  {
    printf '%s\n' "$SUITE" "$IMAGE_PACKAGES"
    declare -f build_rootfs customise_rootfs
    # The CA certificates baked in are an input as well.
    for ca in /usr/local/share/ca-certificates/*.crt /usr/local/share/ca-certificates/*/*.crt; do
      if [ -f "$ca" ]; then sha256sum < "$ca"; fi
    done
  } | sha256sum | cut -c1-16
}

build_rootfs() {
  local root=$1 mirror keyring
  read -r mirror keyring < <(host_mirror)
  log "debootstrap $SUITE from $mirror"
  debootstrap --variant=minbase --include="$IMAGE_PACKAGES" ${keyring:+--keyring="$keyring"} \
    "$SUITE" "$root" "$mirror"
  customise_rootfs "$root"
}

image_recipe_label() {
  podman image inspect --format "{{ index .Labels \"$RECIPE_LABEL\" }}" "$IMAGE" 2>/dev/null || true
}

# The image commands' one option: `--force` (build again) or nothing. Prints 1 or 0.
force_option() {
  local what=$1 force=0
  shift
  while [ $# -gt 0 ]; do
    case $1 in
      --force) force=1 ;;
      *) die "$what: unknown argument $1" ;;
    esac
    shift
  done
  echo "$force"
}

cmd_image() {
  need_root image
  local force
  force=$(force_option image "$@") || exit 1
  if ! have podman || ! have debootstrap; then
    die "podman/debootstrap missing: run '$0 setup' first"
  fi
  # The image is one per host: sessions building at once wait for the first one.
  (flock 9 && ensure_image "$force") 9>/run/lock/rlops-lab-image.lock
}

ensure_image() {
  local force=$1 hash old_id
  hash=$(recipe_hash)
  if [ "$force" = 0 ] && [ "$(image_recipe_label)" = "$hash" ]; then
    log "$IMAGE is up to date (recipe $hash)"
    return 0
  fi
  old_id=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
  mkdir -p "$STATE_DIR"
  local root build_log=$STATE_DIR/image-build.log start=$SECONDS
  root=$(mktemp -d /var/tmp/rlops-lab-rootfs.XXXXXX)
  # debootstrap mounts /proc and /sys inside the target: unmount before deleting.
  # shellcheck disable=SC2064  # expand $root now: the trap may run outside this function
  trap "unmount_under '$root'; rm -rf --one-file-system '$root'" EXIT
  log "building $IMAGE (recipe $hash), log: $build_log"
  if ! build_rootfs "$root" > "$build_log" 2>&1; then
    tail -n 30 "$build_log" >&2
    die "image build failed, see $build_log"
  fi
  unmount_under "$root"
  tar --numeric-owner -C "$root" -c . \
    | podman import --change 'CMD ["/sbin/init"]' --change "LABEL $RECIPE_LABEL=$hash" \
      - "$IMAGE" >/dev/null 2>>"$build_log"
  rm -rf --one-file-system "$root"
  trap - EXIT
  if [ -n "$old_id" ] && [ "$old_id" != "$(podman image inspect --format '{{.Id}}' "$IMAGE")" ]; then
    podman rmi "$old_id" >/dev/null 2>&1 || log "previous image $old_id still in use, kept"
  fi
  log "built $IMAGE in $((SECONDS - start)) s"
}

unmount_under() {
  local dir=$1 mnt
  # Deepest first. awk, not grep: no match is not an error.
  findmnt -rn -o TARGET | awk -v d="$dir/" 'index($0, d) == 1' | sort -r | while read -r mnt; do
    umount -l "$mnt" 2>/dev/null || true
  done
}

# ---------------------------------------------------------------------------- trainer image

# The lab image with the trainer's venv already in it: tests/lab/trainer_image.py boots a
# host of the lab image, runs the trainer role's install phase on it and commits it
# (cached by a hash of what went in; it needs the controller's venv: make dev).
cmd_trainer_image() {
  need_root trainer-image
  [ -x "$PYTHON" ] || die "trainer-image: no $PYTHON (run make dev)"
  "$PYTHON" "$LAB_DIR/trainer_image.py" "$@"
}

cmd_ray_image() {
  need_root ray-image
  [ -x "$PYTHON" ] || die "ray-image: no $PYTHON (run make dev)"
  "$PYTHON" "$LAB_DIR/trainer_image.py" --kind ray "$@"
}

# ---------------------------------------------------------------------------- docker image

# The lab image plus docker.io and docker-compose from the Debian mirror, installed in a
# container of the lab image and committed. Cached: the label rlops.lab.docker is a hash of
# the lab image's id, the packages and this build's text.
docker_recipe_hash() {
  {
    podman image inspect --format '{{.Id}}' "$IMAGE"
    printf '%s\n' "$DOCKER_PACKAGES"
    declare -f build_docker_image
  } | sha256sum | cut -c1-16
}

docker_image_label() {
  podman image inspect --format "{{ index .Labels \"$DOCKER_RECIPE_LABEL\" }}" "$DOCKER_IMAGE" 2>/dev/null || true
}

cmd_docker_image() {
  need_root docker-image
  local force
  force=$(force_option docker-image "$@") || exit 1
  cmd_image
  (flock 9 && ensure_docker_image "$force") 9>/run/lock/rlops-lab-docker-image.lock
}

ensure_docker_image() {
  local force=$1 hash old_id start=$SECONDS
  hash=$(docker_recipe_hash)
  if [ "$force" = 0 ] && [ "$(docker_image_label)" = "$hash" ]; then
    log "$DOCKER_IMAGE is up to date (recipe $hash)"
    return 0
  fi
  old_id=$(podman image inspect --format '{{.Id}}' "$DOCKER_IMAGE" 2>/dev/null || true)
  mkdir -p "$STATE_DIR"
  log "building $DOCKER_IMAGE (recipe $hash), log: $STATE_DIR/docker-image-build.log"
  if ! build_docker_image "rlops-lab-docker-build-$hash" "$hash" > "$STATE_DIR/docker-image-build.log" 2>&1; then
    tail -n 30 "$STATE_DIR/docker-image-build.log" >&2
    die "docker image build failed, see $STATE_DIR/docker-image-build.log"
  fi
  if [ -n "$old_id" ] && [ "$old_id" != "$(podman image inspect --format '{{.Id}}' "$DOCKER_IMAGE")" ]; then
    podman rmi "$old_id" >/dev/null 2>&1 || log "previous image $old_id still in use, kept"
  fi
  log "built $DOCKER_IMAGE in $((SECONDS - start)) s"
}

# The text of this function is part of the recipe hash: edit it and the image rebuilds.
build_docker_image() {
  local name=$1 hash=$2 rc=0
  podman rm -f "$name" >/dev/null 2>&1 || true
  # docker.service enabled: dockerd starts at boot. No package lists or .debs kept.
  podman run --name "$name" "$IMAGE" /bin/bash -c "set -e; export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $DOCKER_PACKAGES >/dev/null
    systemctl enable docker.service >/dev/null 2>&1
    rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb" || rc=$?
  if [ "$rc" = 0 ]; then
    podman commit -q --change 'CMD ["/sbin/init"]' --change "LABEL $DOCKER_RECIPE_LABEL=$hash" \
      "$name" "$DOCKER_IMAGE" >/dev/null || rc=$?
  fi
  podman rm -f "$name" >/dev/null 2>&1 || true
  return "$rc"
}

# ---------------------------------------------------------------------------- up

ensure_ssh_key() {
  mkdir -p "$STATE_DIR"
  chmod 0700 "$STATE_DIR"
  [ -f "$SSH_KEY" ] || ssh-keygen -q -t ed25519 -N '' -C rlops-lab -f "$SSH_KEY"
}

ssh_port() {  # container -> host port published for 22/tcp
  podman port "$1" 22/tcp | head -n 1 | sed 's/.*://'
}

ssh_opts=(-o BatchMode=yes -o ConnectTimeout=3 -o StrictHostKeyChecking=no
  -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR)

lab_containers() {  # names of this lab's containers (every prefix); --all: every lab's
  local filter="label=$LABEL=$STATE_DIR"
  if [ "${1:-}" = --all ]; then filter="label=$LABEL"; fi
  have podman || return 0
  podman ps -a --filter "$filter" --format '{{.Names}}'
}

cmd_up() {
  need_root up
  local count="" prefix=$PREFIX_DEFAULT timeout=120 privileged=() image=$IMAGE baked="" docker=0
  while [ $# -gt 0 ]; do
    case $1 in
      --name) prefix=${2:?--name needs a value}; shift ;;
      --privileged) privileged=(--privileged) ;;
      --trainer) baked=trainer image=$TRAINER_IMAGE ;;
      --ray) baked=ray image=$RAY_IMAGE ;;
      # Docker's engine inside: privileged, the host's cgroup namespace and /sys/fs/cgroup
      # writable (else nested containers fail on their cgroup mount), /var/lib/docker on
      # this machine's disk (DOCKER_DIR).
      --docker) baked=docker image=$DOCKER_IMAGE docker=1 privileged=(--privileged) ;;
      --image) image=${2:?--image needs an image name}; shift ;;
      --timeout) timeout=${2:?--timeout needs seconds}; shift ;;
      [0-9]*) count=$1 ;;
      *) die "up: unknown argument $1" ;;
    esac
    shift
  done
  [[ "$count" =~ ^[1-9][0-9]*$ ]] \
    || die "usage: $0 up N [--name PREFIX] [--privileged] [--trainer|--ray|--docker|--image IMAGE] [--timeout S]"
  [[ "$prefix" =~ ^[a-z0-9][a-z0-9-]*$ ]] || die "--name: use [a-z0-9-] (it becomes host names)"
  local start=$SECONDS
  cmd_image
  case $baked in
    trainer) cmd_trainer_image >/dev/null ;;
    ray) cmd_ray_image >/dev/null ;;
    docker) cmd_docker_image ;;
  esac
  podman image exists "$image" || die "no image $image"
  ensure_ssh_key
  podman network exists "$NETWORK" || podman network create "$NETWORK" >/dev/null

  # Containers of this prefix beyond N, privileged otherwise than asked or of another
  # image go; a stopped one (killed, as a machine loses power) starts again with its disk,
  # as the machine would reboot (its address on the lab network may change); the others stay.
  local name i state want_privileged=false image_id
  [ ${#privileged[@]} -eq 0 ] || want_privileged=true
  image_id=$(podman image inspect --format '{{.Id}}' "$image")
  for name in $(lab_containers); do
    [[ "$name" =~ ^$prefix-([0-9]+)$ ]] || continue
    state=$(podman inspect --format '{{.State.Status}} {{.HostConfig.Privileged}} {{.Image}}' "$name")
    if [ "${BASH_REMATCH[1]}" -gt "$count" ] || [ "${state#* }" != "$want_privileged $image_id" ]; then
      podman rm -f -t 3 "$name" >/dev/null
      rm -rf "${DOCKER_DIR:?}/$name"
    elif [ "${state%% *}" != running ]; then
      podman start "$name" >/dev/null 2>"$STATE_DIR/podman-run.err" || podman rm -f -t 3 "$name" >/dev/null
    fi
  done
  for i in $(seq 1 "$count"); do
    name=$prefix-$i
    mkdir -p "$STATE_DIR/disks/$name"
    if podman container exists "$name"; then
      [ "$(podman inspect --format "{{ index .Config.Labels \"$LABEL\" }}" "$name")" = "$STATE_DIR" ] \
        || die "container $name exists but belongs to another lab; pick another --name"
      continue
    fi
    local docker_args=()
    if [ "$docker" = 1 ]; then
      # A new machine, a new disk: nothing of an earlier host of this name.
      rm -rf "${DOCKER_DIR:?}/$name"
      mkdir -p "$DOCKER_DIR/$name"
      docker_args=(--cgroupns=host --volume /sys/fs/cgroup:/sys/fs/cgroup:rw
        --volume "$DOCKER_DIR/$name:/var/lib/docker")
    fi
    podman run -d --name "$name" --hostname "$name" --network "$NETWORK" \
      --systemd=always "${privileged[@]}" "${docker_args[@]}" \
      --label "$LABEL=$STATE_DIR" \
      --publish 127.0.0.1::22 \
      --volume "$SSH_KEY.pub:/home/lab/.ssh/authorized_keys:ro" \
      --volume "$STATE_DIR/disks/$name:/var/lib/rlops-lab/disks" \
      "$image" >/dev/null 2>"$STATE_DIR/podman-run.err" \
      || { cat "$STATE_DIR/podman-run.err" >&2; die "$name: podman run failed"; }
    # aardvark-dns, the network's DNS server, finds no syslog on this host and says so.
    # Not through a pipe: conmon and aardvark-dns keep every inherited descriptor open
    # for as long as they run, and whoever reads the pipe would wait for them.
    grep -v 'failed to connect to syslog' "$STATE_DIR/podman-run.err" >&2 || true
  done
  rm -f "$STATE_DIR/podman-run.err"

  local deadline=$((SECONDS + timeout)) port
  for i in $(seq 1 "$count"); do
    name=$prefix-$i
    port=$(ssh_port "$name")
    until ssh "${ssh_opts[@]}" -i "$SSH_KEY" -p "$port" lab@127.0.0.1 true 2>/dev/null; do
      if [ "$SECONDS" -ge "$deadline" ]; then
        podman logs --tail 20 "$name" >&2 || true
        die "$name: no SSH on 127.0.0.1:$port after ${timeout}s"
      fi
      sleep 1
    done
  done
  if [ "$docker" = 1 ]; then
    for i in $(seq 1 "$count"); do wait_docker "$prefix-$i" "$deadline"; done
  fi
  write_inventory "$prefix" "$count"
  log "up: $count host(s) in $((SECONDS - start)) s; inventory: $INVENTORY"
}

# dockerd answers (docker.service starts at boot), on overlay2: a host whose /var/lib/docker
# is on a file system overlay2 cannot use would copy every image layer for each container.
wait_docker() {
  local name=$1 deadline=$2 driver
  until driver=$(podman exec "$name" docker info --format '{{.Driver}}' 2>/dev/null); do
    if [ "$SECONDS" -ge "$deadline" ]; then
      podman exec "$name" journalctl -u docker.service --no-pager -n 20 >&2 || true
      die "$name: dockerd does not answer"
    fi
    podman exec "$name" systemctl start docker.service >/dev/null 2>&1 || true
    sleep 1
  done
  [ "$driver" = overlay2 ] \
    || die "$name: dockerd uses the storage driver $driver, not overlay2 ($DOCKER_DIR: put RLOPS_LAB_STATE_DIR on ext4 or xfs)"
}

write_inventory() {
  local prefix=$1 count=$2 i name port tmp
  tmp=$(mktemp "$STATE_DIR/inventory.XXXXXX")
  {
    printf '# Written by tests/lab/lab.sh up: lab hosts on this machine. Do not edit.\n'
    printf 'trainers:\n  hosts:\n'
    for i in $(seq 1 "$count"); do
      name=$prefix-$i
      port=$(ssh_port "$name")
      printf '    %s:\n      ansible_port: %s\n' "$name" "$port"
    done
    printf '  vars:\n'
    printf '    ansible_host: 127.0.0.1\n'
    printf '    ansible_user: lab\n'
    printf '    ansible_ssh_private_key_file: %s\n' "$SSH_KEY"
    printf '    ansible_ssh_common_args: -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null\n'
    printf '    ansible_become: true\n'
    printf '    ansible_python_interpreter: /usr/bin/python3\n'
  } > "$tmp"
  mv "$tmp" "$INVENTORY"
  # The same hosts for a person: ssh -F tests/lab/.state/ssh_config rlops-lab-1
  {
    for i in $(seq 1 "$count"); do
      name=$prefix-$i
      printf 'Host %s\n  HostName 127.0.0.1\n  Port %s\n' "$name" "$(ssh_port "$name")"
      printf '  User lab\n  IdentityFile %s\n  IdentitiesOnly yes\n' "$SSH_KEY"
      printf '  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n'
    done
  } > "$STATE_DIR/ssh_config"
}

# ---------------------------------------------------------------------------- down

# Loop devices are matched by the device and inode numbers of their backing file, not
# by its name: a device attached inside a container reports the container's path for
# its file (losetup -j HOST_PATH finds nothing), while the numbers are the same everywhere.
loop_table() {  # NAME BACK-INO BACK-MAJ:MIN per attached loop device
  have losetup || return 0
  losetup -l -n -O NAME,BACK-INO,BACK-MAJ:MIN
}

# Loop devices backed by a file under the state dir (the hosts' disks/ among them).
state_loop_devices() {
  [ -d "$STATE_DIR" ] || return 0
  local files dev ino majmin
  # Not the hosts' /var/lib/docker: dockerd's own files, many, no loop device's.
  files=$(find "$STATE_DIR" -xdev -path "$DOCKER_DIR" -prune -o -type f -exec stat -c '%i %Hd:%Ld' {} + 2>/dev/null | sort -u)
  [ -n "$files" ] || return 0
  loop_table | while read -r dev ino majmin; do
    if grep -qxF "$ino $majmin" <<< "$files"; then printf '%s\n' "$dev"; fi
  done
}

# Loop devices backed by a file inside a running container: on its root file system or
# on one of its own tmpfs mounts (/tmp, /run, ...). File systems the host shares with
# the container (bind mounts) do not count: the state dir check covers those.
container_loop_devices() {
  local name=$1 pid devs dev ino majmin
  pid=$(podman inspect --format '{{.State.Pid}}' "$name" 2>/dev/null || echo 0)
  [ "$pid" -gt 0 ] && [ -r "/proc/$pid/mountinfo" ] || return 0
  devs=$(awk 'NR == FNR { host[$3] = 1; next }
    $5 == "/" || ($3 ~ /^0:/ && !($3 in host)) { print $3 }' \
    /proc/self/mountinfo "/proc/$pid/mountinfo" | sort -u)
  loop_table | while read -r dev ino majmin; do
    if grep -qxF "$majmin" <<< "$devs"; then printf '%s\n' "$dev"; fi
  done
}

cmd_down() {
  local all=""
  while [ $# -gt 0 ]; do
    case $1 in
      --all) all=--all ;;
      *) die "down: unknown argument $1" ;;
    esac
    shift
  done
  need_root down
  local start=$SECONDS names name dev
  names=$(lab_containers $all)
  # Detach first: once a container is gone its files can no longer be told apart. A
  # device still mounted inside is released when the container's mounts go.
  for name in $names; do
    for dev in $(container_loop_devices "$name"); do
      losetup -d "$dev" && log "detached $dev (file inside $name)"
    done
  done
  if [ -n "$names" ]; then
    # shellcheck disable=SC2086  # one word per container name
    podman rm -f -t 3 $names >/dev/null
    log "removed: $(tr '\n' ' ' <<< "$names")"
  fi
  if have podman && podman network exists "$NETWORK" \
    && [ -z "$(podman ps -a --filter "network=$NETWORK" -q)" ]; then
    podman network rm "$NETWORK" >/dev/null
    log "removed network $NETWORK"
  fi
  for dev in $(state_loop_devices); do
    losetup -d "$dev" && log "detached $dev (file under $STATE_DIR)"
  done
  rm -rf "$INVENTORY" "$STATE_DIR/ssh_config" "$STATE_DIR/disks" "$DOCKER_DIR"
  log "down in $((SECONDS - start)) s"
}

# ---------------------------------------------------------------------------- status

cmd_status() {
  local hash label name
  if ! have podman; then
    echo "podman: not installed (run: $0 setup)"
    return 0
  fi
  hash=$(recipe_hash)
  label=$(image_recipe_label)
  if [ -z "$label" ]; then
    echo "image: $IMAGE missing (recipe $hash)"
  elif [ "$label" = "$hash" ]; then
    echo "image: $IMAGE up to date (recipe $hash)"
  else
    echo "image: $IMAGE stale (built from $label, recipe now $hash)"
  fi
  label=$(podman image inspect --format '{{ index .Labels "rlops.lab.trainer" }}' "$TRAINER_IMAGE" 2>/dev/null || true)
  echo "trainer image: $TRAINER_IMAGE ${label:+built from recipe $label}${label:-missing}"
  label=$(podman image inspect --format '{{ index .Labels "rlops.lab.trainer" }}' "$RAY_IMAGE" 2>/dev/null || true)
  echo "ray image: $RAY_IMAGE ${label:+built from recipe $label}${label:-missing}"
  label=$(docker_image_label)
  echo "docker image: $DOCKER_IMAGE ${label:+built from recipe $label}${label:-missing}"
  if podman network exists "$NETWORK"; then echo "network: $NETWORK"; else echo "network: none"; fi
  echo "containers:"
  for name in $(lab_containers); do
    printf '  %-20s %-10s ssh 127.0.0.1:%s\n' "$name" \
      "$(podman inspect --format "{{.State.Status}}" "$name")" "$(ssh_port "$name" 2>/dev/null)"
  done
  if [ -f "$INVENTORY" ]; then echo "inventory: $INVENTORY"; fi
  echo "loop devices: $( (state_loop_devices; for name in $(lab_containers); do
    container_loop_devices "$name"; done) | sort -u | tr '\n' ' ')"
}

main() {
  local cmd=${1:-}
  [ $# -gt 0 ] && shift
  case $cmd in
    setup) cmd_setup "$@" ;;
    image) cmd_image "$@" ;;
    trainer-image) cmd_trainer_image "$@" ;;
    ray-image) cmd_ray_image "$@" ;;
    docker-image) cmd_docker_image "$@" ;;
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    status) cmd_status "$@" ;;
    *) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
}

main "$@"
