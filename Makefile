# Two commands on a fresh machine:
#   make run    set up .venv, install the project, run the main job (train 2024-01, validate 2024-02)
#   make test   set up .venv with the test extra, run the test suite
#
# Offline-first: when ../shared/data/nyc-tlc exists and TAXI_DATA_SOURCE is unset, the months
# are read from that folder; otherwise they are downloaded from the TLC address.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SHARED_TLC := $(abspath ../shared/data/nyc-tlc)
MONTH ?= 2024-02

export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
ifeq ($(origin TAXI_DATA_SOURCE), undefined)
  ifneq ($(wildcard $(SHARED_TLC)/*.parquet),)
    export TAXI_DATA_SOURCE := $(SHARED_TLC)
  endif
endif

.PHONY: setup run test dev bench clean

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

test: setup
	$(BIN)/python -m pytest -q

dev: setup
	$(BIN)/taxi-assets init
	$(BIN)/dagster dev -w workspace.yaml

bench: setup
	for b in benchmarks/*.py; do case $$b in */_*) ;; *) $(BIN)/python $$b || exit 1;; esac; done

clean:
	rm -rf $(VENV) .dagster_home data
