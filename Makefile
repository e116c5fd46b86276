# Two commands on a fresh machine:
#   make run    set up .venv with the runtime dependencies, run the main job (train 2024-01, validate 2024-02)
#   make test   add the test extra to .venv, check the dependencies, lint (ruff, import layers), run the test suite
#               (all but the shipping checks: make test-ship)
#
# Configuration lives in one place: the environment, completed by the .env file that
# `taxi-assets init` writes (see taxi_assets/settings.py). Offline-first: when
# ../shared/data/nyc-tlc holds TLC files and TAXI_DATA_SOURCE is unset, months come from there.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
MONTH ?= 2024-02

.PHONY: setup setup-test run test test-ship test-fast mutation lint deps dev bench clean test-containers

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

# The runtime install (make run, make dev): the project and its pinned dependencies, no test
# tools. Pip shows its progress; reinstalled only when the project metadata changes.
$(VENV)/.installed: pyproject.toml setup.py | $(BIN)/python
	$(BIN)/pip install -e .
	touch $@

# The test extra on top of it (make test, test-fast, lint, deps).
$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install -e ".[test]"
	touch $@

setup: $(VENV)/.installed

setup-test: $(VENV)/.installed-test

run: setup
	$(BIN)/taxi-assets run --month $(MONTH)

# Three workers on two cores (most of the suite waits on daemons, servers and subprocesses:
# 17 min with two workers, 15 with three), each test file on one worker (module fixtures such
# as the system test's settled daemon are built once); TEST_WORKERS=0 runs everything in this
# process. Everything but the shipping checks (marker `ship`, below).
TEST_WORKERS ?= 3

test: setup-test deps lint
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not ship"

# The shipping checks (taxi_assets_tests/ship/, marker `ship`): the wheel built, installed into a
# fresh virtualenv and run outside the checkout (~8 min), deploy/docker-compose.yml translated for
# podman, the deployment files and the gRPC code server. CI runs them after `make test`.
test-ship: setup-test
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m ship

# The pure core (no real months, servers, Postgres or Dagster runs): under two minutes.
test-fast: setup-test
	$(BIN)/python -m pytest -q -m fast

# Mutation testing of the code that decides (mutmut, [tool.mutmut] in pyproject.toml): each
# mutant of the functions in taxi_assets_tests/mutation.py is run against the fast tests that
# call it; prints the score per module and writes it into taxi_assets_tests/MUTATION.md. About
# 10 min on 2 cores: not part of `make test`.
mutation: setup-test
	rm -rf mutants
	$(BIN)/python -m taxi_assets_tests.mutation --report

# ruff, then the layer contracts ([tool.importlinter] in pyproject.toml: the core imports no
# Dagster and no wiring, defs no CLI, arrows point down).
lint: setup-test
	$(BIN)/ruff check taxi_assets taxi_assets_tests support benchmarks
	$(BIN)/lint-imports

# Every imported distribution declared, every declared one used ([tool.deptry] in pyproject.toml):
# the whole tree, then the code location alone with the test extra as development-only.
deps: setup-test
	$(BIN)/deptry .
	$(BIN)/deptry taxi_assets --optional-dependencies-dev-groups test

# The container stack built and run with podman (root; ~20 min cold): deploy/test-containers.sh.
test-containers:
	bash deploy/test-containers.sh

# The UI and the daemon through dg (the project's code location from [tool.dg.project]), in
# this venv: dg warns when the active venv is not the project's, so it is made the active one.
dev: setup
	$(BIN)/taxi-assets init
	VIRTUAL_ENV="$(abspath $(VENV))" PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dg dev --log-level warning

bench: setup-test
	for b in benchmarks/*.py; do case $$b in */_*) ;; *) $(BIN)/python $$b || exit 1;; esac; done

clean:
	rm -rf $(VENV) .dagster_home data .env
