"""DAGs of tests/test_manage.py (run with ``dag.test()``; what varies comes through ``params``)."""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG

from dbos_airflow.operators.bulk import DBOSBulkEnqueueOperator
from dbos_airflow.operators.manage import (
    DBOSCancelWorkflowOperator,
    DBOSForkWorkflowOperator,
    DBOSResumeWorkflowOperator,
)
from dbos_airflow.sensors.dbos import DBOSWorkflowSensor

START = pendulum.datetime(2026, 1, 1, tz="UTC")
COMMON: dict[str, Any] = {
    "schedule": None,
    "start_date": START,
    "catchup": False,
    "render_template_as_native_obj": True,
}
UNPOLLED = "q_manage_nobody"  # no worker polls it: what is enqueued there waits until cancelled


class CrashAfterFork(DBOSForkWorkflowOperator):
    """Stands in for a worker that dies right after forking, on the first try only."""

    def execute(self, context: Any) -> str:
        workflow_id = super().execute(context)
        if context["ti"].try_number == 1:
            raise RuntimeError("simulated worker crash after fork")
        return workflow_id


for deferrable in (False, True):
    suffix = "_deferrable" if deferrable else ""
    with DAG(f"dbos_t_fork_retry{suffix}", params={"original": "x", "step": 1}, **COMMON):
        CrashAfterFork(
            task_id="fork",
            workflow_id="{{ params.original }}",
            start_step="{{ params.step }}",
            queue_name="q",
            wait_for_completion=True,
            deferrable=deferrable,
            poll_interval=0.2,
            timeout=60,
            retries=1,
            retry_delay=pendulum.duration(seconds=0),
        )

with DAG("dbos_t_cancel_resume", params={"batch": [[1], [2], [3]]}, **COMMON):
    bulk = DBOSBulkEnqueueOperator(
        task_id="bulk", workflow_name="wf_double", queue_name=UNPOLLED, items="{{ params.batch }}"
    )
    cancel = DBOSCancelWorkflowOperator(task_id="cancel", workflow_id=bulk.output)
    cancel_again = DBOSCancelWorkflowOperator(task_id="cancel_again", workflow_id="{{ ti.xcom_pull('bulk') }}")
    resume = DBOSResumeWorkflowOperator(task_id="resume", workflow_id=bulk.output, queue_name="q")
    resume_again = DBOSResumeWorkflowOperator(task_id="resume_again", workflow_id=bulk.output, queue_name="q")
    done = DBOSWorkflowSensor.partial(task_id="done", poke_interval=0.3, timeout=60).expand(workflow_id=bulk.output)
    bulk >> cancel >> cancel_again >> resume >> resume_again >> done

with DAG("dbos_t_cancel_mapped", params={"batch": [[1], [2]]}, **COMMON):
    bulk = DBOSBulkEnqueueOperator(
        task_id="bulk", workflow_name="wf_double", queue_name=UNPOLLED, items="{{ params.batch }}"
    )
    DBOSCancelWorkflowOperator.partial(task_id="cancel").expand(workflow_id=bulk.output)

with DAG("dbos_t_cancel_missing", params={"ids": ["a"]}, **COMMON):
    DBOSCancelWorkflowOperator(task_id="cancel", workflow_id="{{ params.ids }}")
