#!/bin/sh
# ssh's ProxyCommand for a Molecule instance (molecule/config.yml): SSH with pipelining,
# tunnelled through `podman exec -i <instance> sshd -i` (no network, no port). Ansible's
# podman connection has no pipelining and runs about four podman commands a task (~1.7 s a
# task under load against ~0.5 s this way).
#
#   podman-ssh.sh INSTANCE KEY    KEY: the private key ssh logs in with as root
#
# Before it hands stdin and stdout to sshd, it makes KEY when it is missing, waits for the
# host keys the image's first-boot unit makes (sshd -i needs them) and puts KEY.pub in
# root's authorized_keys: no prepare step is needed, and any step (check, converge, verify,
# cleanup) can be the first to connect. An instance that does not exist fails at once (the
# first cleanup, before create, is unreachable then, as it was with the podman connection).
set -eu
instance=$1 key=$2
podman container exists "$instance" || { echo "podman-ssh.sh: no instance $instance" >&2; exit 255; }
[ -f "$key" ] || ssh-keygen -q -t ed25519 -N '' -C molecule -f "$key" </dev/null >/dev/null
tries=0
until podman exec "$instance" test -s /etc/ssh/ssh_host_ed25519_key 2>/dev/null; do
  tries=$((tries + 1))
  [ "$tries" -lt 240 ] || { echo "podman-ssh.sh: $instance has no SSH host key after 120 s" >&2; exit 255; }
  sleep 0.5
done
podman exec -i "$instance" sh -c 'install -d -m 0700 /root/.ssh && cat > /root/.ssh/authorized_keys' \
  < "$key.pub"
exec podman exec -i "$instance" /usr/sbin/sshd -i
