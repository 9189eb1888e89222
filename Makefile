# Every target creates .venv on first use, so a fresh clone needs nothing but python3 and make.
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
HOST    ?= 127.0.0.1
PORT    ?= 8765

.PHONY: serve test lint format synth loadtest bench chaos clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

## make serve: the local chat service (WebSocket gateway, web client, Lambda runner, embedded moto)
serve: $(STAMP)
	$(VENV)/bin/dynamowave serve --host $(HOST) --port $(PORT) $(ARGS)

## make test: the whole suite (unit, integration, infrastructure, end-to-end, browser, smoke load)
test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

## make lint: ruff (lint + format check) and mypy --strict
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

## make synth: cdk.out/ for every stage configuration, checked by cdk-nag and cfn-lint
synth: $(STAMP)
	$(PY) -m stacks.synth_all

## make loadtest: a local runtime plus a headless locust run; reports under results/
loadtest: $(STAMP)
	$(PY) -m loadtests.run $(ARGS)

## make bench: dynamowave vs the AWS tutorial's design vs websockets.broadcast(), one run
bench: $(STAMP)
	$(VENV)/bin/dynamowave bench $(ARGS)

## make chaos: the long fault-injection run whose figures docs/operations.md records, and the long fuzz profile
chaos: $(STAMP)
	DYNAMOWAVE_CHAOS_MESSAGES=$${DYNAMOWAVE_CHAOS_MESSAGES:-400} $(PY) -m pytest tests/chaos -m "slow or not slow" -s $(PYTEST_ARGS)
	HYPOTHESIS_PROFILE=long $(PY) -m pytest tests/fuzz $(PYTEST_ARGS)

clean:
	rm -rf cdk.out cdk.out.* results .pytest_cache .mypy_cache .ruff_cache
