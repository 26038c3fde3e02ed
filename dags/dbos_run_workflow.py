"""Run any DBOS workflow from the Airflow UI: "Trigger" shows a form for its name, queue and arguments.

The defaults run the example application's ``quote_order`` workflow (examples/order_worker.py) on
the ``orders`` queue and wait for its result, which lands in XCom under the key ``result``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from dbos_airflow.operators.dbos import DBOSEnqueueOperator

EXAMPLE_ORDER = {"order_id": "A-100", "items": [{"sku": "widget", "qty": 4}, {"sku": "gadget", "qty": 1}]}
ANY_JSON = ["object", "array", "string", "number", "integer", "boolean", "null"]


with DAG(
    dag_id="dbos_run_workflow",
    description="Enqueue a DBOS workflow with the arguments typed into the trigger form",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    render_template_as_native_obj=True,
    tags=["dbos", "example"],
    params={
        "workflow_name": Param(
            "quote_order",
            type="string",
            minLength=1,
            title="Workflow name",
            description="Registered name of the DBOS workflow; Class.method for a class-based workflow.",
        ),
        "queue_name": Param(
            "orders", type="string", minLength=1, title="Queue",
            description="DBOS queue a worker of the application listens to.",
        ),
        "workflow_class_name": Param(
            None, type=["null", "string"], title="Workflow class (optional)",
            description="Class of a class-based workflow (@DBOS.dbos_class), e.g. Warehouse for Warehouse.pack.",
        ),
        "args": Param(
            [EXAMPLE_ORDER], type="array", items={"type": ANY_JSON}, title="Positional arguments",
            description="JSON array passed to the workflow as *args.",
        ),
        "kwargs": Param(
            {}, type="object", title="Keyword arguments", description="JSON object passed to the workflow as **kwargs.",
        ),
        "workflow_id": Param(
            None, type=["null", "string"], title="Workflow id (optional)",
            description="Leave empty to derive one from the DAG run and task (the same on every retry).",
        ),
        "wait": Param(
            True, type="boolean", title="Wait for the result",
            description="Wait until the workflow ends; the task fails if the workflow fails.",
        ),
        "timeout": Param(
            300, type=["null", "integer"], minimum=1, title="Timeout (seconds)",
            description="How long to wait before the task fails and the workflow is cancelled; empty: no limit.",
        ),
    },
) as dag:
    DBOSEnqueueOperator(
        task_id="run_workflow",
        workflow_name="{{ params.workflow_name }}",
        queue_name="{{ params.queue_name }}",
        workflow_class_name="{{ params.workflow_class_name }}",
        workflow_args="{{ params.args }}",
        workflow_kwargs="{{ params.kwargs }}",
        workflow_id="{{ params.workflow_id }}",
        wait_for_completion="{{ params.wait }}",  # rendered to a bool
        timeout="{{ params.timeout }}",  # rendered to an int or None
        deferrable=True,
    )
