"""A module's DOCUMENTATION with the collection's own doc fragments (plugins/doc_fragments)
merged in, as ansible-doc shows it. Other collections' fragments (amazon.aws's) are left
out: the tests compare those options with the collection's own argument spec helpers."""

from __future__ import annotations

import importlib

import yaml


def documentation(module) -> dict:
    doc = yaml.safe_load(module.DOCUMENTATION)
    for name in doc.get("extends_documentation_fragment") or []:
        if not name.startswith("rlops.fleet."):
            continue
        fragment = name.split(".", 2)[2]
        source = importlib.import_module(
            f"ansible_collections.rlops.fleet.plugins.doc_fragments.{fragment}")
        extra = yaml.safe_load(source.ModuleDocFragment.DOCUMENTATION)
        clash = set(doc.get("options", {})) & set(extra.get("options", {}))
        assert not clash, f"options both in the module and in {name}: {clash}"
        doc.setdefault("options", {}).update(extra.get("options", {}))
        doc["notes"] = (doc.get("notes") or []) + (extra.get("notes") or [])
    return doc
