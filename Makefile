# Two commands run orderdeck from a fresh clone:
#   make launch   virtualenv + package + local Apache Kafka jars, then the control center
#   make test     the same set-up, then lint, types and the whole test suite
# Every step is skipped when already done, so both are quick the second time.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.orderdeck-installed

.PHONY: launch test setup system-deps test-system-deps kafka-install lint

launch: setup kafka-install
	$(BIN)/orderdeck launch

test: setup test-system-deps kafka-install lint
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict orderdeck

setup: system-deps $(STAMP)

system-deps:
	@scripts/ensure-system-deps.sh

test-system-deps:
	@scripts/ensure-system-deps.sh --test

$(BIN)/python:
	@echo "orderdeck: creating the virtualenv in $(VENV)"
	$(PYTHON) -m venv $(VENV)

# Reinstalled only when the dependencies change. pip prints a line per package it collects
# and installs: the first install takes about a minute and must not look like a hang.
$(STAMP): pyproject.toml | $(BIN)/python
	@echo "orderdeck: installing the package and its dependencies (about a minute the first time)"
	$(BIN)/python -m pip install --progress-bar off -e '.[test]'
	@touch $@

kafka-install: $(STAMP)
	@echo "orderdeck: making sure the Apache Kafka jars are installed"
	$(BIN)/orderdeck kafka install
