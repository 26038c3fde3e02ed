"""DAGs driving the TypeScript example app (examples/ts_worker) through ``dag.test()``.

tests/test_typescript_app.py runs them against a TypeScript DBOS worker on its own system
database, reached by the connection ``dbos_ts`` (README, "Applications in other languages").
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, task

from dbos_airflow.operators.dbos import DBOSEnqueueOperator, DBOSSendOperator
from dbos_airflow.sensors.dbos import DBOSEventSensor, DBOSWorkflowSensor

CONN = "dbos_ts"
QUEUE = "ts_q"  # examples/ts_worker/src/main.ts
ORDER = {"order_id": "T-1", "items": [{"sku": "widget", "qty": 3, "price": 2.5}, {"sku": "gear", "qty": 1, "price": 4}]}
SLEEP_SECONDS = 8  # longer than the in-worker check (CHECK_IN_WORKER_SECONDS), so the wait really defers
COMMON: dict[str, Any] = {
    "schedule": None,
    "start_date": pendulum.datetime(2026, 1, 1, tz="UTC"),
    "catchup": False,
    "default_args": {"retries": 0},
}


def run(task_id: str, workflow_name: str, **kwargs: Any) -> DBOSEnqueueOperator:
    return DBOSEnqueueOperator(
        task_id=task_id,
        workflow_name=workflow_name,
        queue_name=QUEUE,
        wait_for_completion=True,
        poll_interval=0.2,
        dbos_conn_id=CONN,
        **kwargs,
    )


with DAG("dbos_ts_quote", **COMMON):
    quote = run("quote", "ts_quote", workflow_args=[ORDER], timeout=60)

    @task
    def invoice(ti: Any = None) -> str:
        result = ti.xcom_pull(task_ids="quote", key="result")  # the TypeScript workflow's output
        return f"{result['order_id']}: {result['subtotal']:.2f} ({result['lang']})"

    quote >> invoice()

with DAG("dbos_ts_sleep_deferrable", **COMMON):
    run("sleep", "ts_sleep", workflow_args=[SLEEP_SECONDS], deferrable=True, timeout=120)

with DAG("dbos_ts_approval", **COMMON):
    start = DBOSEnqueueOperator(
        task_id="start", workflow_name="ts_approval", queue_name=QUEUE, workflow_args=["approval"], dbos_conn_id=CONN
    )
    asked = DBOSEventSensor(
        task_id="asked",
        workflow_id=start.output,
        key="status",
        expected_value="waiting",
        poke_interval=0.3,
        timeout=60,
        dbos_conn_id=CONN,
    )
    approve = DBOSSendOperator(
        task_id="approve",
        destination_id=start.output,
        topic="approval",
        message={"approved": True, "by": "airflow"},
        dbos_conn_id=CONN,
    )
    done = DBOSWorkflowSensor(
        task_id="done", workflow_id=start.output, poke_interval=0.3, timeout=60, dbos_conn_id=CONN
    )
    start >> asked >> approve >> done

with DAG("dbos_ts_reject", **COMMON):
    run("reject", "ts_reject", workflow_args=["out of stock: widget"], timeout=60)

with DAG("dbos_ts_kwargs", **COMMON):
    run("echo", "ts_echo", workflow_args=[1, "a"], workflow_kwargs={"k": 2}, timeout=60)

with DAG("dbos_ts_pickle", **COMMON):
    run("pickled", "ts_double", workflow_args=[21], serialization="pickle", timeout=60)

with DAG("dbos_ts_class", **COMMON):
    # Registered in TypeScript as name "Billing.refund", class "Billing": what the provider enqueues.
    run("refund", "refund", workflow_class_name="Billing", workflow_args=[5], timeout=60)
    # Registered as name "charge", class "Billing": the provider's "Billing.charge" finds no function.
    run("charge", "charge", workflow_class_name="Billing", workflow_args=[5], timeout=4)
