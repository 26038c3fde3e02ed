"""DAGs of tests/test_batch_waits.py (run with ``dag.test()``; items and ids come through ``params``)."""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG

from dbos_airflow.operators.bulk import DBOSBulkEnqueueOperator
from dbos_airflow.sensors.dbos import DBOSWorkflowsSensor

START = pendulum.datetime(2026, 1, 1, tz="UTC")
COMMON: dict[str, Any] = {
    "schedule": None,
    "start_date": START,
    "catchup": False,
    "render_template_as_native_obj": True,
}

for deferrable in (False, True):
    suffix = "_deferrable" if deferrable else ""
    with DAG(f"dbos_t_batch{suffix}", params={"batch": [[1]]}, **COMMON) as batch_dag:
        DBOSBulkEnqueueOperator(
            task_id="bulk",
            workflow_name="wf_item",
            queue_name="q",
            items="{{ params.batch }}",
            wait_for_completion=True,
            deferrable=deferrable,
            poll_interval=0.5,
        )
    globals()[f"batch_dag{suffix}"] = batch_dag

for mode in ("poke", "reschedule", "deferrable"):
    with DAG(f"dbos_t_many_{mode}", params={"ids": ["x"]}, **COMMON) as many:
        DBOSWorkflowsSensor(
            task_id="many",
            workflow_ids="{{ params.ids }}",
            mode="reschedule" if mode == "reschedule" else "poke",
            deferrable=mode == "deferrable",
            poke_interval=0.5,
            timeout=120,
        )
    globals()[f"many_{mode}"] = many
