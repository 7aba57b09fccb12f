# The two set-up commands: `make serve` and `make test`. Both create .venv when it is missing.
# `make check` lints and type-checks; CI runs it before `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DATA_DIR ?= ./data

.PHONY: serve test check bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e ".[test]"
	touch $@ $(VENV)/.installed

serve: $(VENV)/.installed
	$(VENV)/bin/quaero serve --data-dir $(DATA_DIR)

test: $(VENV)/.installed-test
	$(PY) -m pytest $(PYTEST_ARGS)

# The import contracts name the example plugin as a root package, so its folder goes on the path.
check: $(VENV)/.installed-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	PYTHONPATH=examples/quaero-echo $(VENV)/bin/lint-imports

bench: $(VENV)/.installed-test
	$(PY) bench/engine.py

clean:
	rm -rf $(VENV) build *.egg-info
