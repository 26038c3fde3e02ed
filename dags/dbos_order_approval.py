"""An approval pipeline: start an order workflow, a person approves it in Airflow, use the result.

    start_order -> approve -> wait_for_order -> notify_customer

The workflow (``process_order`` in examples/order_worker.py) publishes its question as the
``approval_request`` event and blocks in ``DBOS.recv("approval")``. ``approve`` waits for the question
(deferred), asks it in Airflow's Required Actions, and sends the person's answer to the workflow once
(docs/approvals.md). "Reject" skips the rest; the workflow ends with status ``rejected``.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task

from dbos_airflow.operators.dbos import DBOSEnqueueOperator
from dbos_airflow.operators.hitl import DBOSApprovalOperator
from dbos_airflow.sensors.dbos import DBOSWorkflowSensor

EXAMPLE_ORDER = {"order_id": "B-200", "items": [{"sku": "gizmo", "qty": 2}, {"sku": "widget", "qty": 10}]}

with DAG(
    dag_id="dbos_order_approval",
    description="Enqueue an order workflow, let a person approve it in Required Actions, and use its result",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    render_template_as_native_obj=True,
    tags=["dbos", "example"],
    params={
        "order": Param(EXAMPLE_ORDER, type="object", title="Order", description="The order to process (JSON)."),
    },
) as dag:
    start = DBOSEnqueueOperator(
        task_id="start_order",
        workflow_name="process_order",
        queue_name="orders",
        workflow_args=["{{ params.order }}"],
        workflow_kwargs={"approval_timeout_seconds": 600},
    )
    approve = DBOSApprovalOperator(
        task_id="approve",
        workflow_id=start.output,
        question_event="approval_request",
        topic="approval",
        deferrable=True,
        question_timeout=300,
    )
    done = DBOSWorkflowSensor(
        task_id="wait_for_order",
        workflow_id=start.output,
        deferrable=True,
        poke_interval=1,
        timeout=300,
    )

    @task
    def notify_customer(result: dict[str, Any]) -> str:
        if result.get("status") != "shipped":
            raise ValueError(f"order {result.get('order_id')} was not shipped: {result}")
        return f"order {result['order_id']} shipped ({result['total']:.2f}), tracking {result['tracking']}"

    start >> approve >> done
    notify_customer(done.output)
