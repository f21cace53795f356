# The Make targets are the interface: the README, .ci/run and buildspec.yml call these.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

.DEFAULT_GOAL := help
.PHONY: help run test lint typecheck pytest asl check-asl synth layer bench deploy clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

# --- set-up: each stamp is redone when pyproject.toml changes -----------------------------
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=24"

$(VENV)/.stamp-local: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e ".[local]"
	@touch $@

$(VENV)/.stamp-dev: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e ".[dev]"
	@touch $@ $(VENV)/.stamp-local

# The browser the report test renders pages in: Debian's chromium, installed with apt when
# missing and we are root (CI and a fresh machine are); otherwise that test skips, saying why.
CHROMIUM ?= /usr/bin/chromium
$(VENV)/.stamp-browser: | $(BIN)/python
	@if [ ! -x $(CHROMIUM) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
	  || echo "note: apt-get could not install chromium"; fi
	@if [ -x $(CHROMIUM) ]; then touch $@; else \
	  echo "note: no $(CHROMIUM): the report's browser test will skip (it says why)"; fi

node_modules/.stamp: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# --- the README's two commands ------------------------------------------------------------
run: $(VENV)/.stamp-local ## the local pipeline end to end (no AWS account, no Docker)
	$(BIN)/sfn-mlops local run

test: $(VENV)/.stamp-dev node_modules/.stamp $(VENV)/.stamp-browser lint typecheck pytest ## lint, type checks and every test

# --- pieces -------------------------------------------------------------------------------
lint: $(VENV)/.stamp-dev ## ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.stamp-dev ## mypy (strict for shared/ and functions/)
	$(BIN)/mypy

pytest: $(VENV)/.stamp-dev node_modules/.stamp $(VENV)/.stamp-browser ## the test suite
	$(BIN)/pytest

asl: $(VENV)/.stamp-dev ## render the state machine: ASL JSON, Mermaid diagram, input schema
	$(BIN)/python -m state_machine.render

check-asl: $(VENV)/.stamp-dev ## fail if the committed ASL, diagram or schema is stale
	$(BIN)/python -m state_machine.render --check

layer: $(VENV)/.stamp-dev ## build the Lambda code and dependency layer into build/lambda
	$(BIN)/python -m infra.build_lambda build/lambda

synth: $(VENV)/.stamp-dev layer ## synthesise the CDK app into cdk.out (offline, no Docker)
	$(BIN)/python -m infra.app $(CDK_ARGS)

deploy: $(VENV)/.stamp-dev node_modules/.stamp layer ## deploy to the AWS account in your credentials (see README)
	npx cdk deploy --app "$(BIN)/python -m infra.app" --all --require-approval $(or $(CDK_APPROVAL),broadening) $(CDK_ARGS)

bench: $(VENV)/.stamp-dev ## benchmarks/ -> bench-results/ (JSON and a Markdown table)
	$(BIN)/python -m benchmarks.run

clean: ## remove build outputs (keeps .venv)
	rm -rf build cdk.out runs bench-results .pytest_cache .mypy_cache .ruff_cache
