"""Schedules as code and retention for the example application (examples/order_worker.py).

Every day this DAG makes DBOS hold exactly the schedules listed here (new ones created, changed ones
updated, the ``orders-`` schedules no longer listed deleted; paused ones stay paused), logs their next
runs, lists the queues with their backlog, and deletes the workflows that ended more than 30 days ago
in pages of 1,000 (the count lands in XCom). docs/operations.md explains each step.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from dbos_airflow.operators.queues import DBOSListQueuesOperator
from dbos_airflow.operators.retention import DBOSDeleteWorkflowsOperator
from dbos_airflow.operators.schedules import DBOSApplySchedulesOperator

SCHEDULES = [
    {
        "schedule_name": "orders-nightly-report",
        "workflow_name": "nightly_report",
        "schedule": "0 3 * * *",
        "cron_timezone": "Europe/Paris",
        "queue_name": "orders",
    },
]

with DAG(
    "dbos_schedules_and_retention",
    schedule="@daily",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["dbos", "example"],
    doc_md=__doc__,
) as dag:
    schedules = DBOSApplySchedulesOperator(task_id="apply_schedules", schedules=SCHEDULES, prune_prefix="orders-")
    queues = DBOSListQueuesOperator(task_id="queues")
    retention = DBOSDeleteWorkflowsOperator(task_id="delete_old_workflows", older_than=timedelta(days=30))
    schedules >> queues >> retention
