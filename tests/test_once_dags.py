"""Exactly-once work downstream of DBOS completions through ``dag.test()`` (docs/events.md,
"Exactly-once work downstream"): real Airflow (the task runner builds ``triggering_asset_events``
from the run's consumed asset events in the metadata DB), the real DBOS worker and Postgres.

``dag.test()`` makes a manual run; the test attaches asset events with completion payloads to it
before its tasks run (a stand-in for the scheduler, which does that for an asset-triggered run).
DAGs: tests/dags/once_dags/dbos_once_test_dags.py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import pytest
import sqlalchemy as sa
from conftest import ROOT, Worker, connection_json, unique
from dbos_orchestrator.client import DBOSClient
from dbos_orchestrator.store.codec import decode_value

from dbos_airflow.hooks.dbos import DBOSHook

UNPOLLED = "q_once_nobody"


@pytest.fixture(scope="module")
def dagbag(dbos_conn: str, airflow_db: object) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "tests" / "dags" / "once_dags" / "dbos_once_test_dags.py"))
    assert not bag.import_errors, bag.import_errors
    return bag


@contextmanager
def triggered_by(payloads: list[dict[str, Any]], asset_name: str = "dbos_t_once_completions") -> Iterator[None]:
    """The next ``dag.test()`` run consumed one asset event per payload (``extra["payload"]``)."""
    import airflow.models.dagrun as dagrun_module
    from airflow.models.asset import AssetEvent, AssetModel

    create = dagrun_module.get_or_create_dagrun

    def with_events(**kwargs: Any) -> Any:
        dr = create(**kwargs)
        session = kwargs["session"]
        asset = session.scalar(sa.select(AssetModel).where(AssetModel.name == asset_name))
        for payload in payloads:
            event = AssetEvent(asset_id=asset.id, extra={"from_trigger": True, "payload": payload})
            session.add(event)
            dr.consumed_asset_events.append(event)
        session.commit()
        return dr

    with mock.patch.object(dagrun_module, "get_or_create_dagrun", with_events):
        yield


def completion(workflow_id: str, ms: int) -> dict[str, Any]:
    return {
        "workflow_id": workflow_id,
        "status": "SUCCESS",
        "completed_at_ms": ms,
        "completion_key": f"{workflow_id}@{ms}",
    }


def states(dr: Any) -> Counter[str]:
    return Counter(str(ti.state) for ti in dr.get_task_instances())


def test_a_duplicated_completion_re_attaches_in_the_same_run_and_in_another(dagbag: Any, client: DBOSClient) -> None:
    a, b, c = (completion(unique("done"), 1733150000000 + i) for i in range(3))
    inbox = unique("inbox")
    client.enqueue({"queue_name": UNPOLLED, "workflow_name": "wf_noop", "workflow_id": inbox})
    dag = dagbag.get_dag("dbos_t_once")
    with triggered_by([a, b, a]):  # a twice in one run (Airflow consolidated a duplicate into it)
        first = dag.test(run_conf={"inbox": inbox})
    with triggered_by([c, b]):  # b again, in another run, at another map index, beside c
        second = dag.test(run_conf={"inbox": inbox})
    assert states(first) == Counter({"success": 5}) and states(second) == Counter({"success": 5})
    assert first.run_id != second.run_id

    keys = [p["completion_key"] for p in (a, b, c)]
    echoes = client.list_workflows(workflow_id_prefix="dbos_t_once:handle:", load_input=True, load_output=False)
    ours = [s for s in echoes if s.input and s.input["args"][0] in keys]  # type: ignore[index]
    assert sorted(s.workflow_id for s in ours) == sorted(f"dbos_t_once:handle:{k}" for k in keys)
    assert Counter(s.input["args"][0] for s in ours) == Counter(keys)  # type: ignore[index]

    from dbos._schemas.system_database import SystemSchema

    hook = DBOSHook()
    n = SystemSchema.notifications
    try:
        with hook.get_client().system_database_engine.connect() as conn:
            rows = conn.execute(
                sa.select(n.c.message, n.c.serialization, n.c.message_uuid).where(n.c.destination_uuid == inbox)
            ).all()
    finally:
        hook.close()
    messages = [decode_value(m, tag, allow_pickle=False, workflow_id=inbox, what="message") for m, tag, _ in rows]
    assert Counter(messages) == Counter(keys)
    assert sorted(u for *_, u in rows) == sorted(f"dbos_t_once:notify:{k}::{inbox}" for k in keys)


def test_one_unmapped_task_takes_the_run_s_only_completion_and_names_what_is_wrong_otherwise(
    dagbag: Any, client: DBOSClient
) -> None:
    dag = dagbag.get_dag("dbos_t_once_single")
    only = completion(unique("done"), 1733150000000)
    with triggered_by([only, only]):  # one completion, delivered twice into the run
        dr = dag.test()
    assert states(dr) == Counter({"success": 1})
    assert client.retrieve_workflow(f"dbos_t_once_single:handle:{only['completion_key']}").get_status()

    by_hand = dag.test()  # not triggered by DBOS completion events: fails at once, no retries
    (ti,) = by_hand.get_task_instances()
    assert ti.state == "failed" and ti.try_number == 1
    with triggered_by([completion(unique("done"), 1), completion(unique("done"), 2)]):
        several = dag.test()
    (ti,) = several.get_task_instances()
    assert ti.state == "failed" and ti.try_number == 1
    assert not client.list_workflows(workflow_id_prefix=f"dbos_t_once_single:{by_hand.run_id}", load_input=False)


def test_a_duplicated_completion_fans_out_once(dagbag: Any, client: DBOSClient) -> None:
    """docs/batch.md, "Parameters" (``id_from``): a bulk enqueue with ``id_from="completion"`` in two
    runs of one completion enqueues its items once; both runs return the same ids."""
    dag = dagbag.get_dag("dbos_t_once_bulk")
    only = completion(unique("done"), 1733150000000)
    runs = []
    for _ in range(2):
        with triggered_by([only]):
            runs.append(dag.test())
    assert [states(dr) for dr in runs] == [Counter({"success": 1})] * 2
    base = f"dbos_t_once_bulk:fan_out:{only['completion_key']}"
    ids = [f"{base}:{i}" for i in range(3)]
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        returned = [
            session.query(XComModel.value).filter_by(run_id=dr.run_id, task_id="fan_out", key="return_value").scalar()
            for dr in runs
        ]
    assert returned == [ids, ids]
    rows = client.list_workflows(workflow_id_prefix=base + ":", load_input=True, load_output=False)
    assert sorted(r.workflow_id for r in rows) == ids
    assert [r.status for r in rows] == ["SUCCESS"] * 3

    by_hand = dag.test()  # not triggered by DBOS completion events: fails at once, nothing enqueued
    (ti,) = by_hand.get_task_instances()
    assert ti.state == "failed" and ti.try_number == 1
    assert not client.list_workflows(workflow_id_prefix=f"dbos_t_once_bulk:{by_hand.run_id}", load_input=False)


@pytest.fixture(scope="module")
def order_worker(example_system_db: str) -> Iterator[str]:
    """examples/order_worker.py on a system database of its own (the tests' app has another version)."""
    worker = Worker(example_system_db, ROOT / "examples" / "order_worker.py", executor_id="once-orders")
    worker.wait_ready()
    yield example_system_db
    worker.stop()


def test_the_incident_example_opens_one_incident_per_failed_workflow(
    airflow_db: object, order_worker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dags/dbos_order_incident.py: ``id_from="completion"`` by default, so a failed workflow whose
    event came twice (once beside another, once beside a third) has one ``open_incident``."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW_CONN_DBOS_DEFAULT", connection_json(order_worker))
    dag = DagBag(dag_folder=str(ROOT / "dags" / "dbos_order_incident.py")).get_dag("dbos_order_incident")
    failed = [
        {**completion(unique("refund"), 1733150000000 + i), "name": "refund_order", "status": "ERROR", "error": f"e{i}"}
        for i in range(3)
    ]
    with triggered_by([failed[0], failed[1]], "dbos_failed_orders"):
        first = dag.test()
    with triggered_by([failed[2], failed[1]], "dbos_failed_orders"):
        second = dag.test()
    assert set(states(first)) == {"success"} and set(states(second)) == {"success"}
    client = DBOSClient(system_database_url=order_worker, retry_connection_errors=False)
    try:
        opened = client.list_workflows(name="open_incident", load_input=True, load_output=False)
    finally:
        client.destroy()
    assert sorted(s.workflow_id for s in opened) == sorted(
        f"dbos_order_incident:open_incident:{p['completion_key']}" for p in failed
    )
    assert Counter(s.input["args"][0] for s in opened) == Counter(p["workflow_id"] for p in failed)  # type: ignore[index]
    assert {s.status for s in opened} == {"SUCCESS"}
