# Two entry points: `make run` (set up, materialize everything, print a summary) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export PROJECT_DATA_DIR ?= $(CURDIR)/.data
export DAGSTER_HOME ?= $(PROJECT_DATA_DIR)/dagster_home

.PHONY: setup run test postgres browser pools ui bench stop clean

$(BIN)/.installed: pyproject.toml constraints.txt setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	touch $@

setup: $(BIN)/.installed
	@$(BIN)/python -m resources.local_instance >/dev/null

postgres: setup
	@$(BIN)/python -m resources.ensure_postgres

run: setup postgres
	$(BIN)/python -m resources.materialize_all

# the browser test drives Debian's Chromium through Playwright (no browser download)
browser:
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

test: setup postgres browser
	$(BIN)/python -m pytest tests

pools: setup postgres
	$(BIN)/python -m resources.pool_limits

ui: setup postgres
	$(BIN)/dagster dev -w workspace.yaml

bench: setup postgres
	$(BIN)/python -m bench.run_all

stop:
	-$(BIN)/python -m resources.stop_services

clean: stop
	rm -rf $(PROJECT_DATA_DIR)
