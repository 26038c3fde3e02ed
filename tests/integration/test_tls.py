"""TLS on every connection the provider opens, against a private Postgres with ``ssl = on`` (issue 29).

The server (the ``tls`` fixture, dbos_testkit.tls_server) serves a certificate signed by a CA made
with ``openssl`` and its pg_hba.conf refuses every TCP connection without TLS; the user ``postgres``
must also present a client certificate (``hostssl ... cert``), the user ``app_user`` only TLS. The
tests' DBOS worker runs against it with a client certificate.

* ``dbos_tls``: the issue's URI form, ``dbos://app_user@127.0.0.1:<port>/<db>?sslmode=verify-full
  &sslrootcert=<path>``;
* ``dbos_tls_cert``: the JSON form with the CA, the client certificate and its key as PEM text
  (the key written to a private file by dbos_orchestrator.libpq);
* ``dbos_tls_wrong_ca``: verify-full with another CA: fails at once, naming TLS, host and database;
  ``dbos_tls_wrong_ca_pem`` the same with the client key as PEM text.

Enqueue + wait in the worker and deferred (dag.test() runs the trigger inline, on the shared
waiter's connection; tests/stack/test_deployment.py runs a deferred wait in a real ``airflow
triggerer``), a bulk enqueue + batch wait, an event wait woken by LISTEN, the completion trigger and
the Test button; after them ``pg_stat_ssl`` shows every provider connection encrypted. The client
key given as PEM text is in no task log, XCom, rendered field, trigger kwargs, error or Test button
message (Airflow's masker switched off, so that is the provider's own hygiene).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from conftest import ROOT, TLS_DATABASE, unique
from dbos_orchestrator.exceptions import DBOSConnectionError
from sweeps import kept_by_airflow, leaks, trigger_ids

from dbos_airflow.hooks.dbos import DBOSHook
from dbos_airflow.triggers.completed import DBOSWorkflowCompletedTrigger

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from dbos_testkit.tls_server import TLSServer

DATABASE = TLS_DATABASE


@pytest.fixture(scope="module")
def conns(tls: TLSServer) -> Iterator[None]:
    import os

    os.environ["AIRFLOW_CONN_DBOS_TLS"] = (
        f"dbos://app_user@127.0.0.1:{tls.pg.port}/{DATABASE}?sslmode=verify-full&sslrootcert={tls.certs.ca}"
    )
    pem = tls.client_certificate_pem()
    cert = {"conn_type": "dbos", "host": "127.0.0.1", "port": tls.pg.port, "login": "postgres", "schema": DATABASE}
    os.environ["AIRFLOW_CONN_DBOS_TLS_CERT"] = json.dumps({**cert, "extra": pem})
    os.environ["AIRFLOW_CONN_DBOS_TLS_WRONG_CA"] = (
        f"dbos://app_user@127.0.0.1:{tls.pg.port}/{DATABASE}?sslmode=verify-full&sslrootcert={tls.other.ca}"
        "&connect_timeout=30"
    )
    os.environ["AIRFLOW_CONN_DBOS_TLS_WRONG_CA_PEM"] = json.dumps(
        {**cert, "extra": {**pem, "sslrootcert": tls.other.ca.read_text()}}
    )
    yield
    for name in ("DBOS_TLS", "DBOS_TLS_CERT", "DBOS_TLS_WRONG_CA", "DBOS_TLS_WRONG_CA_PEM"):
        os.environ.pop(f"AIRFLOW_CONN_{name}", None)


def states(dr: Any) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in dr.get_task_instances()}


def assert_all_encrypted(tls: TLSServer, at_least: int) -> None:
    rows = tls.provider_connections()
    assert len(rows) >= at_least, rows
    assert all(ssl and version.startswith("TLSv1.") for _, ssl, version, _ in rows), rows


@pytest.fixture(scope="module")
def dagbag(conns: None, airflow_db: Path) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "tests" / "dags" / "tls"))
    assert not bag.import_errors, bag.import_errors
    return bag


def test_dag_of_every_wait_with_a_client_certificate(
    tls: TLSServer, dagbag: Any, no_masking: None, capfd: pytest.CaptureFixture[str]
) -> None:
    """Worker and deferred waits, a bulk enqueue with its batch wait, a send and an event wait, all over
    verify-full TLS with a client certificate given as PEM text (no timing asserted: dag.test() on a
    loaded machine took 60-120 s for these 8 tasks, most of it Airflow's own task start-up). The key
    is in none of the task logs, XComs, rendered fields or trigger kwargs of the run."""
    from dbos_orchestrator.waiting.waiter import running_waiters

    conn_id = "dbos_tls_cert"
    before = trigger_ids()
    capfd.readouterr()
    dr = dagbag.get_dag("dbos_tls_waits").test(run_conf={"conn_id": conn_id})
    out, err = capfd.readouterr()
    assert set(states(dr).values()) == {"success"} and len(states(dr)) == 8, states(dr)
    kept = kept_by_airflow(dr, before)
    assert kept["trigger"] and kept["xcom"] and kept["rendered"], kept  # the sweep has something to look at
    assert leaks(tls.key_lines(), {"task log": (out + err).splitlines(), **kept}) == []
    # The deferred waits ran on the shared waiter, whose LISTEN works here (checked by a round trip).
    waiter = running_waiters().get(conn_id)
    assert waiter is not None and waiter.listening, running_waiters()
    assert_all_encrypted(tls, at_least=1)  # the waiter's LISTEN/poll connection is still open


async def test_completion_trigger_over_tls(tls: TLSServer, conns: None) -> None:
    hook = DBOSHook("dbos_tls_cert")
    name = f"wf_tls_{secrets.token_hex(3)}"
    trigger = DBOSWorkflowCompletedTrigger(dbos_conn_id="dbos_tls_cert", workflow_name=name)
    events: list[dict[str, Any]] = []

    async def consume() -> None:
        async for event in trigger.run():
            events.append(event.payload)

    task = asyncio.create_task(consume())
    try:
        await asyncio.sleep(0.5)
        ids = await asyncio.to_thread(hook.enqueue_many, {"workflow_name": name, "queue_name": "nobody"}, [[], []])
        await asyncio.to_thread(hook.get_client().cancel_workflows, ids)
        deadline = time.monotonic() + 60
        while len(events) < 2 and time.monotonic() < deadline and not task.done():
            await asyncio.sleep(0.1)
        assert sorted(e["workflow_id"] for e in events) == sorted(ids), events
        assert_all_encrypted(tls, at_least=2)  # the hook's pool and the feed's connection
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.to_thread(hook.close)


@pytest.mark.parametrize("conn_id", ["dbos_tls", "dbos_tls_cert"])
def test_test_button_over_verify_full(conn_id: str, tls: TLSServer, conns: None) -> None:
    ok, message = DBOSHook(conn_id).test_connection()
    assert ok, message
    assert f"127.0.0.1:{tls.pg.port}/{DATABASE}" in message


def test_uri_form_with_query_parameters_enqueues_and_waits(tls: TLSServer, conns: None) -> None:
    """The issue's URI (``dbos://...?sslmode=verify-full&sslrootcert=...``): enqueue and wait in the worker."""
    with DBOSHook("dbos_tls") as hook:
        assert sa.make_url(hook.settings.system_database_url).query["sslmode"] == "verify-full"
        wid = unique("tls")
        assert (
            hook.enqueue_or_reattach({"workflow_name": "wf_double", "queue_name": "q", "workflow_id": wid}, [4]) is None
        )
        status = hook.wait_for_status(wid, timeout=60, poll_interval=0.5)
        assert status["status"] == "SUCCESS" and hook.service().result(wid) == 8
        assert_all_encrypted(tls, at_least=1)


def test_wrong_ca_fails_at_once_naming_tls_host_and_database(tls: TLSServer, conns: None) -> None:
    """A wrong CA is a TLS error at the handshake, not a 30 s connect timeout: the connection allows 30 s."""
    target = f"127.0.0.1:{tls.pg.port}/{DATABASE}"
    started = time.monotonic()
    ok, message = DBOSHook("dbos_tls_wrong_ca").test_connection()
    assert not ok and "TLS verification failed" in message and target in message, message
    assert "signed by the trusted CA" in message, message
    hook = DBOSHook("dbos_tls_wrong_ca")
    with pytest.raises(DBOSConnectionError, match="TLS verification failed") as raised:
        hook.enqueue({"workflow_name": "wf_double", "queue_name": "q", "workflow_id": unique("tls")}, 1)
    assert target in str(raised.value)
    assert time.monotonic() - started < 25


def test_no_client_certificate_is_named(tls: TLSServer, conns: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_DBOS_TLS_NOCERT",
        f"dbos://postgres@127.0.0.1:{tls.pg.port}/{DATABASE}?sslmode=verify-full&sslrootcert={tls.certs.ca}",
    )
    ok, message = DBOSHook("dbos_tls_nocert").test_connection()
    assert not ok and "requires a client certificate" in message, message


def test_key_material_never_in_errors_or_repr(tls: TLSServer, conns: None, no_masking: None) -> None:
    settings = DBOSHook("dbos_tls_cert").settings
    url = sa.make_url(settings.system_database_url)
    shown = [repr(settings), settings.system_database_url, json.dumps(settings.client_kwargs())]
    ok, message = DBOSHook("dbos_tls_cert").test_connection()
    assert ok, message
    failed, wrong_ca = DBOSHook("dbos_tls_wrong_ca_pem").test_connection()
    assert not failed and "TLS verification failed" in wrong_ca, wrong_ca
    with pytest.raises(DBOSConnectionError, match="TLS verification failed") as raised:
        DBOSHook("dbos_tls_wrong_ca_pem").enqueue({"workflow_name": "wf_double", "queue_name": "q"}, 1)
    errors = [message, wrong_ca, str(raised.value), repr(raised.value)]
    assert leaks(tls.key_lines(), {"shown": shown, "Test button or error": errors}) == []
    key_file = str(url.query["sslkey"])
    import os
    import stat

    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(key_file)).st_mode) == 0o700
