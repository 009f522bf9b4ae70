# The two commands of the README: `make demo` and `make test`.
# Each creates .venv when missing and (re)installs storyc into it, non-editable,
# exactly as a user would get it from `pip install .`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
STORY ?= stories/fox_and_owl.yaml

.PHONY: demo test install venv bench clean dev

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(PIP) install --upgrade pip

venv: $(BIN)/python

install: venv
	$(PIP) install ".[test,bench]"
	$(BIN)/storyc --version

demo: install
	$(BIN)/storyc lint $(STORY)
	$(BIN)/storyc build $(STORY)

test: install
	$(BIN)/python -m pytest tests

bench: install
	for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf build dist .storyc stories/.storyc

# Developers: install the dependencies, then link the source tree in place of the
# installed package so edits take effect at once (hatchling's editable mode cannot
# rename compiler/ to storyc/).
dev: install
	rm -rf "$$($(BIN)/python -c 'import sysconfig;print(sysconfig.get_paths()["purelib"])')/storyc"
	ln -s "$(CURDIR)/compiler" "$$($(BIN)/python -c 'import sysconfig;print(sysconfig.get_paths()["purelib"])')/storyc"
