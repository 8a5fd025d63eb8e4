"""tests/sanity/ignore-2.*.txt: ansible-test sanity may skip a finding only with a written
reason, for a file that exists, and there is an ignore file for every ansible-core release
that requirements.txt lets users install (ansible-test reads only the one of its version)."""

import re
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
SANITY = REPO / "tests" / "sanity"
# `<path> <test>[:<code>]  # <reason>`: ansible-test strips the comment, we require it.
LINE = re.compile(r"^(?P<path>\S+) (?P<test>[a-z0-9-]+(?::[a-z0-9-]+)?)  # (?P<reason>\S.{10,})$")


def ignore_files() -> list[Path]:
    return sorted(SANITY.glob("ignore-2.*.txt"))


def admitted_core_versions(requirements: str) -> list[str]:
    """ansible-core minors of the `ansible` majors a requirements file admits: the `ansible`
    package N ships ansible-core 2.(N+7) (ansible 10: 2.17, 12: 2.19)."""
    for line in requirements.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        if requirement.name == "ansible":
            return [f"2.{major + 7}" for major in range(3, 40)
                    if any(requirement.specifier.contains(f"{major}.{minor}.0")
                           for minor in range(0, 20))]
    raise AssertionError("requirements.txt names no `ansible` package")


def test_admitted_core_versions():
    assert admitted_core_versions("boto3>=1\nansible>=10,<13  # bundles amazon.aws\n") == [
        "2.17", "2.18", "2.19"]
    assert admitted_core_versions("ansible==12.3.0\n") == ["2.19"]


def test_every_admitted_ansible_core_has_an_ignore_file():
    wanted = admitted_core_versions((REPO / "requirements.txt").read_text())
    have = [path.name for path in ignore_files()]
    assert wanted and have == [f"ignore-{version}.txt" for version in wanted]


def test_every_ignore_line_names_an_existing_file_and_says_why():
    for path in ignore_files():
        lines = path.read_text().splitlines()
        assert lines == sorted(lines), f"{path.name}: lines not sorted (LC_ALL=C sort)"
        for number, line in enumerate(lines, start=1):
            where = f"{path.name}:{number}: {line!r}"
            match = LINE.match(line)
            assert match, f"{where}: not `<path> <test>[:<code>]  # <reason>`"
            assert (REPO / match["path"]).exists(), f"{where}: no such file"
