# `make demo` and `make test` work on a fresh machine: they create both Python environments first (idempotent).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup servers demo test docs image-test lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

setup: $(BIN)/.installed
	$(BIN)/unity-mlops trainer setup

demo: setup
	$(BIN)/python scripts/single_job_test.py

# what the tests need from Debian: a headless Chromium for the dashboard (chromium + chromium-driver), PostgreSQL for
# the store tests (run by the tests as the postgres user) and a C# compiler for the generated Agents (mono-mcs)
servers:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && command -v mcs >/dev/null && \
	  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver postgresql mono-mcs; } || \
	  echo "could not install chromium, chromium-driver, postgresql and mono-mcs: the tests will say what is missing"

test: setup servers
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/mkdocs build --strict --quiet --site-dir build/site-check
	$(BIN)/python -m pytest

# the documentation site (docs/, MkDocs Material) into site/, offline; its reference pages are generated from the code
docs: setup
	$(BIN)/mkdocs build --strict

# the Docker image, built air-gapped from this checkout and checked inside (Docker's engine from Debian's packages)
image-test: setup
	@command -v docker >/dev/null && command -v debootstrap >/dev/null || \
	  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io debootstrap; }
	$(BIN)/python -m pytest -m image tests/test_image.py

bench: setup
	$(BIN)/python bench/player_throughput.py

clean:
	rm -rf $(VENV) runs site build/site-check .pytest_cache .ruff_cache
