# `make demo` and `make test` work on a fresh machine: they create both Python environments first (idempotent).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup browser demo test lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

setup: $(BIN)/.installed
	$(BIN)/unity-mlops trainer setup

demo: setup
	$(BIN)/python scripts/single_job_test.py

# the dashboard's tests drive a real headless Chromium (Debian's chromium + chromium-driver)
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; } || \
	  echo "could not install chromium and chromium-driver: the browser tests will say what is missing"

test: setup browser
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python bench/player_throughput.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
