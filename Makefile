# Carrier for Kubernetes. `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TOOLS := .cache/tools

.PHONY: all venv demo test unit check lint typecheck pytest tools bench chaos e2e crds clean

all: test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## The main job on an embedded default: moto_server + sample worker + sidecar + sample messages.
demo: venv
	$(BIN)/python examples/demo.py

## The whole suite: lint, types, then every test (chart tests need helm: `make tools`).
test: check tools
	PATH="$(CURDIR)/$(TOOLS)/bin:$$PATH" $(BIN)/pytest -q -p no:cacheprovider

## The fast loop: the pure and in-memory tests only (no servers, processes or helm), under 15 s.
unit: venv
	$(BIN)/pytest -q -p no:cacheprovider -m "not slow"

check: lint typecheck

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

tools: venv
	bash .ci/tools.sh $(TOOLS)

bench: venv
	$(BIN)/python -m bench.run $(if $(REFERENCE),--reference-cmd "$(REFERENCE)")

## Full chaos runs (10 000 messages per queue) and the full admission fuzz (10 000 bodies).
chaos: venv
	CARRIER_CHAOS=full $(BIN)/pytest -q -p no:cacheprovider tests/chaos tests/injector/test_fuzz.py

e2e: venv
	$(BIN)/pytest -q -p no:cacheprovider -m e2e tests/e2e

## Regenerate the CRD from the sidecar's settings model, and the chart's copy of it.
crds: venv
	$(BIN)/python -m carrier_operator.crd > crds/carrierbinding.yaml
	cp crds/carrierbinding.yaml charts/carrier/crds/carrierbinding.yaml

clean:
	rm -rf $(VENV) .cache .mypy_cache .ruff_cache .pytest_cache
