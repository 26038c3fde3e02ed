"""A partitioned DAG run's partition key becomes the workflow's ``queue_partition_key``
(dbos_airflow/contract/partitions.py), against the real worker and its partitioned queue ``q_part``.

``dag.test()`` (Airflow 3.3) creates its run without a partition key, so :func:`run_partitioned` does
what it does with one: the DAG synced to the metadata DB, a real DAG run created with
``partition_key`` (as the REST API's trigger body or a partitioned timetable would), and each task
run by Airflow's own in-process task runner, whose context then has ``partition_key``.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from conftest import ROOT, unique
from dbos_orchestrator.client import DBOSClient
from test_operators import states, xcoms

KEY = "2026-12-07"


@pytest.fixture(scope="module")
def dagbag(dbos_conn: str, airflow_db: object) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "tests" / "dags" / "partitions"))
    assert not bag.import_errors, bag.import_errors
    return bag


def run_partitioned(dag: Any, partition_key: str, conf: dict[str, Any]) -> Any:
    """Run ``dag`` as ``dag.test()`` does, in a DAG run that has ``partition_key``."""
    from airflow import settings
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.sdk import timezone
    from airflow.sdk.definitions.dag import _run_task
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.utils.state import DagRunState, TaskInstanceState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    session = settings.Session()
    manager = DagBundlesManager()
    manager.sync_bundles_to_db(session=session)
    session.commit()
    (bundle,) = [b for b in manager.get_all_dag_bundles() if b.name == "test-dags"]
    bundle.initialize()
    sync_bag_to_db(
        BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name),
        bundle.name,
        bundle.version,
    )
    scheduler_dag = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    now = timezone.utcnow()
    dr = scheduler_dag.create_dagrun(
        run_id=unique("partitioned"),
        logical_date=None,
        data_interval=None,
        run_after=now,
        conf=conf,
        run_type=DagRunType.MANUAL,
        state=DagRunState.RUNNING,
        triggered_by=DagRunTriggeredByType.TEST,
        triggering_user_name="dag_test",
        start_date=now,
        partition_key=partition_key,
        session=session,
    )
    assert dr.partition_key == partition_key
    deadline = time.monotonic() + 600  # each waiting task times out after 30 s
    while dr.state == DagRunState.RUNNING:
        assert time.monotonic() < deadline, states(dr)
        session.expire_all()
        schedulable, _ = dr.update_state(session=session)
        for ti in schedulable:
            ti.try_number += 1
            ti.state = TaskInstanceState.SCHEDULED
        session.commit()
        for ti in [t for t in dr.get_task_instances(session=session) if t.state == TaskInstanceState.SCHEDULED]:
            _run_task(ti=ti, task=dag.task_dict[ti.task_id], run_triggerer=True)
    return dr


def workflow(client: DBOSClient, workflow_id: str) -> Any:
    (row,) = client.list_workflows(workflow_ids=[workflow_id], load_input=False)
    return row


def test_the_runs_partition_key_is_the_workflows_unless_given_deduplicated_or_opted_out(
    dagbag: Any, client: DBOSClient, capsys: pytest.CaptureFixture[str]
) -> None:
    dedup = unique("dedup")
    dr = run_partitioned(dagbag.get_dag("dbos_t_partitions"), KEY, {"dedup": dedup})
    assert set(states(dr).values()) == {"success"}, states(dr)

    # on the partitioned queue: the run's key, and the workflow ran there (a keyless one never would)
    (from_run,) = xcoms(dr, "from_run")
    row = workflow(client, from_run)
    assert (row.queue_name, row.queue_partition_key, row.status, row.output) == ("q_part", KEY, "SUCCESS", 42)
    # on a queue that is not partitioned DBOS 3.4 dequeues it all the same: the key is only recorded
    row = workflow(client, xcoms(dr, "unpartitioned")[0])
    assert (row.queue_name, row.queue_partition_key, row.status, row.output) == ("q", KEY, "SUCCESS", 2)
    # a key given (templated from the run's) wins
    row = workflow(client, xcoms(dr, "given")[0])
    assert (row.queue_name, row.queue_partition_key, row.status) == ("q_part", f"{KEY}-eu", "SUCCESS")
    # a deduplication_id (DBOS clears it when the workflow ends): no key, and the task's log says why
    row = workflow(client, xcoms(dr, "dedup")[0])
    assert (row.queue_partition_key, row.status) == (None, "SUCCESS")
    logged = capsys.readouterr().out
    assert logged.count(f"The DAG run's partition key {KEY} is not the workflow's queue_partition_key: the task") == 1
    assert logged.count(f"The workflow's queue_partition_key is the DAG run's partition key {KEY}") == 3
    # the bulk enqueue: every item has the run's key and ran on the partitioned queue
    (ids,) = xcoms(dr, "bulk")
    rows = client.list_workflows(workflow_ids=ids, load_input=False)
    assert sorted((r.queue_partition_key, r.status, r.output) for r in rows) == [
        (KEY, "SUCCESS", 10),
        (KEY, "SUCCESS", 12),
    ]
    # opted out: no key; DBOS' partitioned queue dequeues partition by partition, so it is still ENQUEUED
    # after the worker polled q_part (every 0.2 s) through the rest of the run
    (opted_out,) = xcoms(dr, "opted_out")
    row = workflow(client, opted_out)
    assert (row.queue_name, row.queue_partition_key, row.status) == ("q_part", None, "ENQUEUED")
    client.cancel_workflow(opted_out)
