# The README's commands. `make demo` and `make test` create .venv and install what they need.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Lambda runs python3.13; `sam build` needs that interpreter on PATH, so the virtualenv is made
# with it when the machine has it (pyenv or system). The code itself runs on 3.11+.
PYTHON ?= $(shell for p in python3.13 "$$HOME/.pyenv/versions/3.13.0/bin/python3.13" python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)
export AWS_DEFAULT_REGION ?= eu-west-1
export SAM_CLI_TELEMETRY := 0

.PHONY: help venv demo test unit audit lint check-template build bench clean

help:
	@echo "make demo   - run the whole app on the embedded local stack (moto + vendor simulator)"
	@echo "make test   - lint, template checks, unit and integration tests"
	@echo "make unit   - the fast tests alone: unit tests, contracts, template checks (no sam build)"
	@echo "make build  - sam build"
	@echo "make bench  - benchmarks (print tables, fail when a target is missed)"
	@echo "make audit  - known vulnerabilities in the pinned dependencies (pip-audit)"

$(BIN)/.installed: pyproject.toml requirements/dev.lock layers/common/requirements.txt
	@test -n "$(PYTHON)" || { echo "Python 3.11+ is needed"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements/dev.lock -e '.[dev]'
	@touch $@

venv: $(BIN)/.installed

# checkov pins versions of boto3 and others that the main environment can't share.
CHECKOV := .venv-checkov/bin/checkov
$(CHECKOV):
	$(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/pip install --quiet checkov==3.3.30

# pip-audit too, in its own environment; scripts/audit.py says where its data comes from.
AUDIT := .venv-audit/bin/pip-audit
$(AUDIT):
	$(PYTHON) -m venv .venv-audit
	.venv-audit/bin/pip install --quiet pip-audit==2.10.1

audit: $(AUDIT)
	.venv-audit/bin/python scripts/audit.py

demo: venv
	$(BIN)/trigger-relay demo

test: venv $(CHECKOV) $(AUDIT)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/bandit -q -r layers/common/trigger_relay layers/common/build_layer.py functions
	$(BIN)/mypy
	.venv-audit/bin/python scripts/audit.py
	$(CHECKOV) -f template.yaml --framework cloudformation --compact --quiet --skip-download
	$(BIN)/pytest

# The tests a change is checked with while working: no moto server, no simulator, no sam build,
# and the property tests with 10 examples each instead of 30.
unit: venv
	TRIGGER_RELAY_EXAMPLES=10 $(BIN)/pytest -q -n auto -m "not slow and not integration" tests/unit tests/template layers

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

check-template: venv
	$(BIN)/cfn-lint template.yaml
	$(BIN)/sam validate --region $(AWS_DEFAULT_REGION)
	$(BIN)/sam validate --lint --region $(AWS_DEFAULT_REGION)

build: venv
	$(BIN)/sam build

bench: venv
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf .aws-sam .pytest_cache .ruff_cache .local-stack
