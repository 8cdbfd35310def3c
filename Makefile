# Tally — every target does its own set-up; `make run` and `make test` work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: help install infra-up infra-down infra-status lint fmt test test-unit run chaos fuzz bench asyncapi clean

help:
	@echo "make run      install, start local Kafka + MongoDB-wire server, run a worker and the API"
	@echo "make test     install, start local infrastructure, lint, run every test"
	@echo "make infra-up / infra-down / infra-status   local Kafka (9092) and FerretDB (27017)"
	@echo "make lint     ruff, mypy --strict, docker-compose config, promtool rules and their tests, k8s manifests"
	@echo "make chaos    full chaos suite (contract §8 proven under faults)"
	@echo "make fuzz     the hostile-input fuzzer, 50 000 examples (make test runs 2 000)"
	@echo "make bench    benchmark against the Kafka and database ceilings and the naive loop"

install: $(STAMP)
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

infra-up:
	@bash deploy/local/infra.sh up

infra-down:
	@bash deploy/local/infra.sh down

infra-status:
	@bash deploy/local/infra.sh status

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	@bash deploy/local/compose-check.sh
	@bash deploy/local/k8s-check.sh
	@bash deploy/local/rules-check.sh

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test-unit: install
	$(BIN)/pytest tests/unit -q $(PYTEST_ARGS)

test: install lint infra-up
	@bash deploy/local/tools.sh chromium
	@bash deploy/local/tools.sh wrk
	$(BIN)/pytest tests/unit tests/bench tests/integration tests/e2e tests/chaos -q $(PYTEST_ARGS)

run: install infra-up
	@exec bash deploy/local/run.sh

chaos: install infra-up
	$(BIN)/python -m tests.chaos $(CHAOS_ARGS)

fuzz: install
	TALLY_FUZZ_EXAMPLES=$${TALLY_FUZZ_EXAMPLES:-50000} $(BIN)/pytest tests/unit/test_hostile_input.py -q -p no:cacheprovider $(PYTEST_ARGS)

bench: install infra-up
	@bash deploy/local/tools.sh wrk
	$(BIN)/python -m tests.bench $(BENCH_ARGS)

asyncapi: install
	TALLY_JWT_SECRET=unused-for-generation-0123456789abcdef $(BIN)/tally asyncapi > docs/asyncapi.json
	TALLY_JWT_SECRET=unused-for-generation-0123456789abcdef $(BIN)/tally openapi > docs/openapi.json

clean: infra-down
	rm -rf .local $(VENV) *.egg-info
