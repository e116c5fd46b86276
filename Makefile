# Two commands on a fresh machine:
#   make run    set up .venv, install the project, run the main job (train 2024-01, validate 2024-02)
#   make test   set up .venv with the test extra, run the test suite
#
# Configuration lives in one place: the environment, completed by the .env file that
# `taxi-assets init` writes (see taxi_assets/settings.py). Offline-first: when
# ../shared/data/nyc-tlc holds TLC files and TAXI_DATA_SOURCE is unset, months come from there.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
MONTH ?= 2024-02

.PHONY: setup run test test-fast lint dev bench clean test-containers

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Reinstall only when the project metadata changes.
$(VENV)/.installed: pyproject.toml setup.py | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

setup: $(VENV)/.installed

run: setup
	$(BIN)/taxi-assets run --month $(MONTH)

# Two workers, each test file on one worker (module fixtures such as the system test's settled
# daemon are built once); TEST_WORKERS=0 runs everything in this process.
TEST_WORKERS ?= 2

test: setup lint
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# The pure core (no real months, servers, Postgres or Dagster runs): under two minutes.
test-fast: setup
	$(BIN)/python -m pytest -q -m fast

lint: setup
	$(BIN)/ruff check taxi_assets taxi_assets_tests benchmarks

# The container stack built and run with podman (root; ~20 min cold): deploy/test-containers.sh.
test-containers:
	bash deploy/test-containers.sh

dev: setup
	$(BIN)/taxi-assets init
	$(BIN)/dagster dev -w workspace.yaml --log-level warning

bench: setup
	for b in benchmarks/*.py; do case $$b in */_*) ;; *) $(BIN)/python $$b || exit 1;; esac; done

clean:
	rm -rf $(VENV) .dagster_home data .env
