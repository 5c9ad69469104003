# The README's two commands are `make run` and `make test`; each sets up what it needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test test-app test-sdk lint bench migrate demo clean

$(STAMP): pyproject.toml sdk/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -e '.[dev]' -e './sdk[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install Percall with its dev tools

migrate: install
	@mkdir -p var
	$(BIN)/python manage.py migrate --noinput -v 0

demo: migrate ## load the demo business once (idempotent) and run the pipeline
	$(BIN)/python manage.py demo_load --if-empty
	$(BIN)/python manage.py pipeline_run

run: demo ## set everything up and serve on http://$(HOST):$(PORT)
	$(BIN)/python manage.py demo_info --base-url http://$(HOST):$(PORT)
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

test: test-app test-sdk ## the whole suite: Percall's, then the SDK's

test-app: install ## Percall's suite; PostgreSQL tests run when DATABASE_URL points at one
	$(BIN)/python -m pytest

test-sdk: install ## the SDK's unit tests and its end-to-end run against a real Percall server
	cd sdk && env -u DATABASE_URL -u CELERY_BROKER_URL -u REDIS_URL ../$(BIN)/python -m pytest

lint: install ## ruff, format, mypy, import boundaries, migrations in sync
	@mkdir -p var
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy apps config
	cd sdk && ../$(BIN)/mypy src/percall
	$(BIN)/lint-imports
	$(BIN)/python manage.py makemigrations --check --dry-run

bench: install ## ingestion, rollup and billing throughput as one JSON line (PostgreSQL if DATABASE_URL), then the SDK's
	$(BIN)/python -m tests.bench.run
	$(BIN)/python sdk/bench.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
