# rlops.fleet — the two commands of the README, and what they are made of.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PLAYBOOK := $(BIN)/ansible-playbook
COLLECTION_LINK := $(VENV)/collections/ansible_collections/rlops/fleet
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

.PHONY: train test venv dev lint unit runtime-test integration e2e lab lab-e2e aws-e2e molecule bench build clean

## make train: set up the controller and start train_new on this machine.
train: venv
	$(PLAYBOOK) playbooks/train_new.yml $(ARGS)

## make test: everything CI runs.
test: dev lint unit runtime-test integration e2e lab molecule lab-e2e aws-e2e
	@echo "make test: all suites passed"

venv: $(VENV)/.controller-installed $(COLLECTION_LINK)

dev: venv $(VENV)/.dev-installed

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "rlops.fleet needs Python 3.11 or newer for $(PYTHON)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(VENV)/.controller-installed: requirements.txt | $(VENV)/bin/python
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements-dev.txt runtime/pyproject.toml $(VENV)/.controller-installed
	$(BIN)/pip install --disable-pip-version-check -q -r requirements-dev.txt
	touch $@

$(COLLECTION_LINK): | $(VENV)/bin/python
	mkdir -p $(dir $@)
	ln -sfn $(CURDIR) $@

lint: dev
	$(BIN)/ruff check .
	$(BIN)/yamllint -s .
	$(BIN)/ansible-lint

unit: dev
	$(BIN)/pytest -q tests/unit

runtime-test: dev
	cd runtime && ../$(BIN)/pytest -q

integration: dev
	$(BIN)/pytest -q tests/integration

e2e: dev
	$(BIN)/pytest -q tests/e2e

## Lab hosts (podman + systemd, built offline): set up, boot three, check, tear down.
lab: dev
	tests/lab/lab.sh setup
	tests/lab/smoke.sh 3

## The playbooks over SSH on three lab hosts (train_new ... evaluate, S3 in the lab;
## about 10 min on 2 cores, most of it the three venv installs). Needs `lab` set up.
lab-e2e: lab
	$(BIN)/pytest -q -s tests/lab_e2e

## The AWS path end to end: the playbooks with rlops_provider aws against a moto server,
## each instance played by a lab host (bad input, then a spot session through an
## interruption and a resume on a new instance; docs/aws.md). Needs root and podman.
aws-e2e: dev
	tests/lab/lab.sh setup
	$(BIN)/pytest -q -s tests/e2e_aws

## Every role's Molecule scenario in lab hosts, one after another (~16 min on 2 cores,
## times in molecule/README.md). A failed scenario fails it; a failure or Ctrl-C leaves
## no container or loop device behind.
molecule: lab
	molecule/test.sh

bench: dev
	$(BIN)/python bench/run_all.py

build: venv
	$(BIN)/ansible-galaxy collection build --force --output-path build/

clean:
	rm -rf build/ .pytest_cache
