"""tests/lab/trainer_image.py: which layers of a lab image a build makes, and what each
layer's recipe holds (a runtime change rebuilds the thin layer only, a lock both)."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
_SPEC = importlib.util.spec_from_file_location("trainer_image", REPO / "tests/lab/trainer_image.py")
trainer_image = sys.modules.setdefault("trainer_image", importlib.util.module_from_spec(_SPEC))
_SPEC.loader.exec_module(trainer_image)


@pytest.mark.parametrize("force,venv_label,image_label,expected", [
    (False, "v1", "i1", (False, False)),   # both current
    (False, "v0", "i1", (False, False)),   # the image is current: its venv layer is not needed
    (False, "", "i1", (False, False)),     # nor present
    (False, "v1", "i0", (False, True)),    # the runtime or a role changed: the thin layer only
    (False, "v1", "", (False, True)),      # no image yet, its venv layer there
    (False, "v0", "i0", (True, True)),     # a lock changed: both
    (False, "", "", (True, True)),         # a fresh machine
    (True, "v1", "i1", (True, True)),      # --force
])
def test_layers_to_build(force, venv_label, image_label, expected):
    assert trainer_image.layers_to_build(force, venv_label, "v1", image_label, "i1") == expected


def test_thin_layer_problem_names_a_venv_the_layer_lacks():
    assert trainer_image.thin_layer_problem(["a1"], ["a1"]) == ""
    assert trainer_image.thin_layer_problem([], []) == ""
    assert trainer_image.thin_layer_problem(["a1"], ["a1", "b2"]) == (
        "the play made the venv b2, which the venv layer lacks")


def _tree(tmp_path: Path) -> Path:
    """The inputs of both layers, copied from this checkout."""
    repo = tmp_path / "repo"
    for part in ("runtime", "roles/runtime", "roles/trainer", "roles/session", "plugins",
                 "tests/lab"):
        shutil.copytree(REPO / part, repo / part,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    return repo


def _keys(repo: Path) -> tuple[str, str]:
    venv = trainer_image.recipe_key("base", {"a": 1}, ["torch.whl"], repo,
                                    trainer_image.venv_inputs(repo))
    return venv, trainer_image.recipe_key(venv, {"a": 1}, ["torch.whl"], repo)


@pytest.mark.parametrize("path,venv_changes", [
    ("runtime/rlops_runtime/supervisor.py", False),
    ("roles/trainer/tasks/service.yml", False),
    ("roles/session/defaults/main.yml", False),
    ("runtime/pyproject.toml", True),
    ("runtime/locks/python3.11.txt", True),
    ("runtime/locks/ray/python3.11.txt", True),
    ("roles/runtime/tasks/install.yml", True),
    ("roles/trainer/tasks/install.yml", True),
    ("roles/trainer/defaults/main.yml", True),
    ("tests/lab/trainer_image.yml", True),
])
def test_what_rebuilds_the_venv_layer(tmp_path, path, venv_changes):
    repo = _tree(tmp_path)
    venv, image = _keys(repo)
    with (repo / path).open("a") as file:
        file.write("\n# changed\n")
    venv_after, image_after = _keys(repo)
    assert (venv_after != venv) is venv_changes
    assert image_after != image  # every input of the venv layer is one of the image's


def test_the_venv_layer_is_named_after_the_image():
    kind = trainer_image.Kind("localhost/rlops-lab-ray:bookworm", {}, Path)
    assert kind.venv_image == "localhost/rlops-lab-ray-venv:bookworm"
