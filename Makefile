# Two commands for a newcomer: `make demo` and `make test`. Each builds .venv by itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/broadcaster channels check --dry-run
	$(BIN)/broadcaster templates check
	$(BIN)/broadcaster preview road_closure --use-examples --cards var/cards
	$(BIN)/broadcaster fire road_closure --use-examples --dry-run --log

lint: $(STAMP)
	$(BIN)/ruff check broadcaster tests bench
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache
