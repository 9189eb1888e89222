# Every target creates .venv on first use, so a fresh clone needs nothing but python3 and make.
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
# checkov pins boto3 and packaging<24, so it gets a virtualenv of its own (stacks/checkov.py).
CHECKOV_VENV  := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-stamp
# The CDK CLI (npm aws-cdk@2, pinned in package.json / package-lock.json), installed on first use.
CDK_STAMP     := node_modules/.installed-stamp
HOST    ?= 127.0.0.1
PORT    ?= 8765

.PHONY: serve test lint format synth cdk-synth checkov check loadtest bench chaos clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

$(CHECKOV_STAMP): pyproject.toml $(STAMP)
	test -x $(CHECKOV_VENV)/bin/python || python3 -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q --disable-pip-version-check "$$($(PY) -m stacks.checkov --requirement)"
	touch $(CHECKOV_STAMP)

$(CDK_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(CDK_STAMP)

## make checkov: install checkov into .venv-checkov (make test and make synth do it on first use)
checkov: $(CHECKOV_STAMP)

## make serve: the local chat service (WebSocket gateway, web client, Lambda runner, embedded moto)
serve: $(STAMP)
	$(VENV)/bin/dynamowave serve --host $(HOST) --port $(PORT) $(ARGS)

## make test: the whole suite (unit, integration, infrastructure with checkov and the real CDK CLI,
## end-to-end, browser, smoke load)
test: $(STAMP) $(CHECKOV_STAMP) $(CDK_STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

## make lint: ruff (lint + format check) and mypy --strict
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

## make synth: cdk.out/ for every stage configuration, checked by cdk-nag, cfn-lint and checkov,
## then the real CDK CLI (npx aws-cdk@2 synth) on cdk.json as shipped, offline
synth: $(STAMP) $(CHECKOV_STAMP) $(CDK_STAMP)
	$(PY) -m stacks.synth_all
	$(PY) -m stacks.cdk_cli

## make cdk-synth: only the CDK CLI step of make synth
cdk-synth: $(STAMP) $(CDK_STAMP)
	$(PY) -m stacks.cdk_cli

## make check URL=wss://... ARGS="--secret-arn ARN": dynamowave check against a deployment
check: $(STAMP)
	$(VENV)/bin/dynamowave check $(URL) $(ARGS)

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
