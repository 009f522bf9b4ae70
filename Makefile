# The two commands of the README: `make demo` and `make test`.
# Each creates .venv when missing and installs storyc into it in editable mode, so the
# commands (and the tests) always run the working tree. `make lint` runs ruff (lint and
# format), the import contracts (lint-imports) and mypy; `make test` runs lint, then every
# test. `make check` runs lint and the fast tests (not slow, no browser; under a minute on
# 2 cores) and installs only when pyproject.toml changed since the last install.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
STORY ?= stories/fox_and_owl.yaml

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

demo: install
	$(BIN)/storyc lint $(STORY)
	$(BIN)/storyc build $(STORY)

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

test: install
	$(MAKE) --no-print-directory lint
	$(BIN)/python -m pytest tests

check: $(VENV)/.installed
	$(MAKE) --no-print-directory lint
	$(BIN)/python -m pytest tests -m "not slow and not browser"

bench: install
	for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf build dist .storyc stories/.storyc
