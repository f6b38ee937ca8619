PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TEST_WORKERS ?= 2
STORE := $(CURDIR)/mlruns
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: install sweep shift shift-runs results results-runs test lint ui server params report clean-results

install:  ## create .venv and install the package with its dev extras
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'

sweep:  ## the smoke study: 2 models x 2 attacks x 3 budgets on synthetic data, into mlruns/
	$(BIN)/python -m covid_robustness -m experiment=smoke

DATA ?=
EXTERNAL ?=
ARGS ?=
CLI := $(BIN)/python -m covid_robustness
SHIFT := experiment=shift_cpu data.root=$(DATA) tracking.dir=$(STORE) $(ARGS)
NEED_DATA = @test -n "$(DATA)" -a -n "$(EXTERNAL)" || { echo "error: give both folders: make $(MAKECMDGOALS) DATA=<folder with the \
	class folders> EXTERNAL=<another source's folder in the same layout>" >&2; exit 2; }

shift: shift-runs  ## the shift study (conf/experiment/shift_cpu.yaml) into $(STORE), then its report into reports/shift_cpu
	$(CLI) report --study shift_cpu --tracking-uri sqlite:///$(STORE)/mlflow.db --out reports/shift_cpu

shift-runs:
	$(NEED_DATA)
	$(CLI) -m $(SHIFT)
	$(CLI) -m $(SHIFT) attack=pgd 'corruption.severities=[3]' eval.max_images=32
	$(CLI) -m $(SHIFT) data.external_root=$(EXTERNAL) corruption.name=none attack=pgd eval.max_images=32 data.harmonise=false,true
	$(CLI) probe $(SHIFT) corruption.name=none model=resnet18,resnet50,wrn16_8,vgg19,inception_v3

STUDIES := paper_cpu paper_cpu_budgets clinical_cpu defended_cpu shift_cpu certified_cpu
RUN = $(CLI) -m data.root=$(DATA) tracking.dir=$(STORE) $(ARGS)

# Hours on 2 CPU cores: give STORE a folder that outlives the session; a second call resumes where one stopped.
results: results-runs  ## every study of docs/results into one $(STORE), then each report into docs/results/<study> and the READMEs' generated regions
	for study in $(STUDIES); do \
	  $(CLI) report --study $$study --tracking-uri sqlite:///$(STORE)/mlflow.db --out docs/results/$$study || exit 1; \
	done
	$(CLI) readme README.md docs/results/*/README.md

results-runs:
	$(NEED_DATA)
	$(RUN) experiment=paper_cpu
	$(RUN) experiment=clinical_cpu
	$(RUN) experiment=paper_cpu_seeds
	$(RUN) experiment=paper_cpu_budgets
	$(RUN) experiment=defended_cpu
	$(MAKE) shift-runs
	$(RUN) experiment=certified_cpu
	$(RUN) experiment=certified_cpu model=wrn16_8 defense.sigma=0.25

test:  ## the test suite
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=15

lint:  ## ruff (lint and format check) and the import contracts (pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

ui:  ## the MLflow UI over mlruns/, on 127.0.0.1 only; prints the link to each study's runs
	@$(BIN)/python -c "import sys; from covid_robustness.tracking import study_pages; print(study_pages(*sys.argv[1:]))" \
	  "sqlite:///$(STORE)/mlflow.db" "http://$(HOST):$(PORT)"
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(STORE)/mlflow.db --default-artifact-root $(STORE)/artifacts --host $(HOST) --port $(PORT)

BACKEND ?= sqlite:///$(STORE)/mlflow.db
ARTIFACTS ?= $(STORE)/artifacts

SERVE = $(BIN)/mlflow server --backend-store-uri $(BACKEND) --artifacts-destination $(ARTIFACTS) --host $(HOST) --port $(PORT)
AUTH_CONFIG = $(STORE)/basic_auth.ini

# On 127.0.0.1 the server is reachable from this machine only. On any other host it runs MLflow's
# basic-auth app: its admin is MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD from the environment
# (the same variables a job logs with), written to a config readable by its owner only, beside the store;
# its CSRF secret is MLFLOW_FLASK_SERVER_SECRET_KEY, or a fresh random one (set it for several servers).
server:  ## an MLflow tracking server for jobs elsewhere (tracking.uri=http://HOST:PORT); BACKEND may be postgresql://...
ifeq ($(HOST),127.0.0.1)
	$(SERVE)
else
	@test -n "$$MLFLOW_TRACKING_USERNAME" -a -n "$$MLFLOW_TRACKING_PASSWORD" || { echo "error: a server on $(HOST) \
	asks for credentials: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (its admin)" >&2; exit 2; }
	@mkdir -p $(STORE)
	@umask 077 && printf '[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///%s/basic_auth.db\nadmin_username = %s\nadmin_password = %s\nauthorization_function = mlflow.server.auth:authenticate_request_basic_auth\n' \
	  "$(STORE)" "$$MLFLOW_TRACKING_USERNAME" "$$MLFLOW_TRACKING_PASSWORD" > $(AUTH_CONFIG)
	MLFLOW_AUTH_CONFIG_PATH=$(AUTH_CONFIG) \
	MLFLOW_FLASK_SERVER_SECRET_KEY=$${MLFLOW_FLASK_SERVER_SECRET_KEY:-$$($(BIN)/python -c 'import secrets; print(secrets.token_hex(32))')} \
	$(SERVE) --app-name basic-auth
endif

params:  ## parameter counts beside the paper's Table I
	$(BIN)/python -m covid_robustness params

STUDY ?= smoke
OUT ?= reports/$(STUDY)

report:  ## tables, figures and one HTML page of a study's MLflow runs, into $(OUT) (make report STUDY=paper)
	$(BIN)/python -m covid_robustness report --study $(STUDY) --out $(OUT)

clean-results:  ## delete the local MLflow store, checkpoints and sweep outputs
	rm -rf mlruns/mlflow.db mlruns/artifacts mlruns/checkpoints multirun/20* outputs
