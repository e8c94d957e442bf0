# Developer entry points. Everything runs from a project-local virtualenv that is
# built from requirements.lock (exact pins) the first time any target needs it,
# and rebuilt whenever the lock, pyproject.toml or the set of packages changes.

PY ?= python3
VENV = .venv
STAMP = $(VENV)/.installed
# The editable install maps each top-level package when it is built, so a
# package that appears later (server/, store/) must trigger a reinstall.
PACKAGE_INITS = $(wildcard server/__init__.py store/__init__.py config/__init__.py recorder/__init__.py)
LINT_PATHS = $(wildcard server store config tests bench recorder examples)

.DEFAULT_GOAL := test
.PHONY: install serve test lint bench clean

$(STAMP): requirements.lock pyproject.toml $(PACKAGE_INITS)
	$(PY) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -r requirements.lock
	$(VENV)/bin/python -m pip install --no-deps -e .
	touch $@

install: $(STAMP)

serve: $(STAMP)
	$(VENV)/bin/task-history serve $(ARGS)

test: $(STAMP)
	$(VENV)/bin/python -m pytest $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)

bench: $(STAMP)
	$(VENV)/bin/python bench/store_bench.py
	$(VENV)/bin/python bench/tools_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache bench/out *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
