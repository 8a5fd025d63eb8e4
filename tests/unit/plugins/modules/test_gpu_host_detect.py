"""plugins/modules/gpu_host_detect.py: which PCI devices are GPUs, their details from the
recorded outputs of nvidia-smi (fixtures/nvidia_smi/), and the whole module run in-process
against a sysfs tree and an nvidia-smi that prints those recordings.

The recordings follow NVIDIA's formats: `nvidia-smi -q -x` (nvsmi_device_v11/v12.dtd) of
drivers 470, 535, 550, 570 and 580 on the GPUs of EC2 g4dn, g5, p3, p5 and g6 instances, the
messages of a driver that is not loaded, of a library newer than the loaded kernel module,
of no devices, and /proc/driver/nvidia/version of the proprietary and the open module.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible_collections.rlops.fleet.plugins.module_utils import nvidia_gpus
from ansible_collections.rlops.fleet.plugins.modules import gpu_host_detect as ghd

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "nvidia_smi"


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
    assert nvidia_gpus.is_gpu(vendor, pci_class, "0x10de") is expected


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
    assert nvidia_gpus.short_bus_id(bus_id) == short


@pytest.mark.parametrize("fixture,driver,cuda,gpus", [
    ("470.256.02_t4_cuda11.4.xml", "470.256.02", "11.4",
     {"0000:00:1e.0": (0, "Tesla T4", 15109)}),
    ("535.183.01_a10g_cuda12.2.xml", "535.183.01", "12.2",
     {"0000:00:1e.0": (0, "NVIDIA A10G", 23028)}),
    ("550.127.05_v100x4_cuda12.4.xml", "550.127.05", "12.4",
     {f"0000:00:{slot}.0": (n, "Tesla V100-SXM2-16GB", 16384)
      for n, slot in enumerate(["1b", "1c", "1d", "1e"])}),
    ("570.133.20_h100x2_cuda12.8.xml", "570.133.20", "12.8",
     {"0000:53:00.0": (0, "NVIDIA H100 80GB HBM3", 81559),
      "0000:64:00.0": (1, "NVIDIA H100 80GB HBM3", 81559)}),
    ("580.65.06_l4_cuda13.0.xml", "580.65.06", "13.0",
     {"0000:31:00.0": (0, "NVIDIA L4", 23034)}),
])
def test_parse_smi_xml_of_recorded_logs(fixture, driver, cuda, gpus):
    rows, found_driver, found_cuda = nvidia_gpus.parse_smi_xml((FIXTURES / fixture).read_text())
    assert (found_driver, found_cuda) == (driver, cuda)
    read = {bus: (row["index"], row["name"], row["memory_mib"]) for bus, row in rows.items()}
    assert read == gpus


def test_parse_smi_xml_tolerates_unknown_memory_and_versions():
    log = ('<?xml version="1.0" ?>\n<nvidia_smi_log><driver_version>N/A</driver_version>'
           '<gpu id="00000000:01:00.0"><product_name>NVIDIA T4</product_name>'
           "<fb_memory_usage><total>N/A</total></fb_memory_usage></gpu></nvidia_smi_log>")
    rows, driver, cuda = nvidia_gpus.parse_smi_xml(log)
    assert rows == {"0000:01:00.0": {"index": 0, "name": "NVIDIA T4", "memory_mib": 0}}
    assert (driver, cuda) == ("", "")


@pytest.mark.parametrize("text", [
    (FIXTURES / "failed_no_driver.txt").read_text(), "", "<other_log/>", "<nvidia_smi_log>",
])
def test_parse_smi_xml_refuses_what_is_no_log(text):
    with pytest.raises(ValueError, match="nvidia-smi -q -x printed"):
        nvidia_gpus.parse_smi_xml(text)


@pytest.mark.parametrize("fixture,first,mismatch,library", [
    ("failed_no_driver.txt", "NVIDIA-SMI has failed because it couldn't communicate with the "
     "NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.",
     False, ""),
    ("failed_mismatch.txt", "Failed to initialize NVML: Driver/library version mismatch",
     True, "570.133"),
    ("no_devices.txt", "No devices were found", False, ""),
])
def test_smi_failure_of_recorded_messages(fixture, first, mismatch, library):
    assert nvidia_gpus.smi_failure((FIXTURES / fixture).read_text()) == (first, mismatch, library)


def test_smi_answer_reads_a_log_a_failure_and_no_log():
    log = (FIXTURES / "570.133.20_h100x2_cuda12.8.xml").read_text()
    answer = nvidia_gpus.smi_answer(0, log, "")
    assert (answer["state"], answer["driver"], answer["cuda"]) == ("ok", "570.133.20", "12.8")
    assert len(answer["rows"]) == 2 and not answer["error"]
    mismatch = (FIXTURES / "failed_mismatch.txt").read_text()
    answer = nvidia_gpus.smi_answer(18, mismatch, "")
    assert answer["state"] == "failed" and answer["mismatch"] and answer["library"]
    answer = nvidia_gpus.smi_answer(0, "No devices were found", "")
    assert answer["state"] == "failed" and "no XML log" in answer["error"] and not answer["rows"]
    answer = nvidia_gpus.smi_answer(9, "", "")
    assert answer == dict(nvidia_gpus.smi_absent(), state="failed", error="exit code 9")


@pytest.mark.parametrize("fixture,version", [
    ("proc_version_470.txt", "470.256.02"),
    ("proc_version_550.txt", "550.127.05"),
    ("proc_version_570_open.txt", "570.133.20"),
])
def test_parse_proc_version(fixture, version):
    assert nvidia_gpus.parse_proc_version((FIXTURES / fixture).read_text()) == version
    assert nvidia_gpus.parse_proc_version("") == ""


PCI_IDS = """# comment
10de  NVIDIA Corporation
\t2330  GH100 [H100 SXM5 80GB]
\t\t10de 16c1  H100 SXM5 80GB
\t20b5  GA100 [A100 PCIe 80GB]
1af4  Red Hat, Inc.
\t2330  not an NVIDIA device
"""


def test_pci_names_of_one_vendor():
    assert nvidia_gpus.pci_names(PCI_IDS, "0x10de") == {
        "2330": "GH100 [H100 SXM5 80GB]",
        "20b5": "GA100 [A100 PCIe 80GB]",
    }


def test_merge_prefers_nvidia_smi_then_pci_ids_then_the_id():
    gpus = [
        nvidia_gpus.Gpu("0000:3b:00.0", "0x2330"),
        nvidia_gpus.Gpu("0000:1a:00.0", "0x20b5"),
        nvidia_gpus.Gpu("0000:5e:00.0", "0x9999"),
    ]
    smi = {"0000:3b:00.0": {"index": 0, "name": "NVIDIA H100 80GB HBM3", "memory_mib": 81559}}
    names = nvidia_gpus.pci_names(PCI_IDS, "0x10de")
    merged = nvidia_gpus.merge(gpus, smi, names)
    assert [(g.address, g.name, g.memory_mib, g.index) for g in merged] == [
        ("0000:1a:00.0", "NVIDIA GA100 [A100 PCIe 80GB]", 0, -1),
        ("0000:3b:00.0", "NVIDIA H100 80GB HBM3", 81559, 0),
        ("0000:5e:00.0", "NVIDIA device 0x9999", 0, -1),
    ]


def test_nvidia_smi_cannot_invent_gpus():
    smi = {"0000:99:00.0": {"index": 0, "name": "ghost", "memory_mib": 1}}
    assert nvidia_gpus.merge([], smi, {}) == []


# --------------------------------------------------------------------------- the module


class Host:
    """A host as the module reads it: sysfs PCI devices and modules, an nvidia-smi that
    prints a recorded output with its exit code, /proc/driver/nvidia/version."""

    def __init__(self, root: Path):
        self.root = root
        self.pci = root / "pci"
        self.modules = root / "module"
        self.proc = root / "proc_version"
        self.smi = root / "bin" / "nvidia-smi"
        self.ran = root / "smi-ran"
        for folder in (self.pci, self.modules, self.smi.parent):
            folder.mkdir(parents=True)
        pci_device(self.pci, "0000:00:00.0", "0x8086", "0x1237", "0x060000")  # host bridge

    def gpu(self, address: str, device: str = "0x2330") -> Host:
        pci_device(self.pci, address, "0x10de", device, "0x030200")
        return self

    def nvidia_smi(self, fixture: str, rc: int = 0) -> Host:
        self.smi.write_text(f"#!/bin/sh\ntouch '{self.ran}'\ncat '{FIXTURES / fixture}'\n"
                            f"exit {rc}\n")
        self.smi.chmod(0o755)
        return self

    def kernel_module(self, fixture: str) -> Host:
        (self.modules / "nvidia").mkdir()
        self.proc.write_text((FIXTURES / fixture).read_text())
        return self

    def args(self, **extra) -> dict:
        return {"pci_root": str(self.pci), "module_root": str(self.modules), "pci_ids": [],
                "nvidia_smi": str(self.smi), "proc_version": str(self.proc),
                "default_branch": "580", **extra}


@pytest.fixture
def host(tmp_path):
    return Host(tmp_path)


def detect(run_module, args, check_mode=False):
    result, failed = run_module(ghd.main, args, check_mode=check_mode, common={})
    assert not failed, result
    assert result["changed"] is False
    return result


def test_module_keeps_a_working_driver_and_checks_torch_against_it(host, run_module):
    host.gpu("0000:53:00.0").gpu("0000:64:00.0").kernel_module("proc_version_570_open.txt")
    host.nvidia_smi("570.133.20_h100x2_cuda12.8.xml")
    result = detect(run_module, host.args(torch_requirement="torch==2.13.0"))
    assert [(g["address"], g["index"], g["name"], g["memory_mib"]) for g in result["gpus"]] == [
        ("0000:53:00.0", 0, "NVIDIA H100 80GB HBM3", 81559),
        ("0000:64:00.0", 1, "NVIDIA H100 80GB HBM3", 81559)]
    assert (result["nvidia_smi"], result["driver_version"], result["cuda_version"]) == (
        "ok", "570.133.20", "12.8")
    assert result["kernel_module_version"] == "570.133.20"
    assert result["driver_working"] is True and result["nvidia_loaded"] is True
    assert result["driver_plan"] == {"action": "keep", "branch": "570", "error": "",
                                     "reason": "driver 570.133.20 works: nothing to install"}
    assert result["torch"]["cuda"] == "13.0"
    assert result["torch_check"]["status"] == "incompatible"
    assert 'gpu_host_driver_branch "580"' in result["torch_check"]["message"]


def test_module_reads_the_torch_wheels_of_a_find_links_folder_on_the_host(host, run_module):
    host.gpu("0000:53:00.0").gpu("0000:64:00.0")
    host.nvidia_smi("570.133.20_h100x2_cuda12.8.xml")
    wheels = host.root / "wheels"
    wheels.mkdir()
    (wheels / "torch-2.13.0+cu128-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"")
    result = detect(run_module, host.args(torch_requirement="torch==2.13.0",
                                          torch_sources=[f"file://{wheels}"]))
    assert result["torch"]["label"] == "cu128"
    assert result["torch_check"]["status"] == "ok"


def test_module_on_the_580_driver_passes_the_default_torch(host, run_module):
    host.gpu("0000:31:00.0", "0x27b8").nvidia_smi("580.65.06_l4_cuda13.0.xml")
    result = detect(run_module, host.args(torch_requirement="torch==2.13.0", driver_branch="580"))
    assert result["driver_plan"]["action"] == "keep"
    assert result["torch_check"]["status"] == "ok"


def test_module_pinned_to_another_branch_plans_the_install(host, run_module):
    host.gpu("0000:00:1e.0", "0x2237").nvidia_smi("535.183.01_a10g_cuda12.2.xml")
    result = detect(run_module, host.args(driver_branch="580", torch_requirement="torch==2.13.0"))
    assert result["driver_plan"]["action"] == "install"
    assert result["driver_plan"]["branch"] == "580"
    # checked against the branch it will install, not the one it replaces
    assert result["torch_check"]["status"] == "ok"


def test_module_without_a_gpu_does_not_run_nvidia_smi(host, run_module):
    host.nvidia_smi("570.133.20_h100x2_cuda12.8.xml")
    result = detect(run_module, host.args(torch_requirement="torch==2.13.0"))
    assert not host.ran.exists()
    assert (result["gpus"], result["scanned"], result["nvidia_smi"]) == ([], 1, "absent")
    assert result["driver_plan"]["action"] == "none"
    assert result["torch_check"]["status"] == "none"


def test_module_with_a_gpu_and_no_driver_plans_the_default_branch(host, run_module):
    host.gpu("0000:00:1e.0", "0x1eb8")  # no nvidia-smi, no kernel module
    result = detect(run_module, host.args(torch_requirement="torch==2.13.0"))
    assert (result["nvidia_smi"], result["driver_version"], result["kernel_module_version"]) == (
        "absent", "", "")
    assert result["gpus"][0]["name"] == "NVIDIA device 0x1eb8"
    assert result["driver_plan"] == {"action": "install", "branch": "580", "error": "",
                                     "reason": "no NVIDIA driver (no nvidia-smi)"}
    assert result["torch_check"]["status"] == "ok"  # branch 580 runs CUDA 13.0


def test_module_with_a_driver_that_does_not_answer(host, run_module):
    host.gpu("0000:00:1e.0", "0x1eb8").nvidia_smi("failed_no_driver.txt", rc=9)
    result = detect(run_module, host.args())
    assert result["nvidia_smi"] == "failed"
    assert result["nvidia_smi_error"].startswith("NVIDIA-SMI has failed because it couldn't")
    assert result["driver_working"] is False
    assert result["driver_plan"]["action"] == "install"
    assert result["torch"] == {} and result["torch_check"]["status"] == "none"


def test_module_with_a_driver_upgraded_but_not_loaded(host, run_module):
    host.gpu("0000:00:1e.0", "0x2237").kernel_module("proc_version_550.txt")
    host.nvidia_smi("failed_mismatch.txt", rc=18)
    result = detect(run_module, host.args(torch_requirement="torch==2.13.0+cu128"))
    assert (result["kernel_module_version"], result["library_version"]) == ("550.127.05", "570.133")
    assert result["driver_mismatch"] is True
    assert result["driver_plan"]["action"] == "reboot"
    assert result["driver_plan"]["branch"] == "570"
    assert result["torch_check"]["status"] == "ok"  # against 570, the driver after the reboot


def test_module_refuses_a_pin_the_system_cannot_install(host, run_module):
    host.gpu("0000:00:1e.0", "0x1eb8")
    result = detect(run_module, host.args(driver_branch="570", fixed_branch="535",
                                          default_branch=""))
    assert result["driver_plan"]["action"] == "install"
    assert "this system's packages have only branch 535" in result["driver_plan"]["error"]


def test_module_in_check_mode_reads_the_same(host, run_module):
    host.gpu("0000:00:1b.0").gpu("0000:00:1c.0").gpu("0000:00:1d.0").gpu("0000:00:1e.0")
    host.nvidia_smi("550.127.05_v100x4_cuda12.4.xml")
    args = host.args(torch_requirement="torch==2.8.0")
    assert detect(run_module, args, check_mode=True) == detect(run_module, args)
    assert detect(run_module, args)["torch_check"]["status"] == "minor"


def apt_get(host: Host, output: str, rc: int = 0) -> str:
    """A PATH whose apt-get prints `output` for `apt-get indextargets`, and notes that it ran."""
    program = host.root / "apt" / "apt-get"
    program.parent.mkdir()
    (host.root / "indextargets.txt").write_text(output)
    program.write_text(f"#!/bin/sh\ntouch '{host.root}/apt-ran'\n"
                       f"[ \"$1\" = indextargets ] || exit 2\n"
                       f"cat '{host.root}/indextargets.txt'\nexit {rc}\n")
    program.chmod(0o755)
    return f"{program.parent}:/usr/bin:/bin"


def test_module_reads_the_apt_sources_where_it_plans_an_install(host, run_module, monkeypatch):
    host.gpu("0000:00:1e.0", "0x1eb8")  # no driver: the plan installs 580
    monkeypatch.setenv("PATH", apt_get(host, "http://deb.debian.org/debian|bookworm|main|deb\n"))
    result = detect(run_module, host.args(apt_sources=True, release="bookworm"))
    assert result["debian_sources"] == {
        "missing": ["contrib", "non-free", "non-free-firmware"],
        "mirror": "http://deb.debian.org/debian", "suites": ["bookworm"], "security": ""}
    assert detect(run_module, host.args(apt_sources=True, release="bookworm"),
                  check_mode=True) == result


def test_module_reads_no_apt_sources_where_nothing_is_installed(host, run_module, monkeypatch):
    host.gpu("0000:53:00.0").gpu("0000:64:00.0").nvidia_smi("570.133.20_h100x2_cuda12.8.xml")
    monkeypatch.setenv("PATH", apt_get(host, "", rc=100))
    result = detect(run_module, host.args(apt_sources=True, release="bookworm"))
    assert result["driver_plan"]["action"] == "keep"
    assert result["debian_sources"] == {}
    assert not (host.root / "apt-ran").exists()
    assert detect(run_module, host.args())["debian_sources"] == {}


def test_module_fails_when_apt_cannot_read_its_sources(host, run_module, monkeypatch):
    host.gpu("0000:00:1e.0", "0x1eb8")
    monkeypatch.setenv("PATH", apt_get(host, "E: Malformed stanza 1 in source list", rc=100))
    result, failed = run_module(ghd.main, host.args(apt_sources=True, release="bookworm"),
                                common={})
    assert failed
    assert result["msg"].startswith("apt-get indextargets --no-release-info --format")
    assert result["msg"].endswith("exited 100: E: Malformed stanza 1 in source list")


def test_module_publishes_the_role_facts_only_when_asked(host, run_module):
    host.gpu("0000:53:00.0").gpu("0000:64:00.0").kernel_module("proc_version_570_open.txt")
    host.nvidia_smi("570.133.20_h100x2_cuda12.8.xml")
    args = host.args(torch_requirement="torch==2.13.0+cu128")
    assert "ansible_facts" not in detect(run_module, args)
    result = detect(run_module, dict(args, publish_facts=True, install_driver=True))
    facts = result["ansible_facts"]
    assert (facts["gpu_host_mode"], facts["gpu_host_gpu_count"], facts["gpu_host_driver_action"],
            facts["gpu_host_driver_version"], facts["gpu_host_cuda_version"]) == (
        "gpu", 2, "keep", "570.133.20", "12.8")
    assert facts["gpu_host_torch_check"] == result["torch_check"]
    assert facts["gpu_host_gpus"] == result["gpus"]
    assert facts["gpu_host_reboot_required"] is False
    assert result["local_facts"]["driver_branch"] == "570"
    assert (result["reboot_reason"], result["smi_problem"]) == ("", "")
    assert result["summary"] == [
        "driver: keep 570: driver 570.133.20 works: nothing to install",
        "torch: " + result["torch_check"]["message"]]
    assert detect(run_module, dict(args, publish_facts=True, install_driver=True),
                  check_mode=True) == result


def test_module_says_why_the_torch_build_was_not_checked(host, run_module):
    result = detect(run_module, host.args(torch_unchecked="trainer_device is cpu"))
    assert result["summary"] == ["driver: none: no NVIDIA GPU: the host runs jobs on the CPU",
                                 "torch: not checked: trainer_device is cpu"]


def test_module_on_the_second_look_follows_the_first_plan(host, run_module):
    # The role installed the driver; nouveau holds the GPU, so it is not loaded.
    host.gpu("0000:00:1e.0", "0x1eb8").nvidia_smi("failed_no_driver.txt", rc=9)
    (host.modules / "nouveau").mkdir()
    first = detect(run_module, host.args(publish_facts=True, install_driver=True))
    assert first["driver_plan"]["action"] == "install"
    assert first["ansible_facts"]["gpu_host_reboot_required"] is True
    again = detect(run_module, {**host.args(), "publish_facts": True, "install_driver": True,
                                "driver_action": "install", "default_branch": ""})
    facts = again["ansible_facts"]
    assert "gpu_host_torch_check" not in facts  # the first look's stays
    assert (facts["gpu_host_driver_action"], facts["gpu_host_reboot_required"]) == (
        "install", True)
    assert "(nouveau holds the GPU): reboot it" in again["reboot_reason"]
    assert again["smi_problem"] == (
        "failed NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
        " Make sure that the latest NVIDIA driver is installed and running.;"
        " GPUs on the PCI bus: 0000:00:1e.0")
    # Without the role's driver steps (gpu_host_install_driver false) no reboot is its to ask.
    quiet = detect(run_module, host.args(publish_facts=True, driver_action="install"))
    assert quiet["reboot_reason"] == "" and not quiet["ansible_facts"]["gpu_host_reboot_required"]


def test_module_says_why_a_driver_upgraded_without_a_reboot_needs_one(host, run_module):
    host.gpu("0000:00:1e.0", "0x2237").kernel_module("proc_version_550.txt")
    host.nvidia_smi("failed_mismatch.txt", rc=18)
    result = detect(run_module, host.args(publish_facts=True))
    assert result["ansible_facts"]["gpu_host_driver_action"] == "reboot"
    assert result["ansible_facts"]["gpu_host_reboot_required"] is True
    assert result["reboot_reason"] == (
        "the NVIDIA driver is installed but not loaded (the loaded kernel module is 550.127.05,"
        " the library 570.133): reboot it, or run again with nvidia_driver_reboot_allowed true")
