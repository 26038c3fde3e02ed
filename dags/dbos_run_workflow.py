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

DOC_MD = """
### Run a DBOS workflow

**Trigger** (the ▶ button) opens a form; its values become one DBOS workflow, enqueued on a queue of
your DBOS application through its system database (the `dbos_default` connection). The workflow itself
runs in your application's DBOS workers, not in Airflow: one of them must be running and listening to the
queue, or the run waits until its timeout.

| Field | Meaning |
|---|---|
| Workflow name | The registered name: the function's name, or `Class.method` for a class-based workflow |
| Queue | A DBOS queue your application registers |
| Workflow class (optional) | Only for class-based workflows (`@DBOS.dbos_class`) |
| Positional arguments | A JSON array, passed as `*args` (DBOS portable JSON) |
| Keyword arguments | A JSON object, passed as `**kwargs` |
| Workflow id (optional) | Empty: derived from this run and task, so a retry re-attaches to the same workflow |
| Wait for the result | Wait in the triggerer until the workflow ends; the task fails if the workflow fails |
| Timeout (seconds) | How long to wait; then the task fails and the workflow is cancelled. Empty: no limit |

The result is in the `run_workflow` task's XCom under `result` (its return value is the workflow id).
Marking the waiting task failed or clearing it cancels the workflow; a retry after the workflow failed
resumes it from its last completed step.

The defaults run the example application's `quote_order` (examples/order_worker.py, started by
`make airflow` and by docker-compose.yml).
"""


with DAG(
    dag_id="dbos_run_workflow",
    description="Enqueue a DBOS workflow with the arguments typed into the trigger form",
    doc_md=DOC_MD,
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
            "orders",
            type="string",
            minLength=1,
            title="Queue",
            description="DBOS queue a worker of the application listens to.",
        ),
        "workflow_class_name": Param(
            None,
            type=["null", "string"],
            title="Workflow class (optional)",
            description="Class of a class-based workflow (@DBOS.dbos_class), e.g. Warehouse for Warehouse.pack.",
        ),
        "args": Param(
            [EXAMPLE_ORDER],
            type="array",
            items={"type": ANY_JSON},
            title="Positional arguments",
            description="JSON array passed to the workflow as *args.",
        ),
        "kwargs": Param(
            {},
            type="object",
            title="Keyword arguments",
            description="JSON object passed to the workflow as **kwargs.",
        ),
        "workflow_id": Param(
            None,
            type=["null", "string"],
            title="Workflow id (optional)",
            description="Leave empty to derive one from the DAG run and task (the same on every retry).",
        ),
        "wait": Param(
            True,
            type="boolean",
            title="Wait for the result",
            description="Wait until the workflow ends; the task fails if the workflow fails.",
        ),
        "timeout": Param(
            300,
            type=["null", "integer"],
            minimum=1,
            title="Timeout (seconds)",
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
