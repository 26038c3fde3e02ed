"""DAGs of tests/stack/test_event_stack.py, parsed by a real dag-processor (not by ``dag.test()``).

Two watched assets: every CANCELLED workflow named ``stack_burst``, and every ``wf_fail`` or
``wf_double`` that ends in ERROR (with its error message). Each consumer DAG returns what its
run received through ``triggering_asset_events``.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, AssetWatcher, task

from dbos_airflow.triggers.completed import DBOSWorkflowCompletedTrigger

START = pendulum.datetime(2026, 1, 1, tz="UTC")

burst = Asset(
    "dbos_t_burst",
    watchers=[
        AssetWatcher(
            name="dbos_t_burst_watcher",
            trigger=DBOSWorkflowCompletedTrigger(workflow_name="stack_burst", statuses=["CANCELLED"]),
        )
    ],
)
failures = Asset(
    "dbos_t_failures",
    watchers=[
        AssetWatcher(
            name="dbos_t_failures_watcher",
            trigger=DBOSWorkflowCompletedTrigger(
                workflow_name=["wf_fail", "wf_double"], statuses=["ERROR"], include_output=True
            ),
        )
    ],
)


def payloads(triggering_asset_events: Any) -> list[dict[str, Any]]:
    return [event.extra["payload"] for asset in triggering_asset_events for event in triggering_asset_events[asset]]


with DAG("dbos_t_on_burst", schedule=[burst], start_date=START, catchup=False, max_active_runs=64):

    @task
    def received(triggering_asset_events: Any = None) -> list[str]:
        return [p["workflow_id"] for p in payloads(triggering_asset_events)]

    received()

with DAG("dbos_t_on_failure", schedule=[failures], start_date=START, catchup=False):

    @task
    def received_failures(triggering_asset_events: Any = None) -> list[dict[str, Any]]:
        return payloads(triggering_asset_events)

    received_failures()
