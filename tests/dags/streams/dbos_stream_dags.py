"""DAGs of tests/integration/test_streams.py (``dag.test()``): a stream sensor in a worker and deferred.

``run_conf``: ``workflow_id`` and ``key``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, Param

from dbos_airflow.operators.dbos import DBOSEnqueueOperator
from dbos_airflow.sensors.dbos import DBOSWorkflowSensor
from dbos_airflow.sensors.streams import DBOSStreamSensor


class LosesTryOne(DBOSStreamSensor):
    """Try 1 fails mid-stream once it has logged 5 values or more (as a lost worker would); later tries don't."""

    def poke(self, context: Any) -> Any:
        answer = super().poke(context)
        if context["ti"].try_number == 1 and (self._next or 0) >= 5 and answer is False:
            raise RuntimeError("try 1 lost mid-stream")
        return answer


for dag_id, deferrable, returned, cls in (
    ("dbos_t_stream_worker", False, "last", DBOSStreamSensor),
    ("dbos_t_stream_deferred", True, "last", DBOSStreamSensor),
    ("dbos_t_stream_all", False, "all", DBOSStreamSensor),
    ("dbos_t_stream_retry", False, "all", LosesTryOne),
    ("dbos_t_stream_reschedule", False, "all", DBOSStreamSensor),
):
    with DAG(
        dag_id,
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        render_template_as_native_obj=True,
        params={"workflow_id": Param("", type="string"), "key": Param("progress", type="string")},
    ):
        cls(
            task_id="stream",
            workflow_id="{{ params.workflow_id }}",
            key="{{ params.key }}",
            deferrable=deferrable,
            poke_interval=1 if dag_id.endswith("reschedule") else 0.2,
            mode="reschedule" if dag_id.endswith("reschedule") else "poke",
            return_values=returned,
            retries=1 if cls is LosesTryOne else 0,
            retry_delay=timedelta(0),
        )


# stream_to_log= on the enqueue operator's wait (worker, deferred) and on the workflow sensor (poke)
for dag_id, deferrable in (("dbos_t_stream_to_log_worker", False), ("dbos_t_stream_to_log_deferred", True)):
    with DAG(
        dag_id,
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        render_template_as_native_obj=True,
        params={"n": Param(30, type="integer")},
    ):
        enqueue = DBOSEnqueueOperator(
            task_id="enqueue",
            workflow_name="wf_stream",
            queue_name="q",
            workflow_args=["progress", "{{ params.n }}", 0.02],
            workflow_kwargs={"pause_at": 10},
            wait_for_completion=True,
            deferrable=deferrable,
            poll_interval=0.2,
            stream_to_log="progress",
        )
        DBOSWorkflowSensor(
            task_id="sensor",
            workflow_id="{{ ti.xcom_pull('enqueue') }}",
            stream_to_log="progress",
            poke_interval=0.2,
        ).set_upstream(enqueue)
