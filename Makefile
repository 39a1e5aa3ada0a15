# execdesk: two commands for a fresh machine with Python 3.11+ and make.
#   make run    start the operator console on the built-in local venue
#   make test   install everything, lint (ruff, mypy) and run the whole suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP_RUN := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test

.PHONY: run lint test bench drill screenshots clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP_RUN): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(STAMP_TEST): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@ $(STAMP_RUN)

run: $(STAMP_RUN)
	$(VENV)/bin/execdesk

# ruff (lint and format check) and mypy over the code; configured in pyproject.toml.
LINT_PATHS := engine console tests benchmarks examples

lint: $(STAMP_TEST)
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy

# Lint first, then the suite, in TEST_JOBS worker processes (pytest-xdist): most tests wait
# on a venue, a clock or a process, so more workers than cores pay off; every test owns its
# ports (0), journal, runtime dir and venue, so workers share nothing. `make test TEST_JOBS=0`
# runs it in this one process. pytest exits 5 when it collects no test: that fails here, loudly.
TEST_JOBS ?= 4

test: lint
	$(PY) -m pytest -q -n $(TEST_JOBS) --dist worksteal

bench: $(STAMP_TEST)
	$(PY) -m benchmarks

drill: $(STAMP_TEST)
	$(PY) -m pytest -q -m slow tests/drills

screenshots: $(STAMP_TEST)
	$(PY) -m console.screenshots

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .hypothesis
