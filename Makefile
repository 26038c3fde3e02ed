# dbos-airflow: the two commands of the README are `make demo` and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The Prefect venv: Prefect 3.9 and Airflow 3.3 cannot share one (fastapi), nor one constraints file.
PVENV  ?= .venv-prefect
PPY    := $(PVENV)/bin/python
PSTAMP := $(PVENV)/.installed
PREFECT_PKG := packages/prefect-dbos

.PHONY: test test-unit test-fast test-stack test-deployments test-browser test-prefect-then-browser test-airflow test-prefect demo demo-prefect airflow lint lint-airflow lint-prefect bench install install-prefect system-packages ts-app clean

install: $(STAMP)

# Creates .venv when missing and installs the project with its test, otel and openlineage extras, pinned by
# constraints.txt, and
# the Airflow-free core it depends on (packages/dbos-orchestrator) and the shared test helpers
# (packages/dbos-testkit, development only) from this checkout, in one pip command.
$(STAMP): pyproject.toml packages/dbos-orchestrator/pyproject.toml packages/dbos-testkit/pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e packages/dbos-orchestrator -e packages/dbos-testkit -e ".[test,otel,openlineage]"
	touch $(STAMP)

install-prefect: $(PSTAMP)

# Creates .venv-prefect with prefect-dbos and its test extra, pinned by its own constraints file, and
# the shared core (packages/dbos-orchestrator) and test helpers (packages/dbos-testkit) from this checkout.
$(PSTAMP): $(PREFECT_PKG)/pyproject.toml packages/dbos-orchestrator/pyproject.toml packages/dbos-testkit/pyproject.toml $(PREFECT_PKG)/constraints.txt
	test -x $(PPY) || python3 -m venv $(PVENV)
	$(PPY) -m pip install -q -c $(PREFECT_PKG)/constraints.txt -e packages/dbos-orchestrator -e packages/dbos-testkit -e "$(PREFECT_PKG)[test,otel]"
	$(PPY) -m pip check
	touch $(PSTAMP)

# Debian packages the tests need (chromium for the browser tests): installed when missing, once.
system-packages:
	bash scripts/system_packages.sh

# The TypeScript example DBOS app (examples/ts_worker): Node.js >= 20 checked, `npm ci` from its
# package-lock.json into its node_modules (gitignored), compiled with tsc; redone when its sources change.
TS_APP   := examples/ts_worker
TS_STAMP := $(TS_APP)/node_modules/.built
ts-app: $(TS_STAMP)

$(TS_STAMP): $(TS_APP)/package.json $(TS_APP)/package-lock.json $(TS_APP)/tsconfig.json $(wildcard $(TS_APP)/src/*.ts) scripts/ts_app.sh
	bash scripts/ts_app.sh
	touch $(TS_STAMP)

# Three tiers (README, "Development"):
#   make test-unit   tests/unit and the core's tests: no database, no Airflow run, no Chromium, no Node (seconds)
#   make test-fast   everything but the suites that boot an Airflow deployment (tests/stack) or drive the
#                    browser (tests/browser): Postgres, the DBOS worker, dag.test(), the TypeScript worker
#   make test        all of it, both front ends: what CI runs
# One test: .venv/bin/python -m pytest tests/unit/test_layers.py::test_name (or make test-fast PYTEST_ARGS=...).
UNIT_TESTS := tests/unit packages/dbos-orchestrator/tests

# Both venvs and the system packages first (one at a time: both installs write the core's egg-info), then
# two lanes at once: test-fast (itself two pytest-xdist workers) beside the Prefect suite followed by the
# browser suites. They share only the Postgres server (each session on databases of its own, with its own
# DBOS worker, Airflow or Prefect home and ports). -O: each lane's output is printed whole when it ends.
# Then the deployment suites alone: their kills and deferral windows are timed against a real scheduler.
test: $(STAMP) $(PSTAMP) system-packages ts-app
	$(MAKE) --no-print-directory -j2 -O test-fast test-prefect-then-browser
	$(MAKE) --no-print-directory test-deployments

test-prefect-then-browser: test-prefect
	$(MAKE) --no-print-directory test-browser

test-unit: $(STAMP)
	$(PY) -m pytest -q $(UNIT_TESTS) $(PYTEST_ARGS)

# Two pytest-xdist workers, a test module each at a time (--dist loadfile: a module's fixtures stay in
# one process); each worker is a session of its own (its DBOS worker, system database, Airflow home).
XDIST ?= -n 2 --dist loadfile
test-fast: $(STAMP) ts-app
	$(PY) -m pytest -q $(XDIST) --ignore=tests/stack --ignore=tests/browser $(PYTEST_ARGS)

# The suites that boot an Airflow deployment or drive the browser (their own pytest session), and each alone.
test-stack: $(STAMP) system-packages ts-app
	$(PY) -m pytest -q tests/stack tests/browser $(PYTEST_ARGS)

test-deployments: $(STAMP) system-packages ts-app
	$(PY) -m pytest -q tests/stack $(PYTEST_ARGS)

test-browser: $(STAMP) system-packages ts-app
	$(PY) -m pytest -q tests/browser $(PYTEST_ARGS)

test-airflow: $(STAMP) system-packages ts-app
	$(PY) -m pytest -q $(PYTEST_ARGS)

# The core's own tests run in both venvs (the Airflow one collects them through testpaths).
test-prefect: $(PSTAMP)
	$(PPY) -m pytest -q -p no:cacheprovider packages/dbos-orchestrator/tests
	cd $(PREFECT_PKG) && ../../$(PPY) -m pytest -q $(PREFECT_PYTEST_ARGS)

# Example worker on .demo/dbos.sqlite (or $DBOS_SYSTEM_DATABASE_URL), every example DAG via `airflow dags test`.
# DEMO_DIR: where the demo keeps its SQLite system database, Airflow home and logs.
DEMO_DIR ?= .demo
demo: $(STAMP)
	$(PY) scripts/demo.py --demo-dir $(DEMO_DIR)

# The same example worker driven by Prefect flows (prefect-dbos) on a temporary Prefect server.
demo-prefect: $(PSTAMP)
	$(PPY) scripts/demo_prefect.py

# The same worker plus `airflow standalone` on 127.0.0.1:$AIRFLOW_PORT (default 8080); prints the URL and login.
airflow: $(STAMP)
	$(PY) scripts/local_stack.py --demo-dir $(DEMO_DIR)

# Every figure runs the plain dbos.DBOSClient and dbos-airflow side by side against a real DBOS
# worker on a fresh Postgres database (DBOS_BENCH_DATABASE_URL, default local); writes bench/results.md.
# P11 (prefect-dbos) measures in a child process on the Prefect venv, hence both venvs; P3B runs a private
# PgBouncer, hence the system packages.
bench: $(STAMP) $(PSTAMP) system-packages
	$(PY) -m bench all

# ruff check, ruff format --check and mypy: what CI runs after the tests.
lint: lint-airflow lint-prefect

lint-airflow: $(STAMP)
	$(VENV)/bin/ruff check dbos_airflow packages/dbos-orchestrator packages/dbos-testkit tests dags examples scripts bench
	$(VENV)/bin/ruff format --check dbos_airflow packages/dbos-orchestrator packages/dbos-testkit tests dags examples scripts bench
	$(VENV)/bin/mypy

# ruff with the root's settings; mypy in the Prefect venv (it needs prefect's types).
lint-prefect: $(PSTAMP)
	$(PVENV)/bin/ruff check $(PREFECT_PKG)
	$(PVENV)/bin/ruff format --check $(PREFECT_PKG)
	cd $(PREFECT_PKG) && ../../$(PVENV)/bin/mypy

clean:
	rm -rf .demo build *.egg-info $(TS_APP)/node_modules $(TS_APP)/dist
