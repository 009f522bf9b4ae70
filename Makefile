# The two commands of the README: `make demo` and `make test`.
# Each creates .venv when missing and installs storyc into it in editable mode, so the
# commands (and the tests) always run the working tree. `make lint` runs ruff (lint and
# format), the import contracts (lint-imports) and mypy; `make test` runs lint, then every
# test, one pytest-xdist worker per core (at most 4: each runs its own Prefect test server
# and build engine). `make check` runs lint and the fast tests (not slow, no browser; under
# a minute on 2 cores) and installs only when pyproject.toml changed since the last install.
# TEST_WORKERS=0 runs the suite in one process.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
STORY ?= stories/fox_and_owl.yaml
TEST_WORKERS ?= auto

.PHONY: demo test check lint install venv bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(PIP) install --upgrade pip

venv: $(BIN)/python

install: venv
	$(PIP) install -e ".[test,bench]"
	$(BIN)/storyc --version
	touch $(VENV)/.installed

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(MAKE) install

# The demo measures its build from the outside (start-up and imports included) and says so.
demo: install
	$(BIN)/storyc lint $(STORY)
	@echo "$(BIN)/storyc build $(STORY)"
	@$(BIN)/python -c 'import subprocess, sys, time; t = time.perf_counter(); code = subprocess.call(sys.argv[1:]); \
	print(f"make demo: storyc build took {time.perf_counter() - t:.1f} s (wall clock, measured by make demo)"); \
	sys.exit(code)' $(BIN)/storyc build $(STORY)

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

test: install
	$(MAKE) --no-print-directory lint
	$(BIN)/python -m pytest tests -n $(TEST_WORKERS) --maxprocesses 4

check: $(VENV)/.installed
	$(MAKE) --no-print-directory lint
	$(BIN)/python -m pytest tests -m "not slow and not browser" -n $(TEST_WORKERS) --maxprocesses 4

bench: install
	for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf build dist .storyc stories/.storyc
