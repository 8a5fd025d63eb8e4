"""Pack the MinIO stand-in into one executable zip for the lab host's python3.

    python build_standin.py OUT

The zip holds minio_standin.py as __main__.py, localbucket (from this Python, which runs
ansible-playbook: the dev lock installs it) and the collection's module_utils/s3_probe.py.
It is built byte for byte the same from the same sources (fixed timestamps), and OUT is
written only when it would change: prints "changed" or "unchanged", so that a second
converge changes nothing.
"""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import localbucket

HERE = Path(__file__).resolve().parent
S3_PROBE = HERE.parents[4] / "plugins/module_utils/s3_probe.py"
SHEBANG = b"#!/usr/bin/python3\n"


def archive() -> bytes:
    members = {"__main__.py": HERE / "minio_standin.py",
               "localbucket.py": Path(localbucket.__file__),
               "s3_probe.py": S3_PROBE}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive_file:
        for name, source in members.items():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive_file.writestr(info, source.read_bytes())
    return SHEBANG + buffer.getvalue()


def main(out: str) -> int:
    path = Path(out)
    data = archive()
    if path.is_file() and path.read_bytes() == data:
        print("unchanged")
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(0o755)
    print("changed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
