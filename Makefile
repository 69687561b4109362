# Two commands on a fresh machine: `make run` and `make test`. Each bootstraps .venv itself.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 8000
PYTEST_ARGS ?=

.PHONY: run test lint format schema bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/gql-checkout migrate
	$(BIN)/gql-checkout demo --banner --port $(PORT) --host $(HOST)
	$(BIN)/gql-checkout serve --host $(HOST) --port $(PORT) --no-migrate

lint: $(STAMP)
	$(BIN)/ruff check gql_checkout tests bench
	$(BIN)/ruff format --check gql_checkout tests bench
	$(BIN)/mypy

test: lint
	$(BIN)/pytest $(PYTEST_ARGS)

format: $(STAMP)
	$(BIN)/ruff check --fix gql_checkout tests bench
	$(BIN)/ruff format gql_checkout tests bench

schema: $(STAMP)
	$(BIN)/gql-checkout export-schema > schema.graphql

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
