"""DAGs of tests/test_bulk.py (run with ``dag.test()``; items come through ``params``)."""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG

from dbos_airflow.operators.bulk import DBOSBulkEnqueueOperator

START = pendulum.datetime(2026, 1, 1, tz="UTC")
COMMON: dict[str, Any] = {
    "schedule": None,
    "start_date": START,
    "catchup": False,
    "render_template_as_native_obj": True,
}


class CrashAfterBulkEnqueue(DBOSBulkEnqueueOperator):
    """Stands in for a worker that dies right after the bulk enqueue committed, on the first try only."""

    def execute(self, context: Any) -> list[str]:
        ids = super().execute(context)
        if context["ti"].try_number == 1:
            raise RuntimeError("simulated worker crash after bulk enqueue")
        return ids


with DAG("dbos_t_bulk_retry", params={"batch": [[1], [2]]}, **COMMON) as bulk_retry:
    CrashAfterBulkEnqueue(
        task_id="bulk",
        workflow_name="wf_double",
        queue_name="q",
        items="{{ params.batch }}",
        retries=1,
        retry_delay=pendulum.duration(seconds=0),
    )

with DAG("dbos_t_bulk_bad", params={"batch": [[1], [2]]}, **COMMON) as bulk_bad:
    DBOSBulkEnqueueOperator(
        task_id="bulk",
        workflow_name="wf_double",
        queue_name="q",
        items="{{ params.batch }}",
        retries=2,
        retry_delay=pendulum.duration(seconds=0),
    )
