"""A module's DOCUMENTATION with the collection's own doc fragments (plugins/doc_fragments)
merged in, as ansible-doc shows it. Other collections' fragments (amazon.aws's) are left
out: the tests compare those options with the collection's own argument spec helpers."""

from __future__ import annotations

import importlib

import yaml


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
