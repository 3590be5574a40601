# Two commands on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
VENV := .venv
# uv from PATH, or bootstrapped with pip into .tools/ when it is missing.
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
export UV_PROJECT_ENVIRONMENT := $(VENV)
# The UIs listen on loopback unless you say otherwise (e.g. `make mlflow-ui UI_HOST=0.0.0.0`,
# only behind authentication); each port is a variable too. The MLOPS_UI__* variables, exported,
# set both these defaults and where the platform's links point (mlops/config/settings.py,
# UiSettings): `export MLOPS_UI__PREFECT_PORT=4300` moves the UI and its links together.
UI_HOST ?= $(or $(MLOPS_UI__HOST),127.0.0.1)
PREFECT_UI_PORT ?= $(or $(MLOPS_UI__PREFECT_PORT),4200)
MLFLOW_UI_PORT ?= $(or $(MLOPS_UI__MLFLOW_PORT),5000)
EVIDENTLY_UI_PORT ?= $(or $(MLOPS_UI__EVIDENTLY_PORT),8000)
FEAST_UI_PORT ?= 8888
# Every library and UI here phones home unless told not to (Evidently's UI reads DO_NOT_TRACK).
export DO_NOT_TRACK := true
export MLFLOW_DISABLE_TELEMETRY := true
export BENTOML_DO_NOT_TRACK := true
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export GX_ANALYTICS_ENABLED := false
export FEAST_USAGE := False

.PHONY: install browser run test test-fast bench lint format clean feast-ui mlflow-ui evidently-ui prefect-ui

install: $(VENV)/.installed

# Bytecode compiled once at install: every process here (a flow run, a service, a CLI call)
# would otherwise compile its imports from source again where PYTHONDONTWRITEBYTECODE is set
# (it is on our CI machines): 4.5 s of CPU to import Feast instead of 2.7 s.
$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --compile-bytecode
	@touch $@

.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet uv

run: install  ## the closed loop on embedded defaults, replayed from a clean MLOPS_HOME
	$(VENV)/bin/mlops run --reset

# Four workers, a module at a time each, the longest modules first (tests/conftest.py): much of
# the suite's time is spent waiting (servers starting, outages, polls); with three workers the
# two cores were busy 1.45 of 2 on average, with four 1.55 and the run 8% shorter.
# `pytest tests/...` alone runs in one process.
test: install browser  ## the whole suite, what CI runs
	$(VENV)/bin/pytest -n 4 --dist loadfile --no-loadscope-reorder

# The edit loop: what needs no server process (unit tests, in-process integration against GX,
# Feast, MLflow's SQLite registry, Evidently, Chromium), on two workers, in about a minute.
test-fast: install browser  ## the tests that start no server (the `server` marker), for the edit loop
	$(VENV)/bin/pytest -n 2 -m "not server"

browser:  ## headless Chromium, for the tests that open pages in a browser (Debian's package)
	@command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)

# The README's pictures (docs/images/), from a real run of `make run`'s story in a temporary
# home: the lifecycle page, the Evidently dashboard, a drift report (a few minutes).
.PHONY: screenshots
screenshots: install browser  ## regenerate the README's pictures from a real run
	$(VENV)/bin/python -m entrypoints.lifecycle_screenshots --out docs/images

# Each at its normal size, one after the other (an hour or more, docs/benchmarks.md). To check in
# a few minutes that they all still run: `$(VENV)/bin/python -m benchmarks all --smoke`.
bench: install  ## every benchmark at its normal size
	$(VENV)/bin/python -m benchmarks all

lint: install  ## style, types, and the import layers (pyproject.toml: [tool.importlinter])
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:  ## forget all platform state (MLOPS_HOME defaults to .mlops/)
	rm -rf .mlops

# The stores of the active profile, as the platform's settings name them (MLOPS_* variables and
# .env): the local registry and SQLite, or the server profile's SQL registry and Redis.
feast-ui: install  ## Feast's UI over the platform's feature stores (run `make run` first)
	eval "$$($(VENV)/bin/python -m mlops.stores.feature_store)" && \
		$(VENV)/bin/feast -c feature_repo ui --host $(UI_HOST) --port $(FEAST_UI_PORT)

evidently-ui: install  ## Evidently's dashboard over the monitoring workspace
	$(VENV)/bin/evidently ui --host $(UI_HOST) --port $(EVIDENTLY_UI_PORT) --workspace $${MLOPS_HOME:-$(CURDIR)/.mlops}/monitoring/workspace

# The UI asks its server's /ui-settings where the API is; unset, Prefect answers port 4200
# whatever --port says. A relative /api is the server the page came from, whichever host and
# port the browser used (set PREFECT_UI_API_URL yourself behind a proxy with a path).
prefect-ui: export PREFECT_UI_API_URL ?= /api
prefect-ui: install  ## Prefect's UI over the runs `make run` recorded
	mkdir -p $${MLOPS_HOME:-$(CURDIR)/.mlops}/prefect
	PREFECT_HOME=$${MLOPS_HOME:-$(CURDIR)/.mlops}/prefect \
		$(VENV)/bin/prefect server start --host $(UI_HOST) --port $(PREFECT_UI_PORT)

# As everywhere in the platform (mlops/config/settings.py, MLFLOW_SERVER_JOBS_OFF): no MLflow
# server jobs (GenAI scoring) are queued here, so none of its job-runner processes is started;
# and one web worker, as `mlops up` runs it (MLflow's default is four). Host headers other than
# localhost and private addresses (a public name behind a proxy): MLOPS_UI__MLFLOW_ALLOWED_HOSTS,
# with this machine's names kept, since the list replaces MLflow's defaults.
MLFLOW_LOCAL_HOSTS := localhost,localhost:*,127.0.0.1,127.0.0.1:*
mlflow-ui: export MLFLOW_SERVER_ENABLE_JOB_EXECUTION := false
mlflow-ui: install  ## MLflow's UI over the local tracking store and registry
	$(VENV)/bin/mlflow ui --host $(UI_HOST) --port $(MLFLOW_UI_PORT) --workers 1 \
		$(if $(MLOPS_UI__MLFLOW_ALLOWED_HOSTS),--allowed-hosts '$(MLOPS_UI__MLFLOW_ALLOWED_HOSTS)$(MLFLOW_LOCAL_HOSTS:%=,%)') \
		--backend-store-uri sqlite:///$${MLOPS_HOME:-$(CURDIR)/.mlops}/mlflow/mlflow.db
