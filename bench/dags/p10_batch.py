"""P10's DAGs (bench/p10_batch.py): N no-op workflows driven two ways, side by side.

* ``p10_mapped``: dynamic task mapping, one deferrable ``DBOSEnqueueOperator(wait_for_completion=True)``
  task instance per workflow (what Airflow users reach for today);
* ``p10_bulk``: one ``DBOSBulkEnqueueOperator(wait_for_completion=True, deferrable=True)`` task.

Both get their items from a first task reading ``params["n"]``, so both runs have the same shape
upstream; the workflows are bench/app.py's ``noop`` on queue ``bench``.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, get_current_context, task

from dbos_airflow.operators.bulk import DBOSBulkEnqueueOperator
from dbos_airflow.operators.dbos import DBOSEnqueueOperator

CONN_ID = "dbos_bench"
COMMON: dict[str, Any] = {
    "schedule": None,
    "start_date": pendulum.datetime(2026, 1, 1, tz="UTC"),
    "catchup": False,
    "params": {"n": 1000},
    "max_active_tasks": 2048,  # the mapped run is limited by the executor, not by the DAG
}


@task
def make_items() -> list[list[Any]]:
    """``n`` items without arguments (the no-op workflow takes none)."""
    return [[] for _ in range(int(get_current_context()["params"]["n"]))]


with DAG("p10_mapped", **COMMON):
    DBOSEnqueueOperator.partial(
        task_id="wf",
        workflow_name="noop",
        queue_name="bench",
        wait_for_completion=True,
        deferrable=True,
        dbos_conn_id=CONN_ID,
    ).expand(workflow_args=make_items())

with DAG("p10_bulk", **COMMON):
    DBOSBulkEnqueueOperator(
        task_id="bulk",
        workflow_name="noop",
        queue_name="bench",
        items=make_items(),
        wait_for_completion=True,
        deferrable=True,
        dbos_conn_id=CONN_ID,
    )
