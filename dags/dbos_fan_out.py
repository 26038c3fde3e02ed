"""Fan-out: one DBOS workflow per order (dynamic task mapping), then one task that adds up their results.

Each mapped task enqueues the class-based workflow ``Warehouse.pack`` of examples/order_worker.py
with its own derived workflow id (``dag:run:task:map_index``) and waits for it.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task

from dbos_airflow.operators.dbos import DBOSEnqueueOperator

EXAMPLE_ORDERS = [
    {"order_id": "C-1", "items": [{"sku": "widget", "qty": 12}]},
    {"order_id": "C-2", "items": [{"sku": "gadget", "qty": 3}, {"sku": "gizmo", "qty": 1}]},
    {"order_id": "C-3", "items": [{"sku": "gizmo", "qty": 25}]},
]

with DAG(
    dag_id="dbos_fan_out",
    description="Pack many orders in parallel DBOS workflows and aggregate the results",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["dbos", "example"],
    params={
        "orders": Param(
            EXAMPLE_ORDERS,
            type="array",
            items={"type": "object"},
            minItems=1,
            title="Orders",
            description="One Warehouse.pack workflow runs per order.",
        ),
    },
) as dag:

    @task
    def workflow_args(params: dict[str, Any] | None = None) -> list[list[dict[str, Any]]]:
        return [[order] for order in (params or {})["orders"]]

    packed = DBOSEnqueueOperator.partial(
        task_id="pack_order",
        workflow_name="Warehouse.pack",
        workflow_class_name="Warehouse",
        queue_name="orders",
        wait_for_completion=True,
        poll_interval=0.5,
        timeout=300,
    ).expand(workflow_args=workflow_args())

    @task
    def total_parcels(ti: Any = None) -> dict[str, int]:
        results = ti.xcom_pull(task_ids="pack_order", key="result")
        return {
            "orders": len(results),
            "units": sum(r["units"] for r in results),
            "parcels": sum(r["parcels"] for r in results),
        }

    packed >> total_parcels()
