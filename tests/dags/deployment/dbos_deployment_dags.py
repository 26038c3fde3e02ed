"""DAGs the deployment tests (tests/stack/test_deployment.py) run under a real scheduler.

Every enqueue task uses ``retry_mode="fail"``: if anything cancelled its workflow by mistake, the
next try fails instead of quietly resuming it. ``dag.test()`` never runs these.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, PartitionedAtRuntime

from dbos_airflow.contract.deferral import CHECK_IN_WORKER_SECONDS
from dbos_airflow.operators.dbos import DBOSEnqueueOperator, DBOSSendOperator
from dbos_airflow.sensors.dbos import DBOSEventSensor

START = pendulum.datetime(2026, 1, 1, tz="UTC")
COMMON: dict[str, Any] = {
    "schedule": None,
    "start_date": START,
    "catchup": False,
    "render_template_as_native_obj": True,
    "max_active_runs": 16,
}
HANG_SECONDS = 600


class HangAfterEnqueue(DBOSEnqueueOperator):
    """On its first try, stops right after enqueueing (before waiting or deferring) for a kill -9."""

    def _enqueue_or_reattach(self, workflow_id: str) -> None:
        super()._enqueue_or_reattach(workflow_id)
        if self._ti.try_number == 1:
            self.log.info("HANGING AFTER ENQUEUE")
            time.sleep(HANG_SECONDS)


class HangAfterSend(DBOSSendOperator):
    """On its first try, stops right after sending for a kill -9."""

    def execute_dbos(self, context: Any) -> str:
        key = super().execute_dbos(context)
        if context["ti"].try_number == 1:
            self.log.info("HANGING AFTER SEND")
            time.sleep(HANG_SECONDS)
        return key


def _enqueue(cls: type[DBOSEnqueueOperator], deferrable: bool, **kwargs: Any) -> DBOSEnqueueOperator:
    return cls(
        task_id="run",
        workflow_name="wf_counted_steps",
        queue_name="q",
        workflow_args="{{ [params.steps, params.delay] }}",
        wait_for_completion=True,
        deferrable=deferrable,
        poll_interval=0.5,
        timeout=600,
        retry_mode="fail",
        **kwargs,
    )


PARAMS = {"steps": 4, "delay": 2.0}
for deferrable in (False, True):
    suffix = "_deferrable" if deferrable else ""
    # A plain wait: retries=0, so a try that Airflow replaces must re-attach, never fail.
    with DAG(f"dbos_deploy_wait{suffix}", params=PARAMS, **COMMON):
        _enqueue(DBOSEnqueueOperator, deferrable, retries=0)
    # Killed with -9 on its first try (sync: while it waits; deferrable: right after enqueueing,
    # before deferring); the retry re-attaches.
    with DAG(f"dbos_deploy_killed{suffix}", params=PARAMS, **COMMON):
        _enqueue(
            HangAfterEnqueue if deferrable else DBOSEnqueueOperator,
            deferrable,
            retries=2,
            retry_delay=timedelta(seconds=1),
        )

with DAG("dbos_deploy_send", params={"destination": ""}, **COMMON):
    HangAfterSend(
        task_id="send",
        destination_id="{{ params.destination }}",
        message="once",
        topic="t",
        retries=2,
        retry_delay=timedelta(seconds=1),
    )

# Over TLS in the real triggerer (issue 29): the connection ``dbos_tls_pem`` (client key as PEM text), made
# by the test through the REST API, reaches a private Postgres that speaks only TLS. Both workflows wait
# for the test's message "go" (sent once both tasks deferred): an enqueue waited for deferred, and a
# deferred event sensor woken by LISTEN.
TLS_CONN = "dbos_tls_pem"
with DAG("dbos_deploy_tls", **COMMON):
    tls: dict[str, Any] = {
        "workflow_name": "wf_event_recv",
        "queue_name": "q",
        "workflow_args": ["go"],
        "retry_mode": "fail",
    }
    DBOSEnqueueOperator(
        task_id="run", **tls, wait_for_completion=True, deferrable=True, timeout=600, dbos_conn_id=TLS_CONN
    )
    start = DBOSEnqueueOperator(task_id="start", **tls, dbos_conn_id=TLS_CONN)
    DBOSEventSensor(
        task_id="event", workflow_id=start.output, key="status", expected_value="done", deferrable=True,
        timeout=600, dbos_conn_id=TLS_CONN,
    )  # fmt: skip


# Workflows that end at once or within moments, mapped and deferrable (docs/architecture.md,
# "Deferring"; tests/stack/test_deferral_race.py): ``quick`` enqueues no-ops, ``reattach`` re-attaches
# to those ended workflows, ``just_after`` ends half a second after the in-worker check gave up.
RACE_ITEMS, RACE_LATE_ITEMS, RACE_LATE_SECONDS = 50, 20, CHECK_IN_WORKER_SECONDS + 0.5
with DAG("dbos_deploy_race", **COMMON):
    race: dict[str, Any] = {
        "queue_name": "q",
        "wait_for_completion": True,
        "deferrable": True,
        "poll_interval": 0.5,
        "timeout": 600,
        "retry_mode": "fail",
        "retries": 3,
        "retry_delay": timedelta(seconds=1),
    }
    quick = DBOSEnqueueOperator.partial(task_id="quick", workflow_name="wf_double", **race).expand(
        workflow_args=[[i] for i in range(RACE_ITEMS)]
    )
    DBOSEnqueueOperator.partial(task_id="reattach", workflow_name="wf_double", **race).expand(workflow_id=quick.output)
    DBOSEnqueueOperator.partial(task_id="just_after", workflow_name="wf_sleep", **race).expand(
        workflow_args=[[RACE_LATE_SECONDS]] * RACE_LATE_ITEMS
    )


# Partitioned at runtime (docs/operations.md, "Partitioned DAG runs and partitioned queues"): the test
# triggers it with a partition key in the REST API's body; the workflow goes to the worker's partitioned
# queue ``q_part``, which runs it only with a key: the run's.
with DAG("dbos_deploy_partitioned", **{**COMMON, "schedule": PartitionedAtRuntime()}):
    DBOSEnqueueOperator(
        task_id="run",
        workflow_name="wf_double",
        queue_name="q_part",
        workflow_args=[21],
        wait_for_completion=True,
        poll_interval=0.5,
        timeout=120,
        retry_mode="fail",
    )
