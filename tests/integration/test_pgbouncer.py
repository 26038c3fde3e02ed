"""The provider through PgBouncer (Debian's ``pgbouncer``, started on a free port), issue 29.

A private Postgres (dbos_testkit.private_postgres) with the tests' DBOS worker on it directly;
the provider reaches it through a private PgBouncer (dbos_testkit.pgbouncer) in transaction
pooling mode (``dbos_bouncer_tx``) or session pooling mode (``dbos_bouncer_session``).

Transaction pooling hands the server connection back after every transaction, so a LISTEN does
not survive it: the shared waiter finds that out with a round trip (waiting.waiter.CHECK_CHANNEL),
says so in one log line and polls; an event wait still wakes. Session pooling keeps LISTEN.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import TYPE_CHECKING, Any

import pytest
from conftest import ROOT, Worker, unique
from dbos_testkit.pgbouncer import PgBouncer
from dbos_testkit.private_postgres import PrivatePostgres

from dbos_airflow.hooks.dbos import DBOSHook
from dbos_airflow.plugin import data

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

DATABASE = "bouncer_dbos_sys"
NO_LISTEN = "LISTEN/NOTIFY does not reach this connection"


@pytest.fixture(scope="module")
def bouncers(airflow_db: Path) -> Iterator[dict[str, PgBouncer]]:
    pg = PrivatePostgres()
    pg.start()
    started: list[Any] = []
    try:
        url = pg.url(DATABASE)
        worker = Worker(url, ROOT / "tests" / "dbos_app.py", executor_id="bouncer-worker")
        started.append(worker)
        worker.wait_ready()
        found = {}
        for mode in ("transaction", "session"):
            bouncer = PgBouncer(upstream_port=pg.port, pool_mode=mode, pool_size=5)
            started.append(bouncer)
            bouncer.start()
            found[mode] = bouncer
        tx = f"dbos://postgres@127.0.0.1:{found['transaction'].port}/{DATABASE}"
        os.environ["AIRFLOW_CONN_DBOS_BOUNCER_TX"] = tx + "?transaction_pooling=true"
        os.environ["AIRFLOW_CONN_DBOS_BOUNCER_TX_UNSAID"] = tx
        os.environ["AIRFLOW_CONN_DBOS_BOUNCER_SESSION"] = (
            f"dbos://postgres@127.0.0.1:{found['session'].port}/{DATABASE}"
        )
        yield found
    finally:
        for name in ("DBOS_BOUNCER_TX", "DBOS_BOUNCER_TX_UNSAID", "DBOS_BOUNCER_SESSION"):
            os.environ.pop(f"AIRFLOW_CONN_{name}", None)
        for thing in reversed(started):
            thing.close() if isinstance(thing, PgBouncer) else thing.stop()
        pg.close()


async def _event_wait(conn_id: str) -> bool | None:
    """An event wait on the connection's shared waiter (event set 2 s after the workflow starts);
    returns the waiter's LISTEN check's answer."""
    hook = DBOSHook(conn_id)
    try:
        waiter = await hook.get_waiter_async()
        wid = unique("bouncer-event")
        await asyncio.to_thread(
            hook.enqueue_or_reattach,
            {"workflow_name": "wf_set_event_later", "queue_name": "q", "workflow_id": wid},
            ["k", "v", 2],
        )
        observed = await waiter.observe(wid, "k", deadline=time.time() + 60)
        assert observed.event_present, observed
        assert (await asyncio.to_thread(hook.value_reader().events, wid)) == {"k": "v"}
        return waiter.listening
    finally:
        await asyncio.to_thread(hook.close)


async def test_transaction_pooling_not_declared_waiter_detects_it_and_says_so_once(
    bouncers: dict[str, PgBouncer], caplog: pytest.LogCaptureFixture
) -> None:
    """No transaction_pooling on the connection: the waiter's LISTEN round trip fails, one line says so,
    and the event wait is still woken (by polling)."""
    caplog.set_level(logging.WARNING, logger="dbos_orchestrator.waiting.waiter")
    assert await _event_wait("dbos_bouncer_tx_unsaid") is False
    lines = [r.getMessage() for r in caplog.records if NO_LISTEN in r.getMessage()]
    assert len(lines) == 1 and "dbos_bouncer_tx_unsaid" in lines[0] and "polling every 0.1s" in lines[0], lines
    # A second wait on the same waiter: still woken, and nothing said again.
    assert await _event_wait("dbos_bouncer_tx_unsaid") is False
    assert len([r for r in caplog.records if NO_LISTEN in r.getMessage()]) == 1


async def test_transaction_pooling_declared_waiter_polls_without_a_check(
    bouncers: dict[str, PgBouncer], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="dbos_orchestrator.waiting.waiter")
    assert await _event_wait("dbos_bouncer_tx") is False
    assert not [r for r in caplog.records if NO_LISTEN in r.getMessage()]


async def test_session_pooling_keeps_listen(bouncers: dict[str, PgBouncer], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="dbos_orchestrator.waiting.waiter")
    assert await _event_wait("dbos_bouncer_session") is True
    assert not [r for r in caplog.records if NO_LISTEN in r.getMessage()]


@pytest.fixture(scope="module")
def dagbag(bouncers: dict[str, PgBouncer]) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "tests" / "dags" / "tls"))
    assert not bag.import_errors, bag.import_errors
    return bag


def test_dag_of_every_wait_through_transaction_pooling(dagbag: Any) -> None:
    """Enqueue, bulk enqueue with its batch wait, worker and deferred waits, a send and an event wait."""
    dr = dagbag.get_dag("dbos_tls_waits").test(run_conf={"conn_id": "dbos_bouncer_tx"})
    states = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert set(states.values()) == {"success"} and len(states) == 8, states


def test_ui_reads_through_transaction_pooling(bouncers: dict[str, PgBouncer]) -> None:
    with DBOSHook("dbos_bouncer_tx") as hook:
        wid = unique("bouncer-ui")
        hook.enqueue_or_reattach({"workflow_name": "wf_double", "queue_name": "q", "workflow_id": wid}, [5])
        assert hook.wait_for_status(wid, timeout=60, poll_interval=0.3)["status"] == "SUCCESS"
        status = data.status_of(hook, wid)
        assert status is not None and status.status == "SUCCESS"
        detail = data.workflow_detail(hook, status)
        assert detail.status.workflow_id == wid and "10" in str(detail.output)
        ok, message = hook.test_connection()
        assert ok, message
