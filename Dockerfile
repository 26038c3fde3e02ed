# The one image of docker-compose.yml: Airflow (every component, both profiles) with this provider and the
# Celery provider, and the example DBOS workers. Everything is installed from constraints.txt, the set CI
# tests, on the Python CI runs; built once by `docker compose build` (or the first `up`), not on every start.
FROM python:3.11-slim

ENV AIRFLOW_HOME=/opt/airflow \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1

RUN useradd --create-home --uid 50000 --gid 0 airflow \
    && mkdir -p /opt/airflow /opt/dbos-airflow /app \
    && chown -R airflow:0 /opt/airflow /app

COPY constraints.txt pyproject.toml README.md /opt/dbos-airflow/
COPY dbos_airflow /opt/dbos-airflow/dbos_airflow
COPY packages /opt/dbos-airflow/packages
# The provider and the Airflow-free core it requires at the same version (packages/dbos-orchestrator), in one command.
RUN pip install --root-user-action=ignore -c /opt/dbos-airflow/constraints.txt /opt/dbos-airflow/packages/dbos-orchestrator "/opt/dbos-airflow[celery]" \
    && pip check

USER airflow
WORKDIR /opt/airflow
