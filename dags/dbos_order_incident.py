"""When an order workflow ends in ERROR, open one incident for it — once, however often Airflow delivers it.

The asset ``dbos_failed_orders`` is watched by :class:`DBOSWorkflowCompletedTrigger` in the
triggerer: every workflow of the example order application (examples/order_worker.py) that
ends in ERROR becomes one asset event, whose payload carries the workflow id, name, status,
queue, times, its ``completion_key`` and — ``include_output=True`` — its error message. Airflow
then runs this DAG; ``triggering_asset_events`` holds the payloads (one run may receive several
events queued together).

Per failed workflow the DAG enqueues one ``open_incident`` DBOS workflow with
``id_from="completion"``: its id is derived from the completion (``dbos_order_incident:open_incident:
<completion_key>``), not from the DAG run. The watcher delivers at least once — after a triggerer
crash the events of about its last second come again, possibly into another DAG run — and such a
duplicate re-attaches to the incident already opened instead of opening a second one
(docs/events.md, "Exactly-once work downstream").

Try it: with ``make airflow`` running, trigger ``dbos_run_workflow`` with workflow
``refund_order`` and args ``["R-1", 500]`` (over the automatic-refund limit); the refund fails,
and a ``dbos_order_incident`` run appears. Triggered by hand, the DAG takes payloads from its
``events`` param instead (``make demo`` does that with the payload the trigger produced); such a
run has no triggering completion, so its incidents get ids from the run (``id_from="run"``).
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import Asset, AssetWatcher, Param, dag, task

from dbos_airflow.contract.ids import triggering_completions
from dbos_airflow.operators.dbos import DBOSEnqueueOperator
from dbos_airflow.triggers.completed import DBOSWorkflowCompletedTrigger

ORDER_WORKFLOWS = ["quote_order", "process_order", "refund_order", "Warehouse.pack"]

failed_orders = Asset(
    "dbos_failed_orders",
    watchers=[
        AssetWatcher(
            name="dbos_failed_order_workflows",
            trigger=DBOSWorkflowCompletedTrigger(
                workflow_name=ORDER_WORKFLOWS, queue_name="orders", statuses=["ERROR"], include_output=True
            ),
        )
    ],
)


def open_incident_kwargs(incident: dict[str, Any]) -> dict[str, Any]:
    """One ``open_incident`` per failed workflow, its id derived from the completion when there is one."""
    args = [incident["workflow_id"], incident["workflow"], incident["error"]]
    if incident["completion_key"] is None:  # triggered by hand: no completion to derive from
        return {"workflow_args": args, "id_from": "run"}
    return {"workflow_args": args, "id_from": "completion", "completion_key": incident["completion_key"]}


@dag(
    dag_id="dbos_order_incident",
    schedule=[failed_orders],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    render_template_as_native_obj=True,
    params={
        "events": Param(
            [],
            type="array",
            title="Completion payloads",
            description="Used when the DAG is triggered by hand: payloads as the DBOS completion watcher makes them",
        )
    },
    tags=["dbos", "example"],
)
def dbos_order_incident() -> None:
    @task
    def failed_workflows(triggering_asset_events: Any = None, params: Any = None) -> list[dict[str, Any]]:
        """The failed order workflows this run is about, each once: id, workflow name, error, when."""
        triggered = triggering_completions(triggering_asset_events)
        by_hand = [] if triggered else list((params or {}).get("events") or [])
        if not (triggered or by_hand):
            raise ValueError("no failed workflow: this DAG runs on DBOS completion events (or an events param)")
        return [
            {
                "workflow_id": p["workflow_id"],
                "workflow": p.get("name"),
                "error": p.get("error"),
                "completed_at": p.get("completed_at"),
                "completion_key": p["completion_key"] if triggered else None,
            }
            for p in triggered or by_hand
        ]

    @task
    def post_incident(incidents: list[dict[str, Any]], opened: list[str]) -> list[str]:
        """One line per failed workflow, with its id, its error and the DBOS workflow that opened its incident."""
        lines = [
            f"INCIDENT {i['workflow']} {i['workflow_id']} failed: {i['error']} (opened by {o})"
            for i, o in zip(incidents, opened, strict=True)
        ]
        for line in lines:
            print(line)
        return lines

    incidents = failed_workflows()
    opened = DBOSEnqueueOperator.partial(
        task_id="open_incident",
        workflow_name="open_incident",
        queue_name="orders",
        wait_for_completion=True,
        timeout=300,
    ).expand_kwargs(incidents.map(open_incident_kwargs))
    post_incident(incidents, opened.output)


dbos_order_incident()
