# Two commands on a fresh machine: `make run` and `make test`. Each bootstraps .venv itself.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 8000
PYTEST_ARGS ?=

.PHONY: run test lint format schema clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# exec: no shell between make and the server, which exits 0 after a graceful shutdown on
# Ctrl-C or SIGTERM: make then has no failed recipe to report.
run: $(STAMP)
	$(BIN)/gql-checkout migrate
	$(BIN)/gql-checkout demo --banner --port $(PORT) --host $(HOST)
	exec $(BIN)/gql-checkout serve --host $(HOST) --port $(PORT) --no-migrate

lint: $(STAMP)
	$(BIN)/ruff check gql_checkout tests bench testkit
	$(BIN)/ruff format --check gql_checkout tests bench testkit
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest $(PYTEST_ARGS)

format: $(STAMP)
	$(BIN)/ruff check --fix gql_checkout tests bench testkit
	$(BIN)/ruff format gql_checkout tests bench testkit

schema: $(STAMP)
	$(BIN)/gql-checkout export-schema > schema.graphql

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
