from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path

import pytest
from rlops_runtime.jsonio import write_json_atomic
from rlops_runtime.manifest import (
    build_manifest,
    check_folder,
    file_sha256,
    load_manifest,
    parse_step,
    step_dirname,
    verify_folder,
)


def test_step_names_sort_as_numbers_and_parse_back():
    assert step_dirname(4096) == "000000004096"
    assert sorted(step_dirname(s) for s in (10, 9, 100)) == [step_dirname(s) for s in (9, 10, 100)]
    assert parse_step(step_dirname(4096)) == 4096
    assert parse_step(step_dirname(10**13)) == 10**13


@pytest.mark.parametrize(
    "name", ["4096", ".tmp-4096-12", ".damaged-4096-x", "00000000409x", "LATEST"]
)
def test_parse_step_rejects_other_names(name):
    assert parse_step(name) is None


def test_negative_step_is_refused():
    with pytest.raises(ValueError, match="-1"):
        step_dirname(-1)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    folder = tmp_path / step_dirname(4096)
    (folder / "sub").mkdir(parents=True)
    (folder / "model.zip").write_bytes(b"weights")
    (folder / "sub" / "buffer.pkl").write_bytes(b"replay" * 100)
    (folder / "manifest.json").write_text("{}")  # never lists itself
    return folder


def test_build_manifest_lists_files_sorted_with_size_and_sha(folder: Path):
    now = datetime(2026, 11, 22, 5, 15, 30, tzinfo=timezone.utc)
    manifest = build_manifest(folder, 4096, "cartpole-x", now=now)
    assert manifest == {
        "format": 1,
        "session": "cartpole-x",
        "step": 4096,
        "created": "2026-11-22T05:15:30Z",
        "files": [
            {"path": "model.zip", "size": 7, "sha256": hashlib.sha256(b"weights").hexdigest()},
            {"path": "sub/buffer.pkl", "size": 600,
             "sha256": hashlib.sha256(b"replay" * 100).hexdigest()},
        ],
    }
    assert file_sha256(folder / "model.zip") == hashlib.sha256(b"weights").hexdigest()


def test_verify_accepts_a_complete_folder(folder: Path):
    write_json_atomic(folder / "manifest.json", build_manifest(folder, 4096, "s"))
    assert check_folder(folder) == []


def test_verify_reports_each_kind_of_damage(folder: Path):
    manifest = build_manifest(folder, 4096, "s")
    (folder / "model.zip").write_bytes(b"WEIGHTS")  # same size, other content
    (folder / "sub" / "buffer.pkl").write_bytes(b"replay")  # truncated
    problems = verify_folder(folder, manifest)
    assert problems == [
        "model.zip: sha256 differs from the manifest",
        "sub/buffer.pkl: size 6, manifest says 600",
    ]
    (folder / "model.zip").unlink()
    assert "model.zip: missing" in verify_folder(folder, manifest)


def test_verify_checks_the_step_against_the_folder_name(folder: Path):
    manifest = build_manifest(folder, 8192, "s")
    problems = verify_folder(folder, manifest)
    assert problems == ["manifest step 8192 does not match folder 000000004096"]
    assert verify_folder(folder, manifest, step=8192) == []


@pytest.mark.parametrize(
    "manifest, problem",
    [
        ([], "not a JSON object"),
        ({"format": 2, "step": 4096, "files": []}, "format 2"),
        ({"format": 1, "step": "x", "files": []}, "step 'x'"),
        ({"format": 1, "step": 4096}, "no 'files' list"),
        ({"format": 1, "step": 4096, "files": [{"path": "../x", "size": 1, "sha256": ""}]},
         "malformed"),
        ({"format": 1, "step": 4096, "files": [{"path": "/etc/x", "size": 1, "sha256": ""}]},
         "malformed"),
    ],
)
def test_verify_rejects_malformed_manifests(folder: Path, manifest, problem):
    problems = verify_folder(folder, manifest)
    assert problems and problem in problems[0]


def test_load_manifest_missing_or_invalid_is_none(folder: Path):
    (folder / "manifest.json").write_text('{"format": 1, "st')
    assert load_manifest(folder) is None
    (folder / "manifest.json").unlink()
    assert load_manifest(folder) is None
    assert check_folder(folder) == ["manifest.json: missing or unreadable"]
