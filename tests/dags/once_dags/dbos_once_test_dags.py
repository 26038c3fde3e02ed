"""DAGs of tests/test_once_dags.py, run with ``dag.test()`` on asset events the test attaches to
the run (docs/events.md, "Exactly-once work downstream").

``dbos_t_once``: per triggering DBOS completion one ``wf_echo`` (argument: the completion key) and
one message to ``conf["inbox"]``, both ``id_from="completion"``. ``dbos_t_once_single``: one
unmapped enqueue with ``id_from="completion"`` and no ``completion_key`` (the run must have been
triggered by exactly one completion).
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, task

from dbos_airflow.contract.ids import triggering_completions
from dbos_airflow.operators.bulk import DBOSBulkEnqueueOperator
from dbos_airflow.operators.dbos import DBOSEnqueueOperator, DBOSSendOperator

START = pendulum.datetime(2026, 1, 1, tz="UTC")
COMPLETIONS = Asset("dbos_t_once_completions")


def as_message(item: dict[str, Any]) -> dict[str, Any]:
    return {"completion_key": item["completion_key"], "message": item["completion_key"]}


with DAG("dbos_t_once", schedule=[COMPLETIONS], start_date=START, catchup=False):

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
    DBOSSendOperator.partial(
        task_id="notify", destination_id="{{ dag_run.conf['inbox'] }}", topic="once", id_from="completion"
    ).expand_kwargs(items.map(as_message))

with DAG("dbos_t_once_single", schedule=[COMPLETIONS], start_date=START, catchup=False):
    DBOSEnqueueOperator(task_id="handle", workflow_name="wf_noop", queue_name="q", id_from="completion", retries=2)

with DAG("dbos_t_once_bulk", schedule=[COMPLETIONS], start_date=START, catchup=False):
    DBOSBulkEnqueueOperator(
        task_id="fan_out",
        workflow_name="wf_echo",
        queue_name="q",
        items=[["a"], ["b"], ["c"]],
        wait_for_completion=True,
        poll_interval=0.2,
        id_from="completion",
    )
