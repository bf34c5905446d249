# Everything runs from two virtual environments built with Python 3.13:
#   .venv        the application, its tests and the stripe-monitor command (pins in requirements-dev.txt)
#   .venv-tools  aws-sam-cli, cfn-lint, checkov (they pin older urllib3/boto3; kept apart on purpose)
# `make` alone, or `make help`, lists the targets: each has one "## " line above it.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
PYTHON313 := $(shell tools/find-python313 2>/dev/null)
VENV := .venv
TOOLS := .venv-tools
PY := $(VENV)/bin/python
# sam build: the architecture of this machine by default (the built code runs here: sam local, bench).
ARCH ?= $(if $(filter aarch64 arm64,$(shell uname -m)),arm64,x86_64)
# make deploy: the samconfig.toml environment; GUIDED=1/0, SCHEDULE=DISABLED and DRY_RUN=1 if set.
ENV ?= default
export SAM_CLI_TELEMETRY := 0
# Hide pip's warnings about local index folders that this machine's pip config names but does not have.
PIP_NOISE := { grep -v 'is ignored: it is neither a file nor a directory' || true; }
STEP = @printf '\n==> %s\n' 

.PHONY: help local serve test lint typecheck build validate deploy bench sam-local clean cost fuzz
FUZZ_SCALE ?= 14

## List the targets (this text).
help:
	@echo "make TARGET, where TARGET is one of:"
	@awk '/^## /{doc=substr($$0,4); next} /^[a-z-]+:/{if(doc){split($$0,t,":"); printf "  %-10s %s\n", t[1], doc}; doc=""} !/^## /{doc=""}' $(MAKEFILE_LIST)
	@echo "Variables: ARCH=arm64|x86_64 (build); ENV=prod, GUIDED=1|0, SCHEDULE=DISABLED, DRY_RUN=1 (deploy)."

$(VENV)/.installed: requirements-dev.txt layers/common/requirements.txt
	@test -n "$(PYTHON313)" || { tools/find-python313; exit 1; }
	$(STEP)"Creating $(VENV) with $(PYTHON313): the pinned packages of requirements-dev.txt (about a minute, once)"
	@SECONDS=0; $(PYTHON313) -m venv $(VENV) \
	  && $(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt 2>&1 | $(PIP_NOISE) \
	  && $(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e . 2>&1 \
	     | $(PIP_NOISE) \
	  && echo "    $(VENV) ready in $${SECONDS} s, with $(VENV)/bin/stripe-monitor"
	@touch $@

$(TOOLS)/.installed: requirements-tools.txt
	@test -n "$(PYTHON313)" || { tools/find-python313; exit 1; }
	$(STEP)"Creating $(TOOLS) with $(PYTHON313): aws-sam-cli, cfn-lint, checkov (about a minute, once)"
	@SECONDS=0; $(PYTHON313) -m venv $(TOOLS) \
	  && $(TOOLS)/bin/pip install --quiet --disable-pip-version-check -r requirements-tools.txt 2>&1 | $(PIP_NOISE) \
	  && echo "    $(TOOLS) ready in $${SECONDS} s"
	@touch $@

## The demo: the whole product on local stand-ins, then stripe-monitor status (no AWS).
local: $(VENV)/.installed
	$(STEP)"The demo: python -m tools.run_local"
	@$(PY) -m tools.run_local

## The local stack until Ctrl-C: the API on :3000 for stripe-monitor, stand-ins for sam local.
serve: $(VENV)/.installed
	@$(PY) -m tools.run_local --serve

## Every test: unit, integration, template, build, packaging, sam local (about 6 min).
test: $(VENV)/.installed $(TOOLS)/.installed
	$(STEP)"pytest: every test (about 6 min; the sam local ones need Docker)"
	$(PY) -m pytest

## ruff (lint and format) and the Lambda code's import rules.
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m tools.import_rules

## mypy, strict.
typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

## sam build for ARCH: this machine's by default (the build runs here); ARCH=arm64 for Lambda.
build: $(TOOLS)/.installed
	$(STEP)"sam build for $(ARCH) into .aws-sam/build, with $(PYTHON313) first on PATH"
	PATH="$(dir $(PYTHON313)):$$PATH" $(TOOLS)/bin/sam build --parameter-overrides Architecture=$(ARCH)

## sam validate --lint: the template, through cfn-lint.
validate: $(TOOLS)/.installed
	$(TOOLS)/bin/sam validate --lint --config-env $(ENV)

## Build for the stack's architecture, then deploy (guided the first time). See the README.
deploy: $(VENV)/.installed $(TOOLS)/.installed
	@$(PY) -m tools.deploy --config-env $(ENV) \
	  $(if $(SCHEDULE),--schedule $(SCHEDULE)) \
	  $(if $(filter 1 yes true,$(GUIDED)),--guided,$(if $(filter 0 no false,$(GUIDED)),--no-guided)) \
	  $(if $(DRY_RUN),--dry-run)

## Cold start, warm ping and fan-out of the built function beside two peers (under 2 min).
bench: $(VENV)/.installed $(TOOLS)/.installed
	$(PY) -m bench.run $(BENCH_ARGS)

## The hostile-input properties with 14x their examples (about 24,000; 5 min). Not in CI.
fuzz: $(VENV)/.installed
	@echo "Fuzzing every entry point with hypothesis (FUZZ_SCALE=$(FUZZ_SCALE)) ..."
	FUZZ_SCALE=$(FUZZ_SCALE) $(PY) -m pytest -q -p no:cacheprovider tests/reliability/test_hostile_input.py \
		--hypothesis-show-statistics

## What the monitor costs a month, counted on the stand-ins (about 2 min; docs/cost.md).
cost: $(VENV)/.installed
	@echo "Counting a month of the reference deployment (16 destinations, every 10 minutes) ..."
	$(PY) -m bench.cost $(COST_ARGS)

## Only the sam local tests: invoke and start-api in Docker (docs/sam-local.md).
sam-local: $(VENV)/.installed $(TOOLS)/.installed
	$(PY) -m pytest tests/sam_local -ra

## Remove build output and caches (not the virtual environments).
clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache
