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
	$(PYTHON) -m venv $(VENV)

# Reinstalled only when the dependencies change.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

kafka-install: $(STAMP)
	$(BIN)/orderdeck kafka install
