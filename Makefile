# The two commands of the README, each doing its own set-up:
#   make quickstart   runs the quick-start flow on the embedded SQLite store
#   make test         installs the project and its test tools, then runs every test
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# Run the venv's tools as if it were activated (IPython checks $VIRTUAL_ENV against itself).
export VIRTUAL_ENV := $(abspath $(VENV))

.PHONY: quickstart test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

quickstart: $(VENV)/.installed
	rm -rf quickstart-data
	$(BIN)/python examples/quickstart.py --workdir quickstart-data
	$(BIN)/python scripts/execute-notebook.py notebooks/01-quickstart.ipynb quickstart-data

test: $(VENV)/.installed
	bash scripts/mysql-test-account.sh
	$(BIN)/python -m pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check mlmd_magic tests examples
	$(BIN)/mypy

clean:
	rm -rf $(VENV) quickstart-data .pytest_cache .mypy_cache .ruff_cache
