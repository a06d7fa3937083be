# Everything runs offline from a fresh clone: each target makes the virtualenv it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
EVENT ?= events/create.json
HYPOTHESIS_PROFILE ?= ci

.PHONY: help demo invoke test lint typecheck templates pytest e2e thorough build validate sam-check lock clean

help:
	@echo "make demo     - full create/update/delete lifecycle against the offline stand-in"
	@echo "make test     - lint, type check, template checks and every test tier"
	@echo "make invoke EVENT=events/create.json - one event through the handler, offline"
	@echo "make build    - sam build (no Docker needed); make validate - sam validate --lint"
	@echo "make lock     - re-pin requirements after editing a *.in file"

$(BIN)/.installed: requirements-dev.txt handler/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements-dev.txt
	touch $@

$(SAM_VENV)/.installed: requirements-sam.txt
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements-sam.txt
	touch $@

demo: $(BIN)/.installed
	$(BIN)/python -m offline.demo

invoke: $(BIN)/.installed
	$(BIN)/python -m offline.invoke $(EVENT)

test: lint typecheck templates pytest

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy

templates: $(BIN)/.installed
	$(BIN)/cfn-lint template.yaml examples/*.yaml

pytest: $(BIN)/.installed
	HYPOTHESIS_PROFILE=$(HYPOTHESIS_PROFILE) $(BIN)/python -m pytest --cov --cov-report=term

# The same suite with many more hypothesis examples.
thorough: HYPOTHESIS_PROFILE=thorough
thorough: pytest

build: $(SAM_VENV)/.installed
	PATH="$(CURDIR)/$(SAM_VENV)/bin:$$PATH" $(SAM) build

validate: $(SAM_VENV)/.installed
	PATH="$(CURDIR)/$(SAM_VENV)/bin:$$PATH" $(SAM) validate --lint

sam-check: validate build

lock: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet pip-tools
	$(BIN)/pip-compile -q --generate-hashes --allow-unsafe --strip-extras --no-header --no-emit-index-url --no-emit-find-links -o handler/requirements.txt handler/requirements.in
	$(BIN)/pip-compile -q --generate-hashes --allow-unsafe --strip-extras --no-header --no-emit-index-url --no-emit-find-links -o requirements-dev.txt requirements-dev.in
	$(BIN)/pip-compile -q --generate-hashes --allow-unsafe --strip-extras --no-header --no-emit-index-url --no-emit-find-links -o requirements-sam.txt requirements-sam.in

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis .coverage
