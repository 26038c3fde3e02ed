"""DAGs of the DBOS workflow view's browser tests (tests/test_ui_workflow_view.py)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from dbos_airflow.operators.dbos import DBOSEnqueueOperator

with DAG("dbos_ui_steps", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    DBOSEnqueueOperator(
        task_id="steps",
        workflow_name="wf_steps",
        queue_name="q",
        workflow_args=["{{ run_id }}"],
        wait_for_completion=True,
        poll_interval=0.2,
        timeout=60,
    )

with DAG("dbos_ui_wait", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    DBOSEnqueueOperator(
        task_id="wait",
        workflow_name="wf_sleep",
        queue_name="q",
        workflow_args=[600],
        wait_for_completion=True,
        poll_interval=0.2,
        timeout=120,
    )

with DAG("dbos_ui_private", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    # Never run: the permission test gives its bundle to a team some users are not in.
    DBOSEnqueueOperator(task_id="private", workflow_name="wf_noop", queue_name="q")
