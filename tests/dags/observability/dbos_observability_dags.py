"""DAGs of tests/integration/test_tracing.py and test_lineage.py (run with ``dag.test()``; connection ``dbos_otel``)."""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, Asset

from dbos_airflow.operators.bulk import DBOSBulkEnqueueOperator
from dbos_airflow.operators.dbos import DBOSEnqueueOperator
from dbos_airflow.operators.manage import DBOSForkWorkflowOperator

COMMON: dict[str, Any] = {
    "schedule": None,
    "start_date": pendulum.datetime(2026, 1, 1, tz="UTC"),
    "catchup": False,
    "render_template_as_native_obj": True,
}
CONN = "dbos_otel"

with DAG("dbos_t_trace_sync", **COMMON) as trace_sync:
    DBOSEnqueueOperator(
        task_id="enqueue",
        workflow_name="wf_double",
        queue_name="q",
        workflow_args=[21],
        dbos_conn_id=CONN,
        wait_for_completion=True,
    )

with DAG("dbos_t_trace_deferred", **COMMON) as trace_deferred:
    DBOSEnqueueOperator(
        task_id="enqueue",
        workflow_name="wf_double",
        queue_name="q",
        workflow_args=[4],
        deferrable=True,
        wait_for_completion=True,
        dbos_conn_id=CONN,
    )

with DAG("dbos_t_trace_bulk", **COMMON) as trace_bulk:
    DBOSBulkEnqueueOperator(
        task_id="bulk",
        workflow_name="wf_double",
        queue_name="q",
        items=[[1], [2], [3]],
        dbos_conn_id=CONN,
        wait_for_completion=True,
    )

with DAG("dbos_t_trace_fork", params={"source": ""}, **COMMON) as trace_fork:
    DBOSForkWorkflowOperator(
        task_id="fork",
        workflow_id="{{ params.source }}",
        start_step=1,
        queue_name="q",
        dbos_conn_id=CONN,
        wait_for_completion=True,
    )

# OpenLineage (tests/integration/test_lineage.py): the task's datasets come from inlets/outlets.
with DAG("dbos_t_lineage", **COMMON) as lineage:
    DBOSEnqueueOperator(
        task_id="enqueue",
        workflow_name="wf_double",
        queue_name="q",
        workflow_args=[5],
        wait_for_completion=True,
        inlets=[Asset("file:///lineage/in.csv")],
        outlets=[Asset("file:///lineage/out.csv")],
        dbos_conn_id=CONN,
    )
    DBOSBulkEnqueueOperator(
        task_id="bulk",
        workflow_name="wf_double",
        queue_name="q",
        items=[[i] for i in range(12)],
        wait_for_completion=True,
        outlets=[Asset("file:///lineage/batch.csv")],
        dbos_conn_id=CONN,
    )
