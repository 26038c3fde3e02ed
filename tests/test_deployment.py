"""The contract under a real deployment, with faults injected by pid (issue 12 §1).

Real ``airflow api-server``, ``scheduler``, ``dag-processor`` and ``triggerer`` with a
LocalExecutor on a fresh Postgres metadata database (tests/airflow_stack.py), a real DBOS worker
(tests/dbos_app.py) and the DAGs in tests/dags/dbos_deployment_dags.py. Faults are what an
operator of Airflow sees: kill -9 of a task process, of the triggerer, of the scheduler; a
person marking a deferred task failed through the REST API; the DBOS system database's own
Postgres server restarting (a private server, never the shared one).

Marked ``deployment``; ``make test`` runs it. Components are stopped by pid in ``finally``.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import TYPE_CHECKING, Any

import pytest
from conftest import ROOT, Worker, unique
from private_postgres import PrivatePostgres

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.deployment


# -- the DBOS system database's Postgres restarts under 200 deferred waits --------------------


@pytest.fixture(scope="module")
def private_pg() -> Iterator[PrivatePostgres]:
    with PrivatePostgres() as pg:
        yield pg


def _conn_json(system_database_url: str) -> str:
    return json.dumps({"conn_type": "dbos", "extra": {"system_database_url": system_database_url}})


async def _run_one(classpath: str, kwargs: dict[str, Any]) -> list[dict[str, Any]]:
    """Rebuild a trigger from its serialized form (as a triggerer does) and collect its events."""
    module, name = classpath.rsplit(".", 1)
    cls = getattr(__import__(module, fromlist=[name]), name)
    trigger = cls(**json.loads(json.dumps(kwargs)))
    return [event.payload async for event in trigger.run()]


def test_system_database_restart_under_200_deferred_waits(private_pg: PrivatePostgres) -> None:
    """Fast restart, then immediate stop + 5 s down, under 200 waits on one event loop.

    A wait ends right wherever it is in its life when the database goes away: waiting on the
    probe, re-reading an event value against ``expected_value``, or starting (first deferral,
    new waiter) while the server is down. No error event; the worker is never restarted.
    """
    from dbos import DBOSPortableJSONSerializer

    from dbos_airflow.client import DBOSClient
    from dbos_airflow.triggers.dbos import DBOSEventTrigger, DBOSWorkflowTrigger
    from dbos_airflow.waiting.waiter import running_waiters

    url = private_pg.url(f"outage_{unique('db').replace('-', '_')}_dbos_sys")
    worker = Worker(url, ROOT / "tests" / "dbos_app.py", executor_id="outage-worker")
    os.environ["AIRFLOW_CONN_DBOS_OUTAGE"] = _conn_json(url)
    os.environ["AIRFLOW_CONN_DBOS_OUTAGE_LATE"] = _conn_json(url)
    client = None
    try:
        worker.wait_ready()
        client = DBOSClient(system_database_url=url, serializer=DBOSPortableJSONSerializer())
        end_time = time.time() + 150
        expected: dict[str, dict[str, Any]] = {}
        serialized: list[tuple[str, dict[str, Any]]] = []

        def add(trigger: Any, event: dict[str, Any]) -> None:
            serialized.append(trigger.serialize())
            expected[trigger.workflow_id] = event

        for _ in range(80):
            wid = client.enqueue({"queue_name": "q", "workflow_name": "wf_sleep"}, 14).workflow_id
            add(
                DBOSWorkflowTrigger(workflow_id=wid, dbos_conn_id="dbos_outage", end_time=end_time),
                {"kind": "workflow_ended", "workflow_id": wid, "status": "SUCCESS"},
            )
        for _ in range(60):  # the exposed path: the value is re-read until it equals expected_value
            wid = client.enqueue({"queue_name": "q", "workflow_name": "wf_progress"}, "k", ["a", "b", "c"], 6)
            wid = wid.workflow_id
            add(
                DBOSEventTrigger(
                    workflow_id=wid,
                    dbos_conn_id="dbos_outage",
                    end_time=end_time,
                    key="k",
                    expected_value="c",
                    poll_interval=0.3,
                ),
                {"kind": "event_published", "workflow_id": wid, "key": "k", "value": "c"},
            )
        for _ in range(60):
            wid = client.enqueue({"queue_name": "q", "workflow_name": "wf_set_event_later"}, "k", "v", 12)
            wid = wid.workflow_id
            add(
                DBOSEventTrigger(workflow_id=wid, dbos_conn_id="dbos_outage", end_time=end_time, key="k"),
                {"kind": "event_published", "workflow_id": wid, "key": "k", "value": "v"},
            )
        late_ids = [client.enqueue({"queue_name": "q", "workflow_name": "wf_sleep"}, 4).workflow_id for _ in range(10)]
        late = [
            DBOSWorkflowTrigger(workflow_id=w, dbos_conn_id="dbos_outage_late", end_time=end_time) for w in late_ids
        ]
        for trigger in late:
            expected[trigger.workflow_id] = {
                "kind": "workflow_ended",
                "workflow_id": trigger.workflow_id,
                "status": "SUCCESS",
            }

        async def scenario() -> list[list[dict[str, Any]]]:
            tasks = [asyncio.create_task(_run_one(*s)) for s in serialized]
            await asyncio.sleep(3)
            await asyncio.to_thread(private_pg.restart, True)  # fast restart
            await asyncio.sleep(3)
            await asyncio.to_thread(private_pg.stop, "immediate")
            # Triggers that start while the server is down, on a connection with no waiter yet.
            tasks += [asyncio.create_task(_run_one(*t.serialize())) for t in late]
            await asyncio.sleep(5)
            await asyncio.to_thread(private_pg.start)
            return list(await asyncio.wait_for(asyncio.gather(*tasks), 140))

        results = asyncio.run(scenario())
        events = [e for got in results for e in got]
        assert len(events) == len(results) == 210, [len(r) for r in results]
        errors = [e for e in events if e["kind"] == "error"]
        assert not errors, errors[:5]
        wrong = [(e, expected[e["workflow_id"]]) for e in events if e != expected[e["workflow_id"]]]
        assert not wrong, wrong[:5]
        assert worker.proc.poll() is None, "the DBOS worker died"
        assert not running_waiters() or all(w.pending == 0 for w in running_waiters().values())
    finally:
        for waiter in list(running_waiters().values()):
            waiter.stop()
        if client is not None:
            client.destroy()
        worker.stop()
        os.environ.pop("AIRFLOW_CONN_DBOS_OUTAGE", None)
        os.environ.pop("AIRFLOW_CONN_DBOS_OUTAGE_LATE", None)


def test_waiter_connections_are_bounded(private_pg: PrivatePostgres) -> None:
    """TCP keepalives, TCP user timeout and a statement timeout on the waiter's connections."""
    from dbos_airflow.waiting.waiter import bounded_url

    url = bounded_url(private_pg.url("postgres"))
    import sqlalchemy as sa

    engine = sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SHOW statement_timeout")).scalar() == "30s"
            params = conn.connection.driver_connection.info.get_parameters()  # type: ignore[union-attr]
            assert params["keepalives"] == "1" and params["tcp_user_timeout"] == "30000", params
    finally:
        engine.dispose()
    assert bounded_url("sqlite:///x.sqlite") == "sqlite:///x.sqlite"
    kept = sa.make_url(bounded_url("postgresql://h/db?options=-c%20statement_timeout%3D5"))
    assert kept.query["options"] == "-c statement_timeout=5"
