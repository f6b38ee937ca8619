PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STORE := $(CURDIR)/mlruns
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: install sweep test lint ui server params report clean-results

install:  ## create .venv and install the package with its dev extras
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'

sweep:  ## the smoke study: 2 models x 2 attacks x 3 budgets on synthetic data, into mlruns/
	$(BIN)/python -m covid_robustness -m experiment=smoke

test:  ## the test suite
	$(BIN)/python -m pytest -q

lint:  ## ruff (lint and format check) and the import contracts (pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

ui:  ## the MLflow UI over mlruns/, on 127.0.0.1 only
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(STORE)/mlflow.db --default-artifact-root $(STORE)/artifacts --host $(HOST) --port $(PORT)

BACKEND ?= sqlite:///$(STORE)/mlflow.db
ARTIFACTS ?= $(STORE)/artifacts

server:  ## an MLflow tracking server for jobs elsewhere (tracking.uri=http://HOST:PORT); BACKEND may be postgresql://...
	$(BIN)/mlflow server --backend-store-uri $(BACKEND) --artifacts-destination $(ARTIFACTS) --host $(HOST) --port $(PORT)

params:  ## parameter counts beside the paper's Table I
	$(BIN)/python -m covid_robustness params

STUDY ?= smoke
OUT ?= reports/$(STUDY)

report:  ## tables, figures and one HTML page of a study's MLflow runs, into $(OUT) (make report STUDY=paper)
	$(BIN)/python -m covid_robustness report --study $(STUDY) --out $(OUT)

clean-results:  ## delete the local MLflow store, checkpoints and sweep outputs
	rm -rf mlruns/mlflow.db mlruns/artifacts mlruns/checkpoints multirun/20* outputs
