"""plugins/module_utils/apt_sources.py: what a Debian host's sources lack for the NVIDIA
driver, from the output of `apt-get indextargets` (URI|suite|component|kind)."""

from __future__ import annotations

from ansible_collections.rlops.fleet.plugins.module_utils.apt_sources import (
    binary_targets,
    debian_sources,
)

# A stock bookworm image (deb822 debian.sources): main only, with -updates and -security;
# apt prints one line per index (Packages, Translation, per architecture).
STOCK = """\
http://deb.debian.org/debian|bookworm|main|deb
http://deb.debian.org/debian|bookworm|main|deb
http://deb.debian.org/debian|bookworm-updates|main|deb
http://deb.debian.org/debian-security|bookworm-security|main|deb
http://deb.debian.org/debian|bookworm|main|deb-src
"""


def test_binary_targets_once_each_without_source_indexes():
    assert binary_targets(STOCK + "\n  \nnot a target\n") == [
        ("http://deb.debian.org/debian", "bookworm", "main"),
        ("http://deb.debian.org/debian", "bookworm-updates", "main"),
        ("http://deb.debian.org/debian-security", "bookworm-security", "main")]


def test_a_stock_host_gets_every_component_on_its_own_mirror_and_suites():
    assert debian_sources(STOCK, "bookworm") == {
        "missing": ["contrib", "non-free", "non-free-firmware"],
        "mirror": "http://deb.debian.org/debian",
        "suites": ["bookworm", "bookworm-updates"],
        "security": "http://deb.debian.org/debian-security"}


def test_only_the_components_the_release_lacks_and_the_given_mirror():
    output = STOCK + ("http://mirror.example/debian|bookworm|contrib|deb\n"
                      "http://mirror.example/debian|bookworm-updates|non-free|deb\n")
    sources = debian_sources(output, "bookworm", "https://local.example/debian")
    # non-free of -updates is not non-free of the release
    assert sources["missing"] == ["non-free", "non-free-firmware"]
    assert sources["mirror"] == "https://local.example/debian"


def test_nothing_missing_where_the_host_has_every_component():
    output = "".join(f"http://deb.debian.org/debian|bookworm|{c}|deb\n"
                     for c in ("main", "contrib", "non-free", "non-free-firmware"))
    assert debian_sources(output, "bookworm") == {
        "missing": [], "mirror": "http://deb.debian.org/debian", "suites": ["bookworm"],
        "security": ""}


def test_no_source_of_the_release_leaves_no_mirror():
    # another release's sources (and deb-src of this one) say nothing of this release's mirror
    output = ("http://deb.debian.org/debian|trixie|main|deb\n"
              "http://deb.debian.org/debian|bookworm|main|deb-src\n")
    sources = debian_sources(output, "bookworm")
    assert (sources["mirror"], sources["suites"], sources["security"]) == ("", ["bookworm"], "")
    assert sources["missing"] == ["contrib", "non-free", "non-free-firmware"]
    assert debian_sources("", "bookworm")["mirror"] == ""
