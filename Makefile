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

# The sample channels.toml signs CAP with var/cap-signing/: a self-signed DEMO pair, made once.
demo: $(STAMP)
	@[ -f var/cap-signing/cap-signing-key.pem ] || $(BIN)/broadcaster cap --keygen var/cap-signing
	$(BIN)/broadcaster channels check --dry-run
	$(BIN)/broadcaster templates check
	$(BIN)/broadcaster preview road_closure --use-examples --cards var/cards
	$(BIN)/broadcaster fire road_closure --use-examples --dry-run --log
	$(BIN)/broadcaster preview earthquake --use-examples --channels kind:cell_broadcast
	@id=$$($(BIN)/broadcaster fire earthquake --use-examples --dry-run --json | \
	    $(BIN)/python -c 'import json, sys; print(json.load(sys.stdin)["alert_id"])') && \
	  echo "$(BIN)/broadcaster log $$id" && $(BIN)/broadcaster log $$id && \
	  echo "$(BIN)/broadcaster cap $$id" && $(BIN)/broadcaster cap $$id

lint: $(STAMP)
	$(BIN)/ruff check broadcaster tests bench
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache
