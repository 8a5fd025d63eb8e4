# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""What a Debian host's apt sources lack for the NVIDIA driver, read from apt itself.

Pure functions, no I/O: gpu_host_detect runs `apt-get indextargets` (INDEX_TARGETS_ARGV)
and passes its output here. apt answers for both source formats (one-line and deb822), from
the sources as written (--no-release-info: also before the first apt-get update).
"""

from __future__ import annotations

# Debian keeps the driver in non-free, its firmware in non-free-firmware and its helpers
# (nvidia-support, nvidia-persistenced) in contrib.
DRIVER_COMPONENTS = ("contrib", "non-free", "non-free-firmware")
INDEX_TARGETS_ARGV = ["apt-get", "indextargets", "--no-release-info",
                      "--format", "$(REPO_URI)|$(RELEASE)|$(COMPONENT)|$(TARGET_OF)"]


def binary_targets(output: str) -> list[tuple[str, str, str]]:
    """(URI, suite, component) of each binary-package index apt reads, in apt's order,
    each once; source indexes (deb-src) are not where packages install from."""
    targets = []
    for line in output.splitlines():
        fields = line.strip().split("|")
        if len(fields) == 4 and fields[3] == "deb":
            target = (fields[0], fields[1], fields[2])
            if target not in targets:
                targets.append(target)
    return targets


def debian_sources(output: str, release: str, mirror: str = "") -> dict:
    """What the driver's source file must add for `release`: the driver's components that no
    source of the release has (`missing`), the mirror to take them from (`mirror`: the given
    one, else the URI of the release's main component, '' when there is none), the suites
    there (the release, and its -updates where the host uses it) and the -security URI
    where the host uses one ('' otherwise)."""
    targets = binary_targets(output)
    have = {component for uri, suite, component in targets if suite == release}
    suites = {suite for uri, suite, component in targets}
    main = [uri for uri, suite, component in targets if suite == release and component == "main"]
    security = [uri for uri, suite, component in targets if suite == release + "-security"]
    return {
        "missing": [component for component in DRIVER_COMPONENTS if component not in have],
        "mirror": mirror or (main[0] if main else ""),
        "suites": [release] + ([release + "-updates"] if release + "-updates" in suites else []),
        "security": security[0] if security else "",
    }
