"""When an order workflow ends in ERROR, run the incident DAG.

The asset ``dbos_failed_orders`` is watched by :class:`DBOSWorkflowCompletedTrigger` in the
triggerer: every workflow of the example order application (examples/order_worker.py) that
ends in ERROR becomes one asset event, whose payload carries the workflow id, name, status,
queue, times and — ``include_output=True`` — its error message. Airflow then runs this DAG;
``triggering_asset_events`` holds the payloads (one run may receive several events queued
together).

Try it: with ``make airflow`` running, trigger ``dbos_run_workflow`` with workflow
``refund_order`` and args ``["R-1", 500]`` (over the automatic-refund limit); the refund fails,
and a ``dbos_order_incident`` run appears. Triggered by hand, the DAG takes payloads from its
``events`` param instead (``make demo`` does that with the payload the trigger produced).
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import Asset, AssetWatcher, Param, dag, task

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
        """The failed order workflows this run is about: id, workflow name, error, when."""
        payloads = [
            event.extra["payload"]
            for asset in (triggering_asset_events or {})
            for event in triggering_asset_events[asset]
        ] or list((params or {}).get("events") or [])
        if not payloads:
            raise ValueError("no failed workflow: this DAG runs on DBOS completion events (or an events param)")
        return [
            {
                "workflow_id": p["workflow_id"],
                "workflow": p.get("name"),
                "error": p.get("error"),
                "completed_at": p.get("completed_at"),
            }
            for p in payloads
        ]

    @task
    def post_incident(incidents: list[dict[str, Any]]) -> list[str]:
        """Stands in for paging someone: one line per failed workflow, with its id and its error."""
        lines = [f"INCIDENT {i['workflow']} {i['workflow_id']} failed: {i['error']}" for i in incidents]
        for line in lines:
            print(line)
        return lines

    post_incident(failed_workflows())


dbos_order_incident()
