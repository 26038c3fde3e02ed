"""DAGs of tests/integration/test_partitions.py: partitioned at runtime, so a DAG run may carry a
partition key; each task enqueues a workflow and waits for it (the worker's partitioned queue ``q_part``
dequeues only workflows with a key)."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, PartitionedAtRuntime

from dbos_airflow.operators.bulk import DBOSBulkEnqueueOperator
from dbos_airflow.operators.dbos import DBOSEnqueueOperator

with DAG(
    "dbos_t_partitions",
    schedule=PartitionedAtRuntime(),
    start_date=datetime(2024, 1, 1),
    default_args={"retries": 0},
    params={"dedup": "x"},
) as partitions:
    # no key given: the run's key
    DBOSEnqueueOperator(
        task_id="from_run",
        workflow_name="wf_double",
        queue_name="q_part",
        workflow_args=[21],
        wait_for_completion=True,
        timeout=60,
    )
    # the same on a queue that is not partitioned: DBOS still runs it
    DBOSEnqueueOperator(
        task_id="unpartitioned",
        workflow_name="wf_double",
        queue_name="q",
        workflow_args=[1],
        wait_for_completion=True,
        timeout=60,
    )
    # a key given (templated) wins
    DBOSEnqueueOperator(
        task_id="given",
        workflow_name="wf_double",
        queue_name="q_part",
        queue_partition_key="{{ partition_key }}-eu",
        workflow_args=[2],
        wait_for_completion=True,
        timeout=60,
    )
    # a deduplication_id: no key from the run (on a queue that runs it without one)
    DBOSEnqueueOperator(
        task_id="dedup",
        workflow_name="wf_double",
        queue_name="q",
        deduplication_id="{{ params.dedup }}",
        workflow_args=[3],
        wait_for_completion=True,
        timeout=60,
    )
    # opted out: no key, so the partitioned queue never runs it (not waited for; the test cancels it)
    DBOSEnqueueOperator(
        task_id="opted_out",
        workflow_name="wf_double",
        queue_name="q_part",
        workflow_args=[4],
        partition_key_from_run=False,
    )
    # a bulk enqueue: every item gets the run's key
    DBOSBulkEnqueueOperator(
        task_id="bulk",
        workflow_name="wf_double",
        queue_name="q_part",
        items=[[5], [6]],
        wait_for_completion=True,
        timeout=60,
    )
