"""DAGs of tests/integration/test_operations.py: queues, schedules, versions, retention and the
enqueue check, each run through ``dag.test()`` against the real worker (params carry the names)."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from dbos_airflow.operators.dbos import DBOSEnqueueOperator
from dbos_airflow.operators.queues import DBOSDeleteQueueOperator, DBOSListQueuesOperator, DBOSRegisterQueueOperator
from dbos_airflow.operators.retention import DBOSDeleteWorkflowsOperator
from dbos_airflow.operators.schedules import (
    DBOSApplySchedulesOperator,
    DBOSBackfillScheduleOperator,
    DBOSPauseScheduleOperator,
    DBOSResumeScheduleOperator,
    DBOSTriggerScheduleOperator,
)
from dbos_airflow.operators.versions import DBOSListApplicationVersionsOperator, DBOSPromoteApplicationVersionOperator
from dbos_airflow.sensors.dbos import DBOSWaitFirstSensor
from dbos_airflow.sensors.queues import DBOSQueueSensor

START = datetime(2024, 1, 1)
ARGS = {"retries": 0}

with DAG("dbos_t_ops_queues", schedule=None, start_date=START, default_args=ARGS, params={"queue": "x"}) as queues:
    register = DBOSRegisterQueueOperator(
        task_id="register",
        queue_name="{{ params.queue }}",
        global_concurrency="{{ params.get('concurrency', 4) }}",
        worker_concurrency=2,
        limiter={"limit": 10, "period": 1.5},
    )
    listed = DBOSListQueuesOperator(task_id="list")
    register >> listed

with DAG("dbos_t_ops_queue_delete", schedule=None, start_date=START, default_args=ARGS, params={"queue": "x"}) as qd:
    DBOSDeleteQueueOperator(task_id="delete", queue_name="{{ params.queue }}", force="{{ params.get('force', False) }}")

with DAG("dbos_t_ops_schedules", schedule=None, start_date=START, default_args=ARGS, params={"schedules": []}) as sch:
    DBOSApplySchedulesOperator(
        task_id="apply", schedules="{{ params.schedules | tojson }}", prune_prefix="{{ params.prefix }}"
    )

with DAG("dbos_t_ops_schedule_ops", schedule=None, start_date=START, default_args=ARGS, params={"name": "x"}) as so:
    pause = DBOSPauseScheduleOperator(task_id="pause", schedule_name="{{ params.name }}")
    backfill = DBOSBackfillScheduleOperator(
        task_id="backfill", schedule_name="{{ params.name }}", start="{{ params.start }}", end="{{ params.end }}"
    )
    trigger = DBOSTriggerScheduleOperator(task_id="trigger", schedule_name="{{ params.name }}")
    resume = DBOSResumeScheduleOperator(task_id="resume", schedule_name="{{ params.name }}")
    pause >> backfill >> trigger >> resume

with DAG("dbos_t_ops_versions", schedule=None, start_date=START, default_args=ARGS, params={"version": "x"}) as ver:
    promote = DBOSPromoteApplicationVersionOperator(task_id="promote", version_name="{{ params.version }}")
    rollback = DBOSPromoteApplicationVersionOperator(
        task_id="rollback", version_name="{{ ti.xcom_pull(task_ids='promote', key='previous') }}"
    )
    promote >> DBOSListApplicationVersionsOperator(task_id="list") >> rollback

with DAG("dbos_t_ops_retention", schedule=None, start_date=START, default_args=ARGS, params={}) as ret:
    DBOSDeleteWorkflowsOperator(
        task_id="purge",
        older_than="{{ params.get('older_than', 0) }}",
        workflow_name="wf_retained",
        page_size=7,
    )

with DAG("dbos_t_ops_typo", schedule=None, start_date=START, default_args=ARGS, params={"on_unknown": "warn"}) as t:
    # The newcomer's typo: "ordres" for the demo app's queue "orders".
    DBOSEnqueueOperator(
        task_id="enqueue",
        workflow_name="process_order",
        queue_name="ordres",
        workflow_args=[{"order_id": "o-1", "amount": 5}],
        on_unknown_queue="warn",
    )
    DBOSEnqueueOperator(
        task_id="enqueue_strict",
        workflow_name="process_order",
        queue_name="ordres",
        workflow_args=[{"order_id": "o-2", "amount": 5}],
        on_unknown_queue="fail",
        execution_timeout=timedelta(minutes=2),
    )

with DAG("dbos_t_ops_options", schedule=None, start_date=START, default_args=ARGS, params={"dedup": "x"}) as opts:
    # "One refresh per key; a second run waits on the first": the second task attaches to the first's workflow.
    first = DBOSEnqueueOperator(
        task_id="first",
        workflow_name="wf_sleep",
        queue_name="q",
        workflow_args=[2],
        deduplication_id="{{ params.dedup }}",
    )
    second = DBOSEnqueueOperator(
        task_id="second",
        workflow_name="wf_sleep",
        queue_name="q",
        workflow_args=[0],
        deduplication_id="{{ params.dedup }}",
        duplication_policy="return-existing",
        wait_for_completion=True,
        poll_interval=0.2,
        timeout=120,
    )
    whoami = DBOSEnqueueOperator(
        task_id="whoami",
        workflow_name="wf_whoami",
        queue_name="q",
        authenticated_roles='["reader", "ops"]',
        attributes={"team": "data", "airflow": "not the owner"},
        wait_for_completion=True,
        poll_interval=0.2,
        timeout=120,
    )
    first >> second >> whoami

with DAG("dbos_t_ops_waits", schedule=None, start_date=START, default_args=ARGS, params={"ids": [], "queue": "x"}) as w:
    # The first of three workflows to end, deferred and in the worker; then back-pressure on a queue, deferred.
    waits = {"poke_interval": 0.5, "timeout": 120}
    first = DBOSWaitFirstSensor(task_id="first", workflow_ids="{{ params.ids | tojson }}", deferrable=True, **waits)
    first_poke = DBOSWaitFirstSensor(task_id="first_poke", workflow_ids="{{ params.ids | tojson }}", **waits)
    drained = DBOSQueueSensor(
        task_id="drained",
        queue_name="{{ params.queue }}",
        max_backlog="{{ params.get('max', 0) }}",
        deferrable=True,
        **waits,
    )
    first >> first_poke >> drained
