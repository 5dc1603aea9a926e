# `make demo` and `make test` work on a fresh machine: they create both Python environments first (idempotent).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

setup: $(BIN)/.installed
	$(BIN)/unity-mlops trainer setup

demo: setup
	$(BIN)/python scripts/single_job_test.py

test: setup
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python bench/player_throughput.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
