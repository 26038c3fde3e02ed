"""The DAGs of tests/stack/test_stream_restart.py: a deferrable stream sensor and a deferrable approval
under a real triggerer.

``conf``: ``workflow_id``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from dbos_airflow.operators.hitl import DBOSApprovalOperator
from dbos_airflow.sensors.streams import DBOSStreamSensor

COMMON = {
    "schedule": None,
    "start_date": pendulum.datetime(2026, 1, 1, tz="UTC"),
    "catchup": False,
    "params": {"workflow_id": Param("", type="string")},
}

with DAG("dbos_t_stream_stack", **COMMON):
    DBOSStreamSensor(
        task_id="stream",
        workflow_id="{{ params.workflow_id }}",
        key="progress",
        deferrable=True,
        return_values="last",
    )

with DAG("dbos_t_approval_stack", **COMMON):
    DBOSApprovalOperator(
        task_id="approve",
        workflow_id="{{ params.workflow_id }}",
        question_event="approval_request",
        topic="approval",
        deferrable=True,  # waits for the question in the triggerer
    )
