"""plugins/modules/gpu_host_detect.py: which PCI devices are GPUs, and their details."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[4] / "plugins/modules/gpu_host_detect.py"
_SPEC = importlib.util.spec_from_file_location("gpu_host_detect", _PATH)
ghd = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = ghd  # dataclasses look their module up
_SPEC.loader.exec_module(ghd)


def pci_device(root: Path, address: str, vendor: str, device: str, pci_class: str) -> None:
    base = root / address
    base.mkdir(parents=True)
    (base / "vendor").write_text(vendor + "\n")
    (base / "device").write_text(device + "\n")
    (base / "class").write_text(pci_class + "\n")


@pytest.mark.parametrize(
    "vendor,pci_class,expected",
    [
        ("0x10de", "0x030200", True),  # 3D controller: datacenter GPUs
        ("0x10de", "0x030000", True),  # VGA: workstation GPUs
        ("0x10DE", "0x030000", True),
        ("0x10de", "0x040300", False),  # the GPU's HDMI audio function
        ("0x10de", "0x0c0330", False),  # its USB controller
        ("0x10de", "0x068000", False),  # NVSwitch
        ("0x1af4", "0x030000", False),  # virtio GPU
    ],
)
def test_is_gpu(vendor, pci_class, expected):
    assert ghd.is_gpu(vendor, pci_class, "0x10de") is expected


def test_scan_pci_reads_sysfs_layout(tmp_path):
    pci_device(tmp_path, "0000:00:01.0", "0x8086", "0x1237", "0x060000")
    pci_device(tmp_path, "0000:3b:00.0", "0x10de", "0x2330", "0x030200")
    pci_device(tmp_path, "0000:3b:00.1", "0x10de", "0x22a3", "0x040300")
    pci_device(tmp_path, "0000:1a:00.0", "0x10de", "0x20B5", "0x030200")
    gpus, scanned = ghd.scan_pci(str(tmp_path), "0x10de")
    assert scanned == 4
    assert [(g.address, g.device) for g in gpus] == [
        ("0000:1a:00.0", "0x20b5"),
        ("0000:3b:00.0", "0x2330"),
    ]


def test_scan_pci_without_the_folder_finds_nothing(tmp_path):
    assert ghd.scan_pci(str(tmp_path / "missing"), "0x10de") == ([], 0)


@pytest.mark.parametrize(
    "bus_id,short",
    [("00000000:3B:00.0", "0000:3b:00.0"), ("0000:3b:00.0", "0000:3b:00.0"), ("x", "x")],
)
def test_short_bus_id(bus_id, short):
    assert ghd.short_bus_id(bus_id) == short


def test_parse_smi_rows_and_driver():
    out = (
        "0, 00000000:1A:00.0, NVIDIA A100-SXM4-40GB, 40960, 570.133.20\n"
        "1, 00000000:3B:00.0, NVIDIA H100 80GB HBM3, 81559, 570.133.20\n"
    )
    rows, driver = ghd.parse_smi(out)
    assert driver == "570.133.20"
    assert rows["0000:3b:00.0"] == {
        "index": 1,
        "name": "NVIDIA H100 80GB HBM3",
        "memory_mib": 81559,
    }


def test_parse_smi_tolerates_unknown_memory():
    rows, _driver = ghd.parse_smi("0, 00000000:01:00.0, NVIDIA T4, [N/A], 535.1\n")
    assert rows["0000:01:00.0"]["memory_mib"] == 0


PCI_IDS = """# comment
10de  NVIDIA Corporation
\t2330  GH100 [H100 SXM5 80GB]
\t\t10de 16c1  H100 SXM5 80GB
\t20b5  GA100 [A100 PCIe 80GB]
1af4  Red Hat, Inc.
\t2330  not an NVIDIA device
"""


def test_pci_names_of_one_vendor():
    assert ghd.pci_names(PCI_IDS, "0x10de") == {
        "2330": "GH100 [H100 SXM5 80GB]",
        "20b5": "GA100 [A100 PCIe 80GB]",
    }


def test_merge_prefers_nvidia_smi_then_pci_ids_then_the_id():
    gpus = [
        ghd.Gpu("0000:3b:00.0", "0x2330"),
        ghd.Gpu("0000:1a:00.0", "0x20b5"),
        ghd.Gpu("0000:5e:00.0", "0x9999"),
    ]
    smi = {"0000:3b:00.0": {"index": 0, "name": "NVIDIA H100 80GB HBM3", "memory_mib": 81559}}
    names = ghd.pci_names(PCI_IDS, "0x10de")
    merged = ghd.merge(gpus, smi, names)
    assert [(g.address, g.name, g.memory_mib, g.index) for g in merged] == [
        ("0000:1a:00.0", "NVIDIA GA100 [A100 PCIe 80GB]", 0, -1),
        ("0000:3b:00.0", "NVIDIA H100 80GB HBM3", 81559, 0),
        ("0000:5e:00.0", "NVIDIA device 0x9999", 0, -1),
    ]


def test_nvidia_smi_cannot_invent_gpus():
    smi = {"0000:99:00.0": {"index": 0, "name": "ghost", "memory_mib": 1}}
    assert ghd.merge([], smi, {}) == []
