# Everything runs from two virtual environments built with Python 3.13:
#   .venv        the application and its tests (pins in requirements-dev.txt)
#   .venv-tools  aws-sam-cli, cfn-lint, checkov (they pin older urllib3/boto3; kept apart on purpose)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON313 := $(shell tools/find-python313)
VENV := .venv
TOOLS := .venv-tools
PY := $(VENV)/bin/python
export SAM_CLI_TELEMETRY := 0
# Hide pip's warnings about local index folders that this machine's pip config names but does not have.
PIP_NOISE := { grep -v 'is ignored: it is neither a file nor a directory' || true; }

.PHONY: local test lint typecheck build bench sam-local clean

$(VENV)/.installed: requirements-dev.txt layers/common/requirements.txt
	@test -n "$(PYTHON313)" || { echo "Python 3.13 is required"; exit 1; }
	$(PYTHON313) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt 2>&1 | $(PIP_NOISE)
	touch $@

$(TOOLS)/.installed: requirements-tools.txt
	@test -n "$(PYTHON313)" || { echo "Python 3.13 is required"; exit 1; }
	$(PYTHON313) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check -r requirements-tools.txt 2>&1 | $(PIP_NOISE)
	touch $@

## Run the monitor's main job locally on embedded stand-ins (no AWS, no Stripe key, no Docker).
local: $(VENV)/.installed
	$(PY) -m tools.run_local

## Run every test (unit, integration, template, packaging).
test: $(VENV)/.installed $(TOOLS)/.installed
	$(PY) -m pytest

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m tools.import_rules

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

## sam build for this machine's architecture (x86_64), so the built code runs here.
build: $(TOOLS)/.installed
	PATH="$(dir $(PYTHON313)):$$PATH" $(TOOLS)/bin/sam build --parameter-overrides Architecture=x86_64

## Cold start, warm ping and fan-out of the BUILT function beside the minimum and a stripe-python peer, on
## the local stand-ins (under 2 minutes; table on stdout, JSON in bench/results/; docs/performance.md).
bench: $(VENV)/.installed $(TOOLS)/.installed
	$(PY) -m bench.run $(BENCH_ARGS)

## sam local invoke/start-api in Docker (private dockerd, Debian stand-in image; docs/sam-local.md).
sam-local: $(VENV)/.installed $(TOOLS)/.installed
	$(PY) -m pytest tests/sam_local -ra

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache
