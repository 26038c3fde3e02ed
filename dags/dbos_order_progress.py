"""Progress in the task log: a DBOS workflow reports progress on a stream while Airflow waits for it.

``pick_orders`` (examples/order_worker.py) writes one value per picked order to its stream
``progress`` (``DBOS.write_stream``) and closes it. The enqueue task logs each value while it waits
(``stream_to_log``); the stream sensor after it reads the closed stream and returns its last value.
See docs/streams.md.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from dbos_airflow.operators.dbos import DBOSEnqueueOperator
from dbos_airflow.sensors.streams import DBOSStreamSensor

EXAMPLE_ORDERS = [
    {"order_id": "P-1", "items": [{"sku": "widget", "qty": 3}]},
    {"order_id": "P-2", "items": [{"sku": "gadget", "qty": 1}]},
    {"order_id": "P-3", "items": [{"sku": "gizmo", "qty": 2}]},
    {"order_id": "P-4", "items": [{"sku": "widget", "qty": 5}]},
]

with DAG(
    dag_id="dbos_order_progress",
    description="A DBOS workflow's progress stream in the Airflow task log",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["dbos", "example"],
    render_template_as_native_obj=True,
    params={"orders": Param(EXAMPLE_ORDERS, type="array", items={"type": "object"}, minItems=1, title="Orders")},
) as dag:
    pick = DBOSEnqueueOperator(
        task_id="pick_orders",
        workflow_name="pick_orders",
        queue_name="orders",
        workflow_args=["{{ params.orders }}"],
        wait_for_completion=True,
        poll_interval=0.5,
        stream_to_log="progress",
    )
    progress = DBOSStreamSensor(
        task_id="progress",
        workflow_id="{{ ti.xcom_pull('pick_orders') }}",
        key="progress",
        return_values="last",
        poke_interval=0.5,
    )
    pick >> progress
