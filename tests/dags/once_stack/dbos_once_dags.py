"""The DAG of tests/stack/test_once_stack.py, parsed by a real dag-processor (docs/events.md, "Exactly-once
work downstream").

Every CANCELLED workflow named ``once_burst`` is an asset event of ``dbos_once_burst``. Each run of
``dbos_once_downstream`` lists its DBOS completions (each once) and, per completion, enqueues one
``wf_echo`` workflow (its argument: the completion key) and sends one message (the completion key)
to the workflow ``INBOX``, both with ``id_from="completion"``.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, AssetWatcher, task

from dbos_airflow.contract.ids import triggering_completions
from dbos_airflow.operators.dbos import DBOSEnqueueOperator, DBOSSendOperator
from dbos_airflow.triggers.completed import DBOSWorkflowCompletedTrigger

INBOX = "dbos-once-inbox"

burst = Asset(
    "dbos_once_burst",
    watchers=[
        AssetWatcher(
            name="dbos_once_burst_watcher",
            trigger=DBOSWorkflowCompletedTrigger(workflow_name="once_burst", statuses=["CANCELLED"]),
        )
    ],
)


def as_message(item: dict[str, Any]) -> dict[str, Any]:
    return {"completion_key": item["completion_key"], "message": item["completion_key"]}


with DAG(
    "dbos_once_downstream",
    schedule=[burst],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=64,
):

    @task
    def completions(triggering_asset_events: Any = None) -> list[dict[str, Any]]:
        return [
            {"completion_key": p["completion_key"], "workflow_args": [p["completion_key"]]}
            for p in triggering_completions(triggering_asset_events)
        ]

    items = completions()
    DBOSEnqueueOperator.partial(
        task_id="handle", workflow_name="wf_echo", queue_name="q", id_from="completion"
    ).expand_kwargs(items)
    DBOSSendOperator.partial(task_id="notify", destination_id=INBOX, topic="once", id_from="completion").expand_kwargs(
        items.map(as_message)
    )
