"""P9's DAG: 1,000 tasks that start deferred on DBOSWorkflowTrigger (``start_from_trigger``).

The scheduler creates their triggers directly, so no worker process runs before the wait: the
figure measures one real triggerer holding 1,000 DBOS waits. The workflows ``p9-0`` .. ``p9-999``
are enqueued by bench/p9_triggerer.py on a fresh system database before the run starts.

The trigger is the bench-only ``p9_stamped_trigger.StampedDBOSWorkflowTrigger``
(DBOSWorkflowTrigger plus a time stamp when it yields), and ``execute_complete`` stamps
``resumed <workflow_id> <time>`` when the resumed task runs (see bench/dags/p9_stamped_trigger.py).
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, BaseOperator
from airflow.triggers.base import StartTriggerArgs

WAITS = 1000
CONN_ID = "dbos_bench"


class DeferredDBOSWait(BaseOperator):
    start_from_trigger = True

    def __init__(self, *, workflow_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.workflow_id = workflow_id
        self.start_trigger_args = StartTriggerArgs(
            trigger_cls="p9_stamped_trigger.StampedDBOSWorkflowTrigger",
            trigger_kwargs={"workflow_id": workflow_id, "dbos_conn_id": CONN_ID},
            next_method="execute_complete",
            next_kwargs=None,
            timeout=None,
        )

    def execute_complete(self, context: Any, event: Any = None) -> None:
        from p9_stamped_trigger import stamp  # bench/dags is on PYTHONPATH (bench/p9_triggerer.py)

        stamp("resumed", self.workflow_id)


with DAG(
    "p9_deferred",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_tasks=WAITS,
):
    for i in range(WAITS):
        DeferredDBOSWait(task_id=f"w{i}", workflow_id=f"p9-{i}")
