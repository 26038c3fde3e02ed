"""DAGs of the access tests (tests/browser/test_ui_access.py): one per team, each enqueueing a workflow
on a queue no worker polls, so it stays ENQUEUED (cancellable) for the whole module."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from dbos_airflow.operators.dbos import DBOSEnqueueOperator

for team in ("alpha", "beta"):
    with DAG(f"dbos_{team}_wf", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
        DBOSEnqueueOperator(task_id="run", workflow_name="wf_double", queue_name="q_access_nobody", workflow_args=[1])
