# Everything runs offline from a fresh clone: each target makes the virtualenv it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
SCAN_VENV := .venv-scan
EVENT ?= events/create.json
HYPOTHESIS_PROFILE ?= ci
# pytest workers for `make test`: the slow tiers mostly wait (retries, backoff), so three per core, at most 8.
PYTEST_WORKERS ?= $(shell $(PYTHON) -c 'import os; print(min(8, 3 * (os.cpu_count() or 1)))')
# The SAM CLI otherwise prints a telemetry notice on first use and reports usage; every sam call below inherits this.
export SAM_CLI_TELEMETRY := 0

.PHONY: help demo audit invoke bench bench-smoke check test test-runtime lint typecheck templates scan pytest thorough build validate sam-check lock clean

help:
	@echo "make demo     - Custom::CacheIngress offline: VPC mode, then EC2-Classic (ARGS=--verbose: full bodies, logs)"
	@echo "make audit    - cache-ingress audit, repair and sweep on a small offline world"
	@echo "make check    - the fast loop: lint, type check, the unit and functional tiers (well under a minute)"
	@echo "make test     - lint, type check, template checks, scanners and every test tier, in parallel"
	@echo "make invoke EVENT=events/create.json - one event through the handler, offline"
	@echo "make test-runtime - the tests again on python3.13, the Lambda runtime (if installed)"
	@echo "make build    - sam build (no Docker needed); make validate - sam validate --lint"
	@echo "make bench    - benchmarks with ratios against floors measured in the same run"
	@echo "make lock     - re-pin requirements after editing a *.in file"

# A virtualenv from hashed pins: $(1) is its folder, $(2) its requirements file; with $(3), the project itself
# too (editable, so `cache-ingress` runs the code in handler/; --no-deps: its dependencies are among the pins,
# and no build isolation: setuptools is pinned in requirements-pip.txt, so nothing unpinned is fetched).
# Its output goes to stderr, so that a first `make invoke` still prints nothing but the JSON body on stdout.
define make_venv
	@echo "== making $(1) from $(2)" >&2
	@$(PYTHON) -m venv $(1) >&2
	@$(1)/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements-pip.txt >&2
	@$(1)/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes -r $(2) >&2
	$(if $(3),@$(1)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation --editable . >&2)
	@touch $(1)/.installed
endef

$(VENV)/.installed: requirements-pip.txt requirements-dev.txt handler/requirements.txt
	$(call make_venv,$(VENV),requirements-dev.txt,project)

$(SAM_VENV)/.installed: requirements-pip.txt requirements-sam.txt
	$(call make_venv,$(SAM_VENV),requirements-sam.txt)

$(SCAN_VENV)/.installed: requirements-pip.txt requirements-scan.txt
	$(call make_venv,$(SCAN_VENV),requirements-scan.txt)

demo: $(VENV)/.installed
	$(BIN)/python -m offline.demo $(ARGS)

# cache-ingress (audit, repair, sweep) run for real on the offline world, after staging a small one in it.
audit: $(VENV)/.installed
	$(BIN)/python -m offline.audit

# stdout is the JSON body alone (the recipe is not echoed); exits non-zero when the body says FAILED.
invoke: $(VENV)/.installed
	@$(BIN)/python -m offline.invoke $(EVENT)

# The fast loop while editing: no scanners, no servers beyond the session's, no slow tiers.
check: lint typecheck
	@echo "== pytest: unit and functional tiers"
	HYPOTHESIS_PROFILE=$(HYPOTHESIS_PROFILE) $(BIN)/python -m pytest -q -p no:cacheprovider tests/unit tests/functional

test: lint typecheck templates scan pytest

lint: $(VENV)/.installed
	@echo "== lint: ruff"
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed
	@echo "== types: mypy --strict"
	$(BIN)/mypy

# The examples again with the project's own rule (cfn_lint_rules/): what the provider would refuse in them.
templates: $(VENV)/.installed
	@echo "== templates: cfn-lint"
	$(BIN)/cfn-lint template.yaml examples/*.yaml
	$(BIN)/cfn-lint --append-rules cfn_lint_rules -- examples/*.yaml

# Security scanners: bandit on the code, checkov on the templates (suppressions carry their reason inline).
scan: $(VENV)/.installed $(SCAN_VENV)/.installed
	@echo "== scanners: bandit, checkov"
	$(BIN)/bandit --quiet --recursive handler offline
	$(SCAN_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation \
		$(addprefix --file ,template.yaml $(wildcard examples/*.yaml))

# Every tier, on $(PYTEST_WORKERS) workers (each starts its own servers, lazily); the history shards go first
# (tests/conftest.py), one per worker. PYTEST_WORKERS=0 runs them in this process.
pytest: $(VENV)/.installed
	@echo "== pytest: every tier, $(PYTEST_WORKERS) workers"
	HYPOTHESIS_PROFILE=$(HYPOTHESIS_PROFILE) $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist load --maxschedchunk 1 \
		--durations=5 --cov --cov-report=term

# The handler's tests again on the Lambda runtime's Python (3.13), when this machine has it (pyenv or PATH).
RUNTIME_PYTHON ?= $(shell PYENV_VERSION=3.13.0 python3.13 -c 'import sys; print(sys.executable)' 2>/dev/null)
RUNTIME_VENV := .venv-py313

test-runtime:
ifeq ($(RUNTIME_PYTHON),)
	@echo "no python3.13 on this machine: the runtime check is skipped"
else
	$(MAKE) PYTHON=$(RUNTIME_PYTHON) $(RUNTIME_VENV)/.installed
	$(RUNTIME_VENV)/bin/python -m pytest -p no:cacheprovider tests/unit tests/functional tests/loopback tests/offline tests/templates
endif

$(RUNTIME_VENV)/.installed: requirements-pip.txt requirements-dev.txt
	$(call make_venv,$(RUNTIME_VENV),requirements-dev.txt,project)

# The same suite with many more hypothesis examples.
thorough: HYPOTHESIS_PROFILE=thorough
thorough: pytest

# Speed, each figure against a floor measured in the same run (README, Performance).
bench: $(VENV)/.installed $(SAM_VENV)/.installed
	$(BIN)/python -m benchmarks.bench

bench-smoke: $(VENV)/.installed $(SAM_VENV)/.installed
	$(BIN)/python -m benchmarks.bench --smoke

build: $(SAM_VENV)/.installed
	PATH="$(CURDIR)/$(SAM_VENV)/bin:$$PATH" $(SAM) build

validate: $(SAM_VENV)/.installed
	PATH="$(CURDIR)/$(SAM_VENV)/bin:$$PATH" $(SAM) validate --lint

sam-check: validate build

lock: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet pip-tools
	$(BIN)/pip-compile -q --generate-hashes --allow-unsafe --strip-extras --no-header --no-emit-index-url --no-emit-find-links -o handler/requirements.txt handler/requirements.in
	$(BIN)/pip-compile -q --generate-hashes --allow-unsafe --strip-extras --no-header --no-emit-index-url --no-emit-find-links -o requirements-dev.txt requirements-dev.in
	$(BIN)/pip-compile -q --generate-hashes --allow-unsafe --no-strip-extras --no-header --no-emit-index-url --no-emit-find-links -o requirements-sam.txt requirements-sam.in
	$(BIN)/pip-compile -q --generate-hashes --allow-unsafe --no-strip-extras --no-header --no-emit-index-url --no-emit-find-links -o requirements-scan.txt requirements-scan.in

clean:
	rm -rf $(VENV) $(SAM_VENV) $(SCAN_VENV) $(RUNTIME_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis .coverage
