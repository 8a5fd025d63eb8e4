"""Make this checkout importable as ansible_collections.rlops.fleet for the tests."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _collection_root(tmp_root: Path) -> Path:
    link = tmp_root / "ansible_collections" / "rlops" / "fleet"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(REPO)
    return tmp_root


_root = _collection_root(REPO / ".venv" / "collections")
if str(_root) not in sys.path:
    sys.path.insert(0, str(_root))
