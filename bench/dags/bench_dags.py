"""DAGs of bench/p6_dag.py: a no-op PythonOperator (the Airflow floor) and enqueue+wait of a no-op workflow."""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG

from dbos_airflow.operators.dbos import DBOSEnqueueOperator

COMMON = {"schedule": None, "start_date": pendulum.datetime(2026, 1, 1, tz="UTC"), "catchup": False}

with DAG("bench_floor", **COMMON) as bench_floor:
    PythonOperator(task_id="noop", python_callable=lambda: None)

with DAG("bench_dbos_sync", **COMMON) as bench_dbos_sync:
    DBOSEnqueueOperator(
        task_id="noop",
        workflow_name="noop",
        queue_name="bench",
        wait_for_completion=True,
        deferrable=False,
        dbos_conn_id="dbos_bench",
    )

with DAG("bench_dbos_deferrable", **COMMON) as bench_dbos_deferrable:
    DBOSEnqueueOperator(
        task_id="noop",
        workflow_name="noop",
        queue_name="bench",
        wait_for_completion=True,
        deferrable=True,
        dbos_conn_id="dbos_bench",
    )
