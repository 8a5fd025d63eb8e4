"""A module's DOCUMENTATION with the collection's own doc fragments (plugins/doc_fragments)
merged in, as ansible-doc shows it, and what its main() gives its module class (the
argument spec), to compare the two. Other collections' fragments (amazon.aws's) are left
out: the tests compare those options with the collection's own argument spec helpers."""

from __future__ import annotations

import importlib

import pytest
import yaml

# What an option's documentation and its argument spec must agree on.
SPEC_KEYS = ("type", "default", "choices", "aliases", "elements", "required")


def _fragment(name: str) -> dict:
    """rlops.fleet.<fragment> (its DOCUMENTATION) or rlops.fleet.<fragment>.<var>."""
    fragment, _dot, var = name.split(".", 2)[2].partition(".")
    source = importlib.import_module(
        f"ansible_collections.rlops.fleet.plugins.doc_fragments.{fragment}")
    return yaml.safe_load(getattr(source.ModuleDocFragment, (var or "documentation").upper()))


def documentation(module) -> dict:
    doc = yaml.safe_load(module.DOCUMENTATION)
    for name in doc.get("extends_documentation_fragment") or []:
        if not name.startswith("rlops.fleet."):
            continue
        extra = _fragment(name)
        clash = set(doc.get("options", {})) & set(extra.get("options", {}))
        assert not clash, f"options both in the module and in {name}: {clash}"
        doc.setdefault("options", {}).update(extra.get("options", {}))
        # An attribute the module names too: the module's keys win (its `details`).
        attributes = doc.setdefault("attributes", {})
        for key, value in (extra.get("attributes") or {}).items():
            attributes[key] = dict(value, **(attributes.get(key) or {}))
        doc["notes"] = (doc.get("notes") or []) + (extra.get("notes") or [])
    return doc


class _Captured(Exception):
    pass


def module_arguments(module, monkeypatch, module_class: str) -> dict:
    """The keyword arguments main() gives `module.<module_class>` (argument_spec,
    supports_check_mode, ...), without running the module."""
    captured = {}

    def fake_init(self, **kwargs):
        captured.update(kwargs)
        raise _Captured()

    monkeypatch.setattr(getattr(module, module_class), "__init__", fake_init)
    with pytest.raises(_Captured):
        module.main()
    return captured


def normalised(spec: dict, keys: tuple = SPEC_KEYS) -> dict:
    """An option's documentation or spec in one form: str by default, required a bool, a
    float default a float, aliases sorted, an empty default of a non-dict nothing."""
    out = {key: spec.get(key) for key in keys}
    out["type"] = out.get("type") or "str"
    out["required"] = bool(out.get("required"))
    if out["type"] == "float" and out.get("default") is not None:
        out["default"] = float(out["default"])
    if "aliases" in out:
        out["aliases"] = sorted(out["aliases"] or [])
    if out.get("default") == {} and out["type"] != "dict":
        out["default"] = None
    return out
