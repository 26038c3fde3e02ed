"""DAGs the end-to-end tests run with ``dag.test()`` (a bundle of their own, see conftest).

Each DAG takes what varies through ``params`` so a test can pass ``run_conf``.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task

from dbos_airflow.contract.deferral import CHECK_IN_WORKER_SECONDS
from dbos_airflow.operators.bulk import DBOSBulkEnqueueOperator
from dbos_airflow.operators.dbos import DBOSEnqueueOperator, DBOSSendOperator
from dbos_airflow.sensors.dbos import DBOSEventSensor, DBOSWorkflowSensor

START = pendulum.datetime(2026, 1, 1, tz="UTC")
COMMON: dict[str, Any] = {
    "schedule": None,
    "start_date": START,
    "catchup": False,
    "render_template_as_native_obj": True,
}


class CrashAfterEnqueue(DBOSEnqueueOperator):
    """Stands in for a worker that dies right after enqueueing, on the first try only."""

    def execute(self, context: Any) -> str:
        workflow_id = super().execute(context)
        if context["ti"].try_number == 1:
            raise RuntimeError("simulated worker crash after enqueue")
        return workflow_id


class CrashAfterSend(DBOSSendOperator):
    """Stands in for a worker that dies right after sending, on the first try only."""

    def execute(self, context: Any) -> str:
        key = super().execute(context)
        if context["ti"].try_number == 1:
            raise RuntimeError("simulated worker crash after send")
        return key


for deferrable in (False, True):
    suffix = "_deferrable" if deferrable else ""

    with DAG(f"dbos_t_pipeline{suffix}", **COMMON) as pipeline:
        enqueue = DBOSEnqueueOperator(
            task_id="enqueue", workflow_name="wf_event_recv", queue_name="q", workflow_args=["approvals"]
        )
        waiting = DBOSEventSensor(
            task_id="waiting",
            workflow_id=enqueue.output,
            key="status",
            expected_value="waiting",
            deferrable=deferrable,
            poke_interval=0.5,
            timeout=60,
        )
        approve = DBOSSendOperator(task_id="approve", destination_id=enqueue.output, message="ok", topic="approvals")
        finished = DBOSWorkflowSensor(
            task_id="finished", workflow_id=enqueue.output, deferrable=deferrable, poke_interval=0.5, timeout=60
        )

        @task
        def downstream(result: str) -> str:
            assert result == "got:ok", result
            return result.upper()

        enqueue >> waiting >> approve >> finished
        downstream(finished.output)

    with DAG(f"dbos_t_run{suffix}", params={"workflow_name": "wf_double", "args": [1], "timeout": None}, **COMMON):
        DBOSEnqueueOperator(
            task_id="run",
            workflow_name="{{ params.workflow_name }}",
            queue_name="q",
            workflow_args="{{ params.args }}",
            wait_for_completion=True,
            deferrable=deferrable,
            poll_interval=0.2,
            timeout=3,
        )

    with DAG(f"dbos_t_sensors{suffix}", params={"workflow_id": "x", "key": "k"}, **COMMON):
        DBOSWorkflowSensor(
            task_id="workflow",
            workflow_id="{{ params.workflow_id }}",
            deferrable=deferrable,
            poke_interval=0.3,
            timeout=300,  # far above what fail-at-once and a late event take (tests/test_operators.py)
        )
        DBOSEventSensor(
            task_id="event",
            workflow_id="{{ params.workflow_id }}",
            key="{{ params.key }}",
            deferrable=deferrable,
            poke_interval=0.3,
            timeout=300,  # far above what fail-at-once and a late event take (tests/test_operators.py)
        )

for mode in ("resume", "restart"):
    with DAG(f"dbos_t_retry_{mode}", **COMMON):
        DBOSEnqueueOperator(
            task_id="flaky",
            workflow_name="wf_flaky",
            queue_name="q",
            wait_for_completion=True,
            poll_interval=0.2,
            retry_mode=mode,
            retries=1,
            retry_delay=pendulum.duration(seconds=0),
        )

with DAG("dbos_t_reattach", **COMMON):
    CrashAfterEnqueue(
        task_id="enqueue",
        workflow_name="wf_double",
        queue_name="q",
        workflow_args=[21],
        wait_for_completion=True,
        poll_interval=0.2,
        retries=1,
        retry_delay=pendulum.duration(seconds=0),
    )

with DAG("dbos_t_send_once", params={"destination": Param("x", type="string")}, **COMMON):
    CrashAfterSend(
        task_id="send",
        destination_id="{{ params.destination }}",
        message="exactly-once",
        topic="t",
        retries=1,
        retry_delay=pendulum.duration(seconds=0),
    )

with DAG("dbos_t_mapped", **COMMON):
    mapped = DBOSEnqueueOperator.partial(
        task_id="double", workflow_name="wf_double", queue_name="q", wait_for_completion=True, poll_interval=0.2
    ).expand(workflow_args=[[i] for i in range(20)])

    @task
    def collect(ids: list[str]) -> list[str]:
        return sorted(ids)

    collect(mapped.output)

# tests/test_safe_reading.py: one reading task per DAG, pointed at a given workflow (and connection).
SAFE_PARAMS: dict[str, Any] = {"workflow_id": "x", "key": "k", "expected": None, "conn": "dbos_default"}
for deferrable in (False, True):
    suffix = "_deferrable" if deferrable else ""
    with DAG(f"dbos_t_safe_workflow{suffix}", params=SAFE_PARAMS, **COMMON):
        DBOSWorkflowSensor(
            task_id="read",
            workflow_id="{{ params.workflow_id }}",
            dbos_conn_id="{{ params.conn }}",
            deferrable=deferrable,
            poke_interval=0.2,
            timeout=30,
        )
    with DAG(f"dbos_t_safe_event{suffix}", params=SAFE_PARAMS, **COMMON):
        DBOSEventSensor(
            task_id="read",
            workflow_id="{{ params.workflow_id }}",
            key="{{ params.key }}",
            expected_value="{{ params.expected }}",
            dbos_conn_id="{{ params.conn }}",
            deferrable=deferrable,
            poke_interval=0.2,
            timeout=30,
        )
    with DAG(f"dbos_t_safe_reattach{suffix}", params=SAFE_PARAMS, **COMMON):
        DBOSEnqueueOperator(
            task_id="read",
            workflow_name="wf_set_event_later",
            queue_name="q",
            workflow_id="{{ params.workflow_id }}",
            dbos_conn_id="{{ params.conn }}",
            wait_for_completion=True,
            deferrable=deferrable,
            poll_interval=0.2,
            timeout=30,
            retry_mode="fail",
        )

# tests/test_credentials.py: every path fails (or succeeds) on the connection named by params.conn.
with DAG("dbos_t_credentials", params={"conn": "dbos_default", "missing": "x"}, default_args={"retries": 0}, **COMMON):
    creds: dict[str, Any] = {"dbos_conn_id": "{{ params.conn }}", "queue_name": "q"}
    DBOSEnqueueOperator(task_id="ok", workflow_name="wf_double", workflow_args=[21], wait_for_completion=True, **creds)
    for deferrable in (False, True):
        suffix = "_deferred" if deferrable else ""
        DBOSEnqueueOperator(
            task_id=f"fails{suffix}",
            workflow_name="wf_fail",
            workflow_args=["credential sweep"],
            wait_for_completion=True,
            deferrable=deferrable,
            poll_interval=0.2,
            **creds,
        )
        DBOSEnqueueOperator(
            task_id=f"times_out{suffix}",
            workflow_name="wf_sleep",
            workflow_args=[30],
            wait_for_completion=True,
            deferrable=deferrable,
            poll_interval=0.2,
            # a deferrable task first checks in the worker; it defers (a trigger is stored) only after that
            timeout=CHECK_IN_WORKER_SECONDS + 2 if deferrable else 1,
            **creds,
        )
        DBOSEventSensor(
            task_id=f"no_such_workflow{suffix}",
            workflow_id="{{ params.missing }}",
            key="k",
            dbos_conn_id="{{ params.conn }}",
            deferrable=deferrable,
            poke_interval=0.2,
            timeout=10,
        )
    DBOSEnqueueOperator(task_id="bad_input", workflow_name="wf_double", workflow_args="[1,", **creds)
    DBOSSendOperator(
        task_id="send_nowhere", destination_id="{{ params.missing }}", message="x", dbos_conn_id="{{ params.conn }}"
    )
    DBOSBulkEnqueueOperator(task_id="bulk", workflow_name="wf_double", items=[[1], [2]], **creds)
