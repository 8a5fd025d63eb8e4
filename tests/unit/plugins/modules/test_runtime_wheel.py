"""plugins/modules/runtime_wheel.py: the runtime as a wheel named by its content."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[4]
_PATH = REPO / "plugins/modules/runtime_wheel.py"
_SPEC = importlib.util.spec_from_file_location("runtime_wheel", _PATH)
rw = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = rw
_SPEC.loader.exec_module(rw)

PYPROJECT = """
[project]
name = "rlops-runtime"
version = "0.1.0"
description = "the runtime"
requires-python = ">=3.9"
license = "Apache-2.0"
dependencies = []
[project.optional-dependencies]
s3 = ["boto3>=1.28,<2"]
[project.scripts]
rlops-run = "rlops_runtime.cli:main"
"""


def _source(tmp_path: Path) -> Path:
    src = tmp_path / "runtime"
    (src / "rlops_runtime/agents").mkdir(parents=True)
    (src / "pyproject.toml").write_text(PYPROJECT)
    (src / "rlops_runtime/__init__.py").write_text("")
    (src / "rlops_runtime/cli.py").write_text("def main():\n    print('hello from the wheel')\n")
    (src / "rlops_runtime/agents/ppo.json").write_text("{}")
    (src / "rlops_runtime/__pycache__").mkdir()
    (src / "rlops_runtime/__pycache__/cli.cpython-311.pyc").write_bytes(b"\0")
    (src / "tests").mkdir()
    (src / "tests/test_x.py").write_text("")
    return src


def test_package_files_leave_caches_tests_and_hidden_files_out():
    names = ["pyproject.toml", "tests/test_cli.py", "rlops_runtime/cli.py",
             "rlops_runtime/__pycache__/cli.cpython-311.pyc", "rlops_runtime/x.pyc",
             "rlops_runtime/.hidden/a.py", "rlops_runtime/.swp", "rlops_runtime/agents/ppo.json",
             "rlops_runtime.egg-info/PKG-INFO"]
    assert rw.package_files(names) == ["rlops_runtime/agents/ppo.json", "rlops_runtime/cli.py"]


def test_content_hash_follows_content_and_names_not_order():
    files = {"a": b"1", "b": b"2"}
    assert rw.content_hash(files) == rw.content_hash({"b": b"2", "a": b"1"})
    assert rw.content_hash(files) != rw.content_hash({"a": b"1", "b": b"3"})
    assert rw.content_hash(files) != rw.content_hash({"a": b"1", "c": b"2"})
    assert len(rw.content_hash(files)) == 12


def test_metadata_has_extras_as_markers():
    info = rw.project_info(rw.tomllib.loads(PYPROJECT))
    text = rw.metadata(info, "0.1.0+abc")
    assert "Name: rlops-runtime\nVersion: 0.1.0+abc\n" in text
    assert "Provides-Extra: s3\nRequires-Dist: boto3>=1.28,<2; extra == \"s3\"\n" in text
    assert rw.entry_points(info) == "[console_scripts]\nrlops-run = rlops_runtime.cli:main\n"


def test_project_info_refuses_another_project():
    with pytest.raises(rw.WheelError, match="rlops-runtime"):
        rw.project_info({"project": {"name": "other", "version": "1"}})


def test_record_lists_every_entry_with_its_hash():
    info = rw.project_info(rw.tomllib.loads(PYPROJECT))
    entries = rw.wheel_entries({"rlops_runtime/__init__.py": b""}, info, "0.1.0+abc")
    names = [entry[0] for entry in entries]
    assert names[-1] == "rlops_runtime-0.1.0+abc.dist-info/RECORD"
    record = entries[-1][1].decode().splitlines()
    empty = "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"  # sha256 of b"", urlsafe base64
    assert record[0] == f"rlops_runtime/__init__.py,sha256={empty},0"
    assert record[-1] == "rlops_runtime-0.1.0+abc.dist-info/RECORD,,"
    assert len(record) == len(entries)


def test_build_is_named_by_content_and_cached(tmp_path):
    src, cache = _source(tmp_path), tmp_path / "cache"
    first = rw.build(str(src), str(cache))
    assert first["changed"]
    assert first["filename"] == f"rlops_runtime-{first['version']}-py3-none-any.whl"
    assert first["dist_info"] == f"rlops_runtime-{first['version']}.dist-info"
    assert first["version"].startswith("0.1.0+")
    again = rw.build(str(src), str(cache))
    assert again == {**first, "changed": False}
    # A cache or a test changes nothing; a package file makes another wheel.
    (src / "tests/test_y.py").write_text("")
    (src / "rlops_runtime/__pycache__/x.pyc").write_bytes(b"1")
    assert rw.build(str(src), str(cache))["version"] == first["version"]
    (src / "rlops_runtime/cli.py").write_text("def main():\n    print('changed')\n")
    changed = rw.build(str(src), str(cache))
    assert changed["changed"] and changed["version"] != first["version"]


def test_same_content_makes_the_same_bytes(tmp_path):
    src = _source(tmp_path)
    one = Path(rw.build(str(src), str(tmp_path / "one"))["path"]).read_bytes()
    two = Path(rw.build(str(src), str(tmp_path / "two"))["path"]).read_bytes()
    assert one == two
    name = rw.build(str(src), str(tmp_path / "x"))["filename"]
    with zipfile.ZipFile(tmp_path / "one" / name) as wheel:
        assert not [n for n in wheel.namelist() if "__pycache__" in n or n.startswith("tests/")]
        assert "rlops_runtime/agents/ppo.json" in wheel.namelist()


def test_build_refuses_a_folder_that_is_not_the_runtime(tmp_path):
    with pytest.raises(rw.WheelError, match="no pyproject.toml"):
        rw.build(str(tmp_path), str(tmp_path / "cache"))
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    with pytest.raises(rw.WheelError, match="no rlops_runtime/__init__.py"):
        rw.build(str(tmp_path), str(tmp_path / "cache"))


def test_pip_installs_the_wheel_with_its_script(tmp_path):
    """The real check: pip takes the wheel (and its extra) and the console script runs."""
    wheel = rw.build(str(_source(tmp_path)), str(tmp_path / "cache"))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    "--disable-pip-version-check", "--target", str(target),
                    wheel["path"] + "[s3]"], check=True)
    assert (target / wheel["dist_info"] / "RECORD").is_file()
    assert (target / "bin/rlops-run").is_file()
    out = subprocess.run([sys.executable, "-c", "from rlops_runtime.cli import main; main()"],
                         env={"PYTHONPATH": str(target)}, capture_output=True, text=True,
                         check=True)
    assert out.stdout == "hello from the wheel\n"


def test_the_collection_runtime_builds(tmp_path):
    wheel = rw.build(str(REPO / "runtime"), str(tmp_path))
    with zipfile.ZipFile(wheel["path"]) as built:
        names = built.namelist()
    assert "rlops_runtime/cli.py" in names and "rlops_runtime/agents/env_extras.json" in names
    assert not [n for n in names if n.startswith("tests/") or "__pycache__" in n]
