#!/usr/bin/env bash
# What gpu_host must leave alone on a host whose driver works: apt sources and keys,
# modprobe and initramfs settings, systemd units, installed packages. Prints one line each.
# prepare.yml and verify.yml run it with `bash -euo pipefail -c`.
dirs=(/etc/apt /etc/modprobe.d /etc/systemd/system /etc/initramfs-tools)
{ find "${dirs[@]}" -xdev -type l -printf '%p -> %l\n' 2>/dev/null || true; } | sort
{ find "${dirs[@]}" -xdev -type f -print0 2>/dev/null || true; } | sort -z | xargs -0 -r sha256sum
dpkg-query -W -f '${Package} ${Version} ${Status}\n'
