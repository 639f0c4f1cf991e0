# Two commands on a fresh machine:  make demo  |  make test
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: env demo screenshots test lint bench proto serve clean

$(BIN)/oms-server: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

env: $(BIN)/oms-server

## demo: create the environment, start oms-server on its embedded Redis, run the realistic demo
demo: env
	$(BIN)/python -m oms.clients.demo

## screenshots: every console page on the demo's data (headless Chromium) -> docs/screenshots/
screenshots: env
	$(BIN)/python scripts/console_screenshots.py

## test: lint, then the whole test suite (unit, integration on real Redis + gRPC, end-to-end),
## then the integration and end-to-end tiers again on a 3-master embedded Redis Cluster
test: env lint
	$(BIN)/python -m pytest -q -p no:cacheprovider tests
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/integration tests/e2e --redis-cluster

## lint: ruff on everything but the generated protobuf code (pyproject.toml [tool.ruff])
lint: env
	$(BIN)/ruff check .

bench: env
	$(BIN)/python -m benchmarks.run

proto: env
	PYTHON=$(BIN)/python bash scripts/gen_proto.sh

serve: env
	$(BIN)/oms-server --listen 127.0.0.1:50051

clean:
	rm -rf $(VENV) var .pytest_cache
