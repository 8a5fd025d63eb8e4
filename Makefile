# rlops.fleet — the two commands of the README, and what they are made of.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PLAYBOOK := $(BIN)/ansible-playbook
COLLECTION_LINK := $(VENV)/collections/ansible_collections/rlops/fleet
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

.PHONY: train test venv dev lock ray-venv ray-test azure-test lint sanity unit runtime-test integration e2e lab trainer-it ray-cluster-it lab-e2e lab-ray aws-e2e azure-venv azure-lock azure-e2e molecule lab-ready bench build clean deepracer-lab deepracer-playbooks

## make train: set up the controller and start train_new on this machine.
train: venv
	$(PLAYBOOK) playbooks/train_new.yml $(ARGS)

## make test: everything CI runs.
test: dev lint sanity unit runtime-test azure-test ray-test integration e2e lab trainer-it molecule \
      lab-e2e lab-ray aws-e2e azure-e2e deepracer-lab deepracer-playbooks
	@echo "make test: all suites passed"

venv: $(VENV)/.controller-installed $(COLLECTION_LINK)

dev: venv $(VENV)/.dev-installed

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "rlops.fleet needs Python 3.11 or newer for $(PYTHON)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

## Installs come from the locks: exact versions, made by `make lock` from the ranges of
## requirements*.txt and runtime/pyproject.toml. A changed lock installs again.
$(VENV)/.controller-installed: requirements.lock | $(VENV)/bin/python
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.lock
	touch $@

# The runtime itself is installed editable beside the lock, which holds its dependencies
# (an editable path in a lock would be this machine's absolute path).
$(VENV)/.dev-installed: requirements-dev.lock runtime/pyproject.toml $(VENV)/.controller-installed
	$(BIN)/pip install --disable-pip-version-check -q -r requirements-dev.lock
	$(BIN)/pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e ./runtime
	touch $@

## make lock: refresh the locks on purpose (README, "Upgrading a dependency"). Pins are kept
## while their range admits them; LOCK_ARGS="--upgrade-package NAME" moves one (~2 min).
## - requirements.lock (controller) and requirements-dev.lock (make dev, CI), for this venv's
##   Python, with pip and pip-tools themselves;
## - runtime/locks/python<X.Y>.txt: the training hosts' venvs (rlops-runtime with every extra
##   the trainer role may install), one per Python of LOCK_PYTHONS, each made under that
##   Python (on PATH or pyenv's). torch stays out of them: its build is host-specific (CPU
##   or CUDA) and trainer_torch_requirement pins it; its dependencies are locked for the
##   torch version pinned there. Only PyPI is asked (no local wheels or indexes), so the
##   locks hold what any host can install;
## - runtime/locks/ray/python<X.Y>.txt: the same for the Ray backend's venvs (extras ray, s3).
LOCK_PYTHONS ?= 3.10 3.11 3.12
LOCK_TOOLS := build/lock-tools
PIP_COMPILE_ARGS = --quiet --max-rounds 50 --strip-extras --no-emit-index-url --no-emit-find-links \
  --no-emit-trusted-host $(LOCK_ARGS)
RUNTIME_EXTRAS_LOCKED := --extra sb3 --extra s3 --extra azure --extra box2d --extra mujoco
# The Ray backend's set (runtime/locks/ray/python<X.Y>.txt): RLlib pins its own gymnasium,
# so it cannot share the lock above; torch as there.
RUNTIME_EXTRAS_RAY := --extra ray --extra s3 --extra azure
TORCH_REQUIREMENT = $(shell sed -n 's/^trainer_torch_requirement: *//p' roles/trainer/defaults/main.yml)
VENV_PYTHON_MINOR = $(shell $(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')

lock: dev $(LOCK_PYTHONS:%=$(LOCK_TOOLS)/python%/.installed)
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile $(PIP_COMPILE_ARGS) --allow-unsafe \
	  -o requirements.lock requirements.txt
	echo "$(TORCH_REQUIREMENT)" > $(LOCK_TOOLS)/torch.txt
	for v in $(LOCK_PYTHONS); do \
	  CUSTOM_COMPILE_COMMAND="make lock" PIP_CONFIG_FILE=/dev/null \
	  env -u PIP_FIND_LINKS -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL \
	  $(LOCK_TOOLS)/python$$v/bin/pip-compile $(PIP_COMPILE_ARGS) --unsafe-package torch \
	    -c $(LOCK_TOOLS)/torch.txt $(RUNTIME_EXTRAS_LOCKED) \
	    -o runtime/locks/python$$v.txt runtime/pyproject.toml || exit 1; \
	  CUSTOM_COMPILE_COMMAND="make lock" PIP_CONFIG_FILE=/dev/null \
	  env -u PIP_FIND_LINKS -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL \
	  $(LOCK_TOOLS)/python$$v/bin/pip-compile $(PIP_COMPILE_ARGS) --unsafe-package torch \
	    -c $(LOCK_TOOLS)/torch.txt $(RUNTIME_EXTRAS_RAY) \
	    -o runtime/locks/ray/python$$v.txt runtime/pyproject.toml || exit 1; \
	done
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile $(PIP_COMPILE_ARGS) --allow-unsafe \
	  -c requirements.lock -c runtime/locks/python$(VENV_PYTHON_MINOR).txt \
	  --extra sb3 --extra s3 --extra azure --extra box2d \
	  -o requirements-dev.lock requirements-dev.txt runtime/pyproject.toml

# A venv with pip-tools (as pinned in requirements-dev.lock) for each Python a lock is made for.
$(LOCK_TOOLS)/python%/.installed: requirements-dev.lock
	@py=$$(for c in python$* $${PYENV_ROOT:-$$HOME/.pyenv}/versions/$*.*/bin/python$*; do \
	  "$$c" -c 'import sys; sys.exit(sys.version_info[:2] != tuple(map(int, "$*".split("."))))' \
	    2>/dev/null && { echo "$$c"; break; }; done); \
	[ -n "$$py" ] || { echo "make lock: no Python $* (on PATH or under pyenv): install it or set LOCK_PYTHONS"; exit 1; }; \
	echo "make lock: Python $* is $$py"; \
	rm -rf $(@D) && "$$py" -m venv $(@D)
	$(@D)/bin/pip install --disable-pip-version-check -q -c requirements-dev.lock pip pip-tools
	touch $@

$(COLLECTION_LINK): | $(VENV)/bin/python
	mkdir -p $(dir $@)
	ln -sfn $(CURDIR) $@

lint: dev
	$(BIN)/ruff check .
	$(BIN)/yamllint -s .
	$(BIN)/ansible-lint

## ansible-test sanity (24 tests, the Galaxy gate) in a temporary ansible_collections/ tree,
## offline but for PyPI (tests/sanity/run.sh; findings it may ignore, each with its reason:
## tests/sanity/ignore-2.*.txt). ~100 s on a fresh machine (its test venvs from PyPI, kept
## in ~/.ansible/test/venv), ~50 s after.
sanity: dev
	tests/sanity/run.sh

unit: dev
	$(BIN)/pytest -q tests/unit

runtime-test: dev
	cd runtime && ../$(BIN)/pytest -q

## The Ray backend's venv (.venv/ray-venv): the Ray lock of this Python, the CPU torch of
## trainer_torch_requirement (pip takes the machine's CPU wheel; never a CUDA build), the
## runtime editable, and pytest as requirements-dev.lock pins it. Made again when a Ray lock
## or runtime/pyproject.toml changes: ~1.5 min from PyPI on 2 cores, 104 packages, 2.1 GB.
RAY_VENV := $(VENV)/ray-venv
RAY_LOCK = runtime/locks/ray/python$(VENV_PYTHON_MINOR).txt

ray-venv: $(RAY_VENV)/.installed

$(RAY_VENV)/.installed: $(wildcard runtime/locks/ray/*.txt) runtime/pyproject.toml | $(VENV)/bin/python
	rm -rf $(RAY_VENV) && $(BIN)/python -m venv $(RAY_VENV)
	$(RAY_VENV)/bin/pip install --disable-pip-version-check -q -c $(RAY_LOCK) \
	  "$(TORCH_REQUIREMENT)" -e "./runtime[ray,s3]"
	$(RAY_VENV)/bin/pip install --disable-pip-version-check -q -c requirements-dev.lock pytest
	$(RAY_VENV)/bin/python -c 'import ray, torch; assert not torch.version.cuda, torch.__version__'
	touch $@

## make ray-test: the real-Ray tests (runtime/tests/ray/README.md) in the Ray venv: `rlops-run
## ray` against a local cluster, the RLlib agent on a 2-node cluster on loopback (train,
## checkpoint, kill and resume, a rollout node lost and back, evaluate without a cluster).
## ~2.2 min on 2 cores (6 tests), plus ~1.5 min the first time for the venv.
ray-test: $(RAY_VENV)/.installed
	cd runtime && RLOPS_RAY_TESTS=1 ../$(RAY_VENV)/bin/pytest -q tests/ray

## make azure-test: the runtime's az:// storage against Azurite on 127.0.0.1 (the storage
## contract, publish and fetch tests in their az-azurite case, and tests/test_storage_azure.py:
## large files, credentials, refusals). Azurite 3.35.0, the last release that runs on Node 20,
## from tests/azurite's lock (npm ci, into build/azurite, once); a fixture starts it and stops
## it after. The client sends x-ms-version 2025-11-05 (RLOPS_AZURE_API_VERSION), what
## Azurite 3.35 serves. ~15 s on 2 cores (51 tests, measured 13 s), plus ~15 s the first
## time for npm ci (373 packages, 186 MB).
AZURITE_DIR := build/azurite

$(AZURITE_DIR)/.installed: tests/azurite/package.json tests/azurite/package-lock.json
	rm -rf $(@D) && mkdir -p $(@D)
	cp tests/azurite/package.json tests/azurite/package-lock.json $(@D)/
	cd $(@D) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

azure-test: dev $(AZURITE_DIR)/.installed
	cd runtime && RLOPS_AZURITE=$(CURDIR)/$(AZURITE_DIR)/node_modules/.bin/azurite-blob \
	  ../$(BIN)/pytest -q -k "azurite or azure" tests/storage tests/test_publish.py \
	  tests/test_fetch.py tests/test_storage_azure.py

integration: dev
	$(BIN)/pytest -q tests/integration

## The six playbooks on this machine (tests/e2e): the spine on file and S3 storage, check
## mode, storage that goes away. ~3.7 min on 2 cores (5:17 in CI before the S3 spine stopped
## training to 250000 a second time: that test 134 s -> 35 s at load 1-2), of which ~45 s
## the trainer venv on a fresh clone (.venv/trainer-venvs, shared with trainer-it).
e2e: dev
	$(BIN)/pytest -q tests/e2e

## Lab hosts (podman + systemd, built offline): set up, build the trainer image (the
## trainer's venv in it, by the trainer role, in two layers, tests/lab/README.md: ~95 s when
## a lock or the install tasks changed, ~20 s when only the runtime or a role did, was ~95 s
## for any change), boot three hosts, one of the trainer image and one that runs Docker
## (lab.sh up --docker: a container run on overlay2), check, tear down (~20 s on 2 cores with
## the images current, the Docker host 4 s of it; its image ~30 s once).
lab: lab-ready
	tests/lab/smoke.sh 3

## What the lab suites need before they start: the lab set up and the trainer image current
## (seconds when it is). Without smoke.sh, which `make lab` runs once in `make test`: as a
## prerequisite of each lab suite it ran four times more (~20 s each).
lab-ready: dev
	tests/lab/lab.sh setup
	tests/lab/lab.sh trainer-image

## The trainer role on its own (tests/integration/targets/trainer/runme.sh): bad input and
## check mode, a session's life on this machine, local and git jobs, exact versions, then
## on a lab host of the trainer image under systemd with a reboot that resumes it
## (~5.5 min on 2 cores: 5:29 in CI at load 1-2 with the lab's smoke test, no longer run
## here, and ~36 s of fixed sleeps, now waits on conditions; times in
## tests/integration/targets/trainer/README.md).
trainer-it: lab-ready
	tests/integration/targets/trainer/runme.sh all

## The ray_cluster role on its own (tests/integration/targets/ray_cluster/runme.sh) on three
## hosts of the lab's Ray image: bad input, start, restarts, idempotence and check mode, stop
## leaving no Ray process, a start after it, one host. `make lab-ray` runs the same checks on
## its hosts around the session: this target is for work on the role alone, not in `test`
## (5 min 8 s in CI at load 1-2 before the merge, two runs fewer since).
ray-cluster-it: dev
	tests/lab/lab.sh setup
	tests/integration/targets/ray_cluster/runme.sh

## The playbooks over SSH on three lab hosts (train_new ... evaluate, S3 in the lab;
## about 10 min on 2 cores, most of it the three venv installs). Needs `lab` set up.
lab-e2e: lab-ready
	$(BIN)/pytest -q -s tests/lab_e2e

## The Ray backend over SSH on three lab hosts of the Ray image (tests/lab_ray/README.md):
## the role rlops.fleet.ray_cluster's own checks (runme.sh: bad input, start, restarts,
## idempotence, check mode, stop, one host), then a session on the same hosts: train, a
## rollout host lost and back, the supervisor killed and resumed from LATEST, stop (no Ray
## process left), resume.yml of the stopped session, stop, retrieve, evaluate. Needs root and
## podman. Replaces two suites of 9 min in CI at load 1-2 (lab-ray 3:52, ray-cluster-it 5:08,
## each with its own lab and clusters); measured 13.3 min at load 4.6-11 with other suites
## running beside it (tests/lab_ray/README.md, "Time"); ~2.5 min more when the Ray image is
## stale.
lab-ray: dev
	tests/lab/lab.sh setup
	tests/lab/lab.sh ray-image
	$(BIN)/pytest -q -s tests/lab_ray

## The AWS path end to end: the playbooks with rlops_provider aws against a moto server,
## each instance played by a lab host (bad input, then a spot session through an
## interruption and a resume on a new instance, with --check runs of all six playbooks
## that must change nothing; docs/aws.md). Needs root and podman. ~5 min on 2 cores
## (bad input ~0.5 min, the session ~4 min, of which the --check runs ~1.5 min).
aws-e2e: dev
	tests/lab/lab.sh setup
	$(BIN)/pytest -q -s tests/e2e_aws

## The Azure provider's controller venv (.venv/azure-venv): azure.azcollection's SDK exactly as
## the collection's own requirements.txt pins it (requirements-azure.txt, locked in
## requirements-azure.lock by `make azure-lock`), apart from the controller's venv and the
## runtime's Blob SDK (its azure-core pin clashes with today's azure-storage-blob). The
## playbooks run the azure_rm_* modules under its python (rlops_azure_python). ~3 min from
## PyPI on 2 cores the first time (~90 packages).
AZURE_VENV := $(VENV)/azure-venv

azure-venv: $(AZURE_VENV)/.installed

$(AZURE_VENV)/.installed: requirements-azure.lock | $(VENV)/bin/python
	rm -rf $(AZURE_VENV) && $(BIN)/python -m venv $(AZURE_VENV)
	$(AZURE_VENV)/bin/pip install --disable-pip-version-check -q -r requirements-azure.lock
	touch $@

azure-lock: dev
	CUSTOM_COMPILE_COMMAND="make azure-lock" $(BIN)/pip-compile $(PIP_COMPILE_ARGS) \
	  --allow-unsafe -o requirements-azure.lock requirements-azure.txt

## The Azure path end to end (tests/e2e_azure, docs/azure.md): the playbooks with
## rlops_provider azure, whose azure.azcollection modules reach arm_fake.py (a local HTTPS
## stand-in of the Resource Manager, as their HTTPS proxy on loopback: a metadata endpoint
## URL as cloud_environment fails in azure.azcollection 3.12.0), the VM played by a lab host,
## its data disk by a loop device and its Scheduled Events by a stand-in inside the host: bad
## input refused before any call; the provider alone (max price, identity and its role, refusals,
## deletes); a session's whole life on a lab host: train_new, status, stop (deallocate),
## resume (the same VM), retrieve, evaluate, a Preempt eviction and resume from its checkpoint,
## stop deleting the VM and resume on a new VM with the same disk, stop. Needs root and podman.
## ~9 min on 2 cores (8 min 51 s measured: bad input ~30 s, the provider alone ~2.5 min, the
## lab session ~6 min); the venv ~3 min once.
azure-e2e: dev azure-venv
	tests/lab/lab.sh setup
	$(BIN)/pytest -q -s tests/e2e_azure

## The stand-in DeepRacer simapp (tests/deepracer/README.md): its image built offline from the
## lab image, loaded into Docker inside a privileged lab host, and DRfC's own compose files
## run with it: train (the trainer outside the stack's project), stop, increment from the
## last checkpoint, evaluate with MP4; every S3 key the simapp writes checked. Needs root
## and podman. ~2.2 min on 2 cores from cold (the stand-in's tar ~30 s and the Docker lab
## image ~25 s, both cached after), ~1.4 min when they are current (the Docker runs ~50 s;
## test_standin_local.py and the unit tests, no root, ~15 s).
deepracer-lab: dev
	tests/lab/lab.sh setup
	$(BIN)/pytest -q -s tests/deepracer

## DeepRacer as a backend, through the playbooks (tests/deepracer/test_playbooks.py): train_new
## with rlops_backend deepracer, status, a spot notice (the IMDS fake on the host), resume (the
## increment), stop, evaluate with MP4s, retrieve, on one Docker lab host running the stand-in
## simapp with the stack deepracer_stack renders; S3 by localbucket on the host. Needs root
## and podman. ~2 min on 2 cores with the stand-in's tar and the Docker lab image current (117 s
## measured: the life cycle 99 s, the host ~15 s); ~1 min more from cold (make deepracer-lab's
## images). make deepracer-lab runs only its bad-input test (2 s, no lab).
deepracer-playbooks: dev
	tests/lab/lab.sh setup
	RLOPS_DEEPRACER_PLAYBOOKS=1 $(BIN)/pytest -q -s tests/deepracer/test_playbooks.py

## Every role's Molecule scenario in lab hosts, two at a time (RLOPS_MOLECULE_JOBS), over SSH
## with pipelining: ~4.8 min on 2 cores at load 2-5 (was ~7 min one after another over the
## podman connection at load 1-2; times in molecule/README.md); deepracer_stack's (a Docker
## lab host, the stand-in simapp; first in the list): 60 s alone at load 1.4, ~+1 min to the
## whole. A failed scenario fails it;
## a failure or Ctrl-C leaves no container or loop device behind.
molecule: lab-ready
	molecule/test.sh

## make bench: the measures of issue 11 as one table (bench/README.md): train_new to a first
## checkpoint / the agent by hand, controller CPU s per host, host-play tasks, supervised /
## bare SB3 steps/s. Not part of make test, never fails on a goal. ~2 min on 2 cores when
## quiet (more when the trainer venv is first built); BENCH_ARGS=--all adds sync_cost and
## crash_safety (~3 min each).
bench: dev
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

build: venv
	$(BIN)/ansible-galaxy collection build --force --output-path build/

clean:
	rm -rf build/ .pytest_cache
