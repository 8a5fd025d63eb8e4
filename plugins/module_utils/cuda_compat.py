# -*- coding: utf-8 -*-
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""Which CUDA a torch build needs, whether an NVIDIA driver runs it, and what the gpu_host
role does with the driver it finds.

Pure functions, no I/O: the gpu_host_detect module reads the host and calls them;
tests/unit/plugins/module_utils/test_cuda_compat.py tests them without a GPU.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from collections import namedtuple

# NVIDIA, CUDA Toolkit release notes, "CUDA Toolkit and Corresponding Driver Versions":
# the Linux x86_64 driver of each toolkit's GA release. A driver at least this runs
# everything built with that CUDA.
CUDA_MIN_DRIVER = {
    "10.0": "410.48",
    "10.1": "418.39",
    "10.2": "440.33",
    "11.0": "450.36.06",
    "11.1": "455.23",
    "11.2": "460.27.03",
    "11.3": "465.19.01",
    "11.4": "470.42.01",
    "11.5": "495.29.05",
    "11.6": "510.39.01",
    "11.7": "515.43.04",
    "11.8": "520.61.05",
    "12.0": "525.60.13",
    "12.1": "530.30.02",
    "12.2": "535.54.03",
    "12.3": "545.23.06",
    "12.4": "550.54.14",
    "12.5": "555.42.02",
    "12.6": "560.28.03",
    "12.8": "570.26",
    "12.9": "575.51.03",
    "13.0": "580.65.06",
}
# NVIDIA, "CUDA Compatibility", minor version compatibility (CUDA 11 on): a program built
# with any CUDA X.y runs on a driver of at least the X.x minimum, without the features that
# need a newer driver (PTX JIT of code newer than the driver, some new APIs). 13.x: any 580.
MINOR_COMPAT_MIN_DRIVER = {11: "450.80.02", 12: "525.60.13", 13: "580"}

# The CUDA of torch's default Linux x86_64 wheel on PyPI, per release: the CUDA runtime its
# metadata requires (nvidia-cuda-runtime-cu1x, from 2.11 cuda-toolkit). PyTorch publishes
# other builds as local versions (2.13.0+cu128, +cpu) on download.pytorch.org.
TORCH_PYPI_CUDA = {
    "1.13": "11.7",
    "2.0": "11.7",
    "2.1": "12.1",
    "2.2": "12.1",
    "2.3": "12.1",
    "2.4": "12.1",
    "2.5": "12.4",
    "2.6": "12.4",
    "2.7": "12.6",
    "2.8": "12.8",
    "2.9": "12.8",
    "2.10": "12.8",
    "2.11": "13.0",
    "2.12": "13.0",
    "2.13": "13.0",
}
# The CUDA builds download.pytorch.org/whl/<label> has of each release (PyTorch's
# "previous versions" page); for releases not listed the suggestion says to check.
TORCH_CUDA_BUILDS = {
    "2.0": ("cu117", "cu118"),
    "2.1": ("cu118", "cu121"),
    "2.2": ("cu118", "cu121"),
    "2.3": ("cu118", "cu121"),
    "2.4": ("cu118", "cu121", "cu124"),
    "2.5": ("cu118", "cu121", "cu124"),
    "2.6": ("cu118", "cu124", "cu126"),
    "2.7": ("cu118", "cu126", "cu128"),
    "2.8": ("cu126", "cu128", "cu129"),
    "2.9": ("cu126", "cu128", "cu130"),
}
# Every CUDA label PyTorch has used, for suggestions on releases the table above lacks.
TORCH_CUDA_LABELS = ("cu117", "cu118", "cu121", "cu124", "cu126", "cu128", "cu129", "cu130")
TORCH_INDEX = "https://download.pytorch.org/whl/"

TorchBuild = namedtuple("TorchBuild", "requirement version label cuda origin")
TorchBuild.__doc__ = """What pip installs for the trainer's torch requirement.

version: the pinned release ('2.13.0', '2.13.*'), '' when not pinned to one;
label: the local version ('cu128', 'cpu', 'rocm6.2'), '' for PyPI's default build;
cuda: the CUDA it is built for ('12.8'), '' for builds without CUDA or when unknown;
origin: where that was read, for messages."""

Driver = namedtuple("Driver", "version cuda label branch_only")
Driver.__doc__ = """A driver to check a torch build against: a version ('570.133.20') or,
branch_only, a branch the role would install ('580': the newest release of the branch);
cuda: the newest CUDA it supports when nvidia-smi said so, else ''; label: for messages."""

TorchCheck = namedtuple("TorchCheck", "status message cuda driver_cuda")
TorchCheck.__doc__ = """status: 'none' (nothing to check), 'not-cuda' (a build without CUDA),
'unknown' (the build or driver cannot be told), 'ok', 'minor' (runs through minor-version
compatibility) or 'incompatible'; message says what and, when incompatible, what to change."""

DriverPlan = namedtuple("DriverPlan", "action branch reason error")
DriverPlan.__doc__ = """action: 'none' (no GPU), 'keep' (a working driver stays),
'install' (branch), 'reboot' (the installed driver is not the loaded one); error: why the
plan cannot be carried out, '' when it can."""

_PIN_RE = re.compile(
    r"^torch\s*(?:\[[^\]]*\])?\s*(==|===|~=)\s*"
    r"(?P<version>[0-9]+(?:\.[0-9]+)*(?:\.\*)?(?:(?:a|b|rc|\.post|\.dev)[0-9]+)*)"
    r"(?:\+(?P<label>[a-z0-9.]+))?$",
    re.IGNORECASE,
)
_WHEEL_RE = re.compile(
    r"(?:^|/)torch-(?P<version>[0-9][0-9a-z.]*?)(?:(?:\+|%2B)(?P<label>[a-z0-9.]+))?-[^/]*\.whl$",
    re.IGNORECASE,
)
_INDEX_LABEL_RE = re.compile(
    r"download\.pytorch\.org/whl/(?:nightly/|test/)?(?P<label>cu[0-9]{2,3}|cpu|xpu|rocm[0-9.]+)/?$"
)


# --------------------------------------------------------------------------- versions


def version_key(version):
    """'570.133.20' -> (570, 133, 20): the numbers before anything else."""
    numbers = []
    for part in str(version).strip().split("."):
        digits = re.match(r"[0-9]+", part)
        if not digits:
            break
        numbers.append(int(digits.group()))
        if digits.group() != part:
            break
    return tuple(numbers)


def branch_of(version):
    """'570.133.20' -> '570'; '' for ''."""
    key = version_key(version)
    return str(key[0]) if key else ""


def cuda_of_label(label):
    """'cu128' -> '12.8', 'cu92' -> '9.2'; '' for labels without CUDA ('cpu', 'rocm6.2')."""
    match = re.match(r"^cu([0-9]{2,3})$", label or "")
    if not match:
        return ""
    digits = match.group(1)
    return "%s.%s" % (digits[:-1], digits[-1])


def cuda_label(cuda):
    """'12.8' -> 'cu128'."""
    return "cu" + cuda.replace(".", "")


def release_of(version):
    """'2.13.0' and '2.13.*' -> '2.13'."""
    parts = version_key(version)
    return "%d.%d" % parts[:2] if len(parts) >= 2 else ""


def local_key(label):
    """PEP 440 order of local versions (which build pip prefers among equal versions):
    none lowest, segments compared one by one, numbers above words, longer above shorter."""
    if not label:
        return ()
    return tuple(
        (1, int(segment), "") if segment.isdigit() else (0, 0, segment.lower())
        for segment in re.split(r"[._-]", label)
    )


# --------------------------------------------------------------------------- torch build


def _matches(wanted, version):
    """Whether a wheel's public version satisfies the pinned one ('2.13.*' or '2.13.0')."""
    if wanted.endswith(".*"):
        return version_key(version)[: len(version_key(wanted))] == version_key(wanted)
    return version.lower() == wanted.lower()


def torch_build(requirement, wheels=(), indexes=()):
    """The build pip installs for `requirement`; None when there is no torch requirement.

    wheels: file names of torch wheels pip finds first (trainer_wheelhouse, find-links
    folders); indexes: index and find-links URLs (download.pytorch.org/whl/cu128 names its
    build). pip takes the highest version, and among equal versions the highest local
    version: a +cu128 or +cpu wheel from the wheelhouse or PyTorch's index wins over PyPI's.
    """
    text = (requirement or "").split(";")[0].split(" #")[0].strip()
    if not text:
        return None
    wheel = _WHEEL_RE.search(text.split("#")[0])
    if wheel:
        text = "torch==%s%s" % (
            wheel.group("version"), "+" + wheel.group("label") if wheel.group("label") else "")
        named_by = "the wheel trainer_torch_requirement names"
    else:
        named_by = "trainer_torch_requirement"
    pin = _PIN_RE.match(text)
    if not pin or (pin.group(1) == "~=" and len(version_key(pin.group("version"))) < 3):
        return TorchBuild(requirement, "", "", "", "%s is not pinned to one release" % named_by)
    version = pin.group("version")
    if pin.group(1) == "~=":  # ~=2.13.0 is 2.13.*
        version = release_of(version) + ".*"
    label = (pin.group("label") or "").lower()
    if label:
        return TorchBuild(requirement, version, label, cuda_of_label(label),
                          "the local version +%s of %s" % (label, named_by))
    candidates = []
    for name in wheels:
        found = _WHEEL_RE.search(name)
        if found and _matches(version, found.group("version")):
            candidates.append(((found.group("label") or "").lower(), "wheel %s" % name))
    for url in indexes:
        found = _INDEX_LABEL_RE.search(url or "")
        if found:
            candidates.append((found.group("label"), "index %s" % url))
    if candidates:
        label, origin = max(candidates, key=lambda candidate: local_key(candidate[0]))
        if label:
            return TorchBuild(requirement, version, label, cuda_of_label(label), origin)
    cuda = TORCH_PYPI_CUDA.get(release_of(version), "")
    if not cuda:
        return TorchBuild(requirement, version, "", "",
                          "torch %s is a release this check does not know" % version)
    return TorchBuild(requirement, version, "", cuda, "PyPI's default Linux build")


def describe(build):
    """'torch 2.13.0+cu128' / 'torch 2.13.0 (PyPI's default Linux build)'."""
    label = "+" + build.label if build.label else ""
    name = "torch %s%s" % (build.version or build.requirement, label)
    return "%s (%s)" % (name, build.origin) if not build.label else name


# --------------------------------------------------------------------------- driver


def _at_least(driver, minimum):
    if driver.branch_only:  # the packages of a branch bring its newest release
        return version_key(driver.version)[:1] >= version_key(minimum)[:1]
    return version_key(driver.version) >= version_key(minimum)


def max_cuda(driver):
    """The newest CUDA the driver runs fully: nvidia-smi's answer, else the table's."""
    if driver.cuda:
        return driver.cuda
    runs = [cuda for cuda, minimum in CUDA_MIN_DRIVER.items() if _at_least(driver, minimum)]
    return max(runs, key=version_key) if runs else ""


def runs_on(cuda, driver):
    """'full', 'minor' (minor-version compatibility) or 'no'."""
    newest = max_cuda(driver)
    if newest and version_key(cuda) <= version_key(newest):
        return "full"
    minimum = CUDA_MIN_DRIVER.get(cuda)
    if minimum and _at_least(driver, minimum):
        return "full"
    family = MINOR_COMPAT_MIN_DRIVER.get(version_key(cuda)[0] if version_key(cuda) else -1)
    if family and _at_least(driver, family):
        return "minor"
    return "no"


def _best_label(labels, driver):
    """The label of the build the driver runs best: fully before minor-version
    compatibility, then the newest CUDA; '' when it runs none."""
    fits = []
    for label in labels:
        fit = runs_on(cuda_of_label(label), driver)
        if fit != "no":
            fits.append((fit == "full", version_key(cuda_of_label(label)), label))
    return max(fits)[2] if fits else ""


def _torch_alternative(build, driver):
    """A torch build the driver runs, as the settings to write; '' when none is known."""
    release = release_of(build.version)
    known = TORCH_CUDA_BUILDS.get(release)
    # A release the table lacks likely has builds like the newest one it has (recent CUDA
    # releases only), else any label PyTorch has used.
    newest = TORCH_CUDA_BUILDS[max(TORCH_CUDA_BUILDS, key=version_key)]
    label = _best_label(known or newest, driver) or (
        "" if known else _best_label(TORCH_CUDA_LABELS, driver))
    if not label:
        for older in sorted(TORCH_CUDA_BUILDS, key=version_key, reverse=True):
            label = _best_label(TORCH_CUDA_BUILDS[older], driver)
            if label:
                return ("an older torch: %s is the newest release with a build this driver "
                        "runs (+%s, from %s%s)" % (older, label, TORCH_INDEX, label))
        return ""
    version = build.version[:-2] + ".0" if build.version.endswith(".*") else build.version
    text = ('trainer_torch_requirement "torch==%s+%s" with trainer_pip_extra_index_urls '
            '["%s%s"], or that wheel in trainer_wheelhouse' % (version, label, TORCH_INDEX, label))
    if not known:
        text += (" (check that PyTorch publishes it for torch %s: %s%s/torch/; any CUDA %d.x "
                 "build runs on this driver)"
                 % (release, TORCH_INDEX, label, version_key(cuda_of_label(label))[0]))
    return text


def _driver_alternative(cuda, fixed_branch):
    minimum = CUDA_MIN_DRIVER.get(cuda) or MINOR_COMPAT_MIN_DRIVER.get(version_key(cuda)[0], "")
    branch = branch_of(minimum)
    if not branch:
        return ""
    if fixed_branch and version_key(fixed_branch) < version_key(branch):
        return ("a newer driver, branch %s or later, installed another way: gpu_host installs "
                "only this system's branch %s, and keeps a working driver" % (branch, fixed_branch))
    return 'gpu_host_driver_branch "%s" (gpu_host installs that branch; a reboot loads it)' % branch


def check_torch(build, driver, fixed_branch=""):
    """Whether `build` runs on `driver` (NVIDIA's table and minor-version compatibility),
    and when not, exactly what to change: the driver branch, or the torch build."""
    if build is None:
        return TorchCheck("none", "no torch requirement: nothing to check", "", "")
    if driver is None:
        return TorchCheck("none", "no NVIDIA GPU: the job runs on the CPU", build.cuda, "")
    newest = max_cuda(driver)
    if build.label and not build.cuda:
        return TorchCheck("not-cuda", "%s is a build without CUDA: jobs on this host do not use "
                          "its NVIDIA GPU" % describe(build), "", newest)
    if not build.cuda:
        return TorchCheck("unknown", "cannot tell which CUDA %s needs: %s; pin a build "
                          '(e.g. "torch==2.13.0+cu128") to have it checked against %s'
                          % (build.requirement, build.origin, driver.label), "", newest)
    if not version_key(driver.version):
        return TorchCheck("unknown", "%s needs CUDA %s; the driver's version is not known"
                          % (describe(build), build.cuda), build.cuda, newest)
    fit = runs_on(build.cuda, driver)
    supports = "CUDA %s" % newest if newest else "no CUDA this check knows"
    if fit == "full":
        return TorchCheck("ok", "%s, built for CUDA %s, runs on %s (%s)" % (
            describe(build), build.cuda, driver.label, supports), build.cuda, newest)
    needed = CUDA_MIN_DRIVER.get(build.cuda)
    if fit == "minor":
        fully = ("driver %s or newer (branch %s)" % (needed, branch_of(needed))
                 if needed else "a driver of a newer branch")
        return TorchCheck(
            "minor",
            "%s, built for CUDA %s, runs on %s (%s) through CUDA minor-version compatibility: "
            "code newer than the driver cannot be compiled at run time (PTX); %s runs it fully"
            % (describe(build), build.cuda, driver.label, supports, fully),
            build.cuda, newest)
    family = MINOR_COMPAT_MIN_DRIVER.get(version_key(build.cuda)[0])
    need_text = "driver >= %s" % needed if needed else "a newer driver"
    if family:
        need_text += " (any CUDA %d.x build runs on >= %s)" % (version_key(build.cuda)[0], family)
    fixes = [fix for fix in (_driver_alternative(build.cuda, fixed_branch),
                             _torch_alternative(build, driver)) if fix]
    return TorchCheck(
        "incompatible",
        "%s is built for CUDA %s, which needs %s; %s supports %s. Change one: %s"
        % (describe(build), build.cuda, need_text, driver.label, supports, "; or ".join(fixes)),
        build.cuda, newest)


# --------------------------------------------------------------------------- plan


def plan_driver(gpu_count, smi_state, smi_error, driver_version, library_version, mismatch,
                pinned, default_branch, fixed_branch, without_gpu):
    """What gpu_host does with the host's driver.

    A driver that works (nvidia-smi answers) stays, whatever its branch, unless the user
    pinned another branch. A driver whose library is newer than the loaded kernel module
    (an upgrade without a reboot) needs a reboot, not packages. Otherwise the pinned
    branch, else the default one, is installed. fixed_branch: the system's packages have
    only that branch (Debian), so another pin cannot be installed.
    """
    running = branch_of(driver_version)
    if gpu_count == 0 and not without_gpu:
        return DriverPlan("none", "", "no NVIDIA GPU: the host runs jobs on the CPU", "")
    if gpu_count and smi_state == "ok" and running:
        if not pinned or pinned == running:
            why = " (the pinned branch)" if pinned else ""
            return DriverPlan("keep", running, "driver %s works%s: nothing to install"
                              % (driver_version, why), "")
        target = pinned
        reason = "driver %s works, but gpu_host_driver_branch is %s" % (driver_version, pinned)
    elif gpu_count and mismatch and (not pinned or pinned == branch_of(library_version)):
        return DriverPlan("reboot", branch_of(library_version),
                          "the installed driver %s is not the loaded one %s: a reboot loads it"
                          % (library_version or "(newer)", driver_version or "(older)"), "")
    else:
        target = pinned or default_branch
        if gpu_count == 0:
            reason = "no NVIDIA GPU; gpu_host_install_without_gpu installs a driver (image baking)"
        elif smi_state == "absent":
            reason = "no NVIDIA driver (no nvidia-smi)"
        else:
            reason = "the NVIDIA driver does not work (nvidia-smi: %s)" % (smi_error or smi_state)
    error = ""
    if fixed_branch and target != fixed_branch:
        error = ("gpu_host_driver_branch is %s, but this system's packages have only branch %s: "
                 'set it to "" or "%s", or install driver %s another way (gpu_host keeps a '
                 "working driver)" % (target, fixed_branch, fixed_branch, target))
    return DriverPlan("install", target, reason, error)


def check_driver(plan, gpu_count, driver_version, driver_cuda, library_version):
    """The driver a torch build must run on, for a plan: None without a GPU (image baking
    included: no job of this host uses the driver)."""
    if not gpu_count:
        return None
    if plan.action == "keep":
        return Driver(driver_version, driver_cuda, "the running driver %s" % driver_version, False)
    if plan.action == "reboot":
        return Driver(library_version, "", "the installed driver %s" % library_version, False)
    if plan.action == "install" and plan.branch:
        label = "driver branch %s (gpu_host installs it)" % plan.branch
        return Driver(plan.branch, "", label, True)
    return None


def plan_summary(plan, torch_message, unchecked=""):
    """What the role says before it changes anything: the driver plan, and whether the torch
    build runs on it (`unchecked`: why it was not checked)."""
    return ["driver: %s: %s" % (" ".join(part for part in plan[:2] if part), plan.reason),
            "torch: %s" % (("not checked: " + unchecked) if unchecked else torch_message)]
