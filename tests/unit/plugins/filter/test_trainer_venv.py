from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.rlops.fleet.plugins.filter.trainer_venv import (
    lock_for,
    lock_versions,
    venv_id,
    venv_spec,
    venv_spec_info,
)

REPO = Path(__file__).resolve().parents[4]
LOCKS = ["/c/runtime/locks/python3.12.txt", "/c/runtime/locks/python3.10.txt",
         "/c/runtime/locks/python3.11.txt", "/c/runtime/locks/README.md"]


@pytest.mark.parametrize("python, lock", [
    ("3.11", "/c/runtime/locks/python3.11.txt"),
    ("3.10.13", "/c/runtime/locks/python3.10.txt"),
    ("3.12", "/c/runtime/locks/python3.12.txt"),
    ("3.9", ""),
    ("3.13", ""),
    ("3.1", ""),  # not 3.10 or 3.12 by a prefix match
])
def test_lock_for_python(python, lock):
    assert lock_for(LOCKS, python) == lock


def test_lock_versions_sort_as_versions():
    assert lock_versions(LOCKS + ["/x/python3.9.txt"]) == ["3.9", "3.10", "3.11", "3.12"]
    assert lock_versions([]) == []


def test_bad_python_version():
    with pytest.raises(AnsibleFilterError, match="not a Python version"):
        lock_for(LOCKS, "three")


def test_the_collection_has_a_lock_for_each_python_it_supports():
    locks = [str(p) for p in (REPO / "runtime" / "locks").glob("python*.txt")]
    assert lock_versions(locks) == ["3.10", "3.11", "3.12"]
    for lock in locks:  # torch stays out: its build is the host's (CPU or CUDA)
        pinned = [line for line in Path(lock).read_text().splitlines() if "==" in line]
        assert not [line for line in pinned if line.startswith("torch==")]
        assert "stable-baselines3==" in "\n".join(pinned)
        assert "box2d==" in "\n".join(pinned)


LOCK = "#\n# made by make lock\n#\nnumpy==2.4.6\n    # via gymnasium\ngymnasium==1.4.0\n"


def test_spec_round_trip_and_order_does_not_matter():
    spec = venv_spec(["torch==2.13.0", "rlops-runtime[s3,sb3]"], LOCK, "3.11.7")
    assert spec.splitlines()[:5] == [
        "# rlops.fleet trainer: the set this venv was installed with; a resume installs the same.",
        "# python: 3.11",
        "# requirement: rlops-runtime[s3,sb3]",
        "# requirement: torch==2.13.0",
        "#",
    ]
    assert spec.endswith("gymnasium==1.4.0\n")
    again = ["rlops-runtime[s3,sb3]", "torch==2.13.0", "torch==2.13.0"]
    assert venv_spec(again, LOCK, "3.11") == spec
    assert venv_spec_info(spec) == {
        "python": "3.11", "requirements": ["rlops-runtime[s3,sb3]", "torch==2.13.0"], "files": []}
    with_file = venv_spec(["rlops-runtime"], LOCK, "3.11", ["-r req.txt sha256:ab12"])
    assert venv_spec_info(with_file)["files"] == ["-r req.txt sha256:ab12"]
    assert "# requirements file: -r req.txt sha256:ab12\n#\n" in with_file


def test_spec_without_lock():
    spec = venv_spec(["rlops-runtime"], "", "3.12")
    assert venv_spec_info(spec) == {"python": "3.12", "requirements": ["rlops-runtime"],
                                    "files": []}


@pytest.mark.parametrize("text, message", [
    ("numpy==1\n", "not a venv set written by the trainer role"),
    ("", "not a venv set written by the trainer role"),
    (None, "not a venv set written by the trainer role"),
])
def test_spec_info_refuses_other_files(text, message):
    with pytest.raises(AnsibleFilterError, match=message):
        venv_spec_info(text)


def test_spec_refuses_bad_requirements():
    with pytest.raises(AnsibleFilterError):
        venv_spec("torch", LOCK, "3.11")
    with pytest.raises(AnsibleFilterError, match="invalid requirement"):
        venv_spec(["a\nb"], LOCK, "3.11")


def test_venv_identity():
    spec = venv_spec(["rlops-runtime[s3,sb3]"], LOCK, "3.11")
    one = venv_id(spec, "3.11", "/usr/bin/python3.11")
    assert len(one) == 12 and int(one, 16) >= 0
    assert venv_id(spec, "3.11", "/usr/bin/python3.11") == one  # stable
    assert venv_id(spec.rstrip("\n"), "3.11", "/usr/bin/python3.11") == one  # read back
    # Another lock, another requirement set or another interpreter: another venv.
    assert venv_id(venv_spec(["rlops-runtime[s3,sb3]"], LOCK + "six==1.17.0\n", "3.11"),
                   "3.11", "/usr/bin/python3.11") != one
    assert venv_id(venv_spec(["rlops-runtime[box2d,s3,sb3]"], LOCK, "3.11"),
                   "3.11", "/usr/bin/python3.11") != one
    assert venv_id(spec, "3.11", "/usr/local/bin/python3.11") != one
