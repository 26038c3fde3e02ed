"""An approval pipeline: start an order workflow, wait for it to ask for approval, approve it, use the result.

    start_order -> wait_for_approval_request -> approve -> wait_for_order -> notify_customer

The workflow (``process_order`` in examples/order_worker.py) publishes its progress as the ``status``
event and blocks in ``DBOS.recv("approval")`` until this DAG sends the approval message.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task

from dbos_airflow.operators.dbos import DBOSEnqueueOperator, DBOSSendOperator
from dbos_airflow.sensors.dbos import DBOSEventSensor, DBOSWorkflowSensor

EXAMPLE_ORDER = {"order_id": "B-200", "items": [{"sku": "gizmo", "qty": 2}, {"sku": "widget", "qty": 10}]}

with DAG(
    dag_id="dbos_order_approval",
    description="Enqueue an order workflow, approve it when it asks, and use its result",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    render_template_as_native_obj=True,
    tags=["dbos", "example"],
    params={
        "order": Param(EXAMPLE_ORDER, type="object", title="Order", description="The order to process (JSON)."),
        "approver": Param(
            "airflow", type="string", minLength=1, title="Approver", description="Name sent in the approval message."
        ),
    },
) as dag:
    start = DBOSEnqueueOperator(
        task_id="start_order",
        workflow_name="process_order",
        queue_name="orders",
        workflow_args=["{{ params.order }}"],
        workflow_kwargs={"approval_timeout_seconds": 600},
    )
    asked = DBOSEventSensor(
        task_id="wait_for_approval_request",
        workflow_id=start.output,
        key="status",
        expected_value="awaiting_approval",
        deferrable=True,
        poke_interval=1,
        timeout=300,
    )
    approve = DBOSSendOperator(
        task_id="approve",
        destination_id=start.output,
        topic="approval",
        message={"approved": True, "by": "{{ params.approver }}"},
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

    start >> asked >> approve >> done
    notify_customer(done.output)
