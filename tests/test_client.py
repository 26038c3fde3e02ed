"""The seed document's DBOSClient API, run as written against a real DBOS worker and Postgres."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import ROOT, Worker, unique
from dbos_orchestrator.client import DBOSClient
from dbos_orchestrator.database_urls import system_database_url_for
from dbos_orchestrator.exceptions import (
    DBOSConnectionError,
    DBOSOptionsError,
    DBOSSchemaMissingError,
    DBOSSerializationError,
)
from dbos_orchestrator.options import EnqueueOptions


@pytest.fixture
def seed_env(app_database_url: str, dbos_worker: Worker, monkeypatch: pytest.MonkeyPatch) -> str:
    """The seed's ``DBOS_DATABASE_URL``: the *application* database URL."""
    monkeypatch.setenv("DBOS_DATABASE_URL", app_database_url)
    return app_database_url


# -- constructor ---------------------------------------------------------------------------


def test_seed_constructor_derives_the_dbos_sys_database(seed_env: str) -> None:
    client = DBOSClient(os.environ["DBOS_DATABASE_URL"])
    try:
        assert client.target.endswith(f"/{sa.make_url(seed_env).database}_dbos_sys")
        options: EnqueueOptions = {"queue_name": "q", "workflow_name": "wf_double"}
        assert client.enqueue(options, 21).get_result() == 42
    finally:
        client.destroy()


def test_explicit_system_database_is_used(seed_env: str, system_database_url: str) -> None:
    other_app = sa.make_url(seed_env).set(database="some_other_app").render_as_string(hide_password=False)
    sysdb = sa.make_url(system_database_url).database
    client = DBOSClient(other_app, system_database=sysdb)
    try:
        assert client.target.endswith(f"/{sysdb}")
        assert client.enqueue({"queue_name": "q", "workflow_name": "wf_double"}, 5).get_result() == 10
    finally:
        client.destroy()


def test_system_database_url_keyword_of_dbos_3(system_database_url: str, dbos_worker: Worker) -> None:
    client = DBOSClient(system_database_url=system_database_url)
    try:
        assert client.enqueue({"queue_name": "q", "workflow_name": "wf_double"}, 1).get_result() == 2
    finally:
        client.destroy()


def test_derivation_rules() -> None:
    assert system_database_url_for("postgresql://u:p@h:5433/app") == "postgresql://u:p@h:5433/app_dbos_sys"
    assert system_database_url_for("postgresql://u@h/app", "custom_sys") == "postgresql://u@h/custom_sys"
    assert system_database_url_for("sqlite:///x.sqlite") == "sqlite:///x.sqlite"
    with pytest.raises(DBOSOptionsError, match="names no database"):
        system_database_url_for("postgresql://u@h")
    with pytest.raises(DBOSOptionsError, match="database_url"):
        DBOSClient()
    with pytest.raises(DBOSOptionsError, match="not both"):
        DBOSClient("postgresql://u@h/a", system_database_url="postgresql://u@h/b")


# -- enqueue -------------------------------------------------------------------------------


def test_seed_enqueue_example(client: DBOSClient) -> None:
    task = 7
    options: EnqueueOptions = {
        "queue_name": "q",
        "workflow_name": "wf_double",
    }
    handle = client.enqueue(options, task)
    result = handle.get_result()
    assert result == 14


async def test_seed_enqueue_async_example(client: DBOSClient) -> None:
    task = 8
    options: EnqueueOptions = {
        "queue_name": "q",
        "workflow_name": "wf_double",
    }
    handle = await client.enqueue_async(options, task)
    result = await handle.get_result()
    assert result == 16


def test_workflow_id_and_app_version_are_honoured(client: DBOSClient) -> None:
    wid = unique()
    handle = client.enqueue(
        {"queue_name": "q", "workflow_name": "wf_double", "workflow_id": wid, "app_version": "test"}, 4
    )
    assert handle.workflow_id == wid
    assert handle.get_result() == 8
    assert client.retrieve_workflow(wid).get_status().app_version == "test"


def test_workflow_class_name_reaches_a_class_workflow(client: DBOSClient) -> None:
    options: EnqueueOptions = {
        "queue_name": "q",
        "workflow_name": "Calculator.scale",
        "workflow_class_name": "Calculator",
    }
    handle = client.enqueue(options, 3)
    assert handle.get_result() == 30
    assert client.retrieve_workflow(handle.workflow_id).get_status().class_name == "Calculator"


def test_unknown_option_key_is_named(client: DBOSClient) -> None:
    with pytest.raises(DBOSOptionsError) as err:
        client.enqueue({"queue_name": "q", "workflow_name": "wf_double", "workflow_clas_name": "X"}, 1)  # type: ignore[typeddict-unknown-key]
    assert "'workflow_clas_name'" in str(err.value)
    assert "workflow_class_name" in str(err.value) and "queue_name" in str(err.value)


def test_missing_required_option_is_named(client: DBOSClient) -> None:
    with pytest.raises(DBOSOptionsError, match="queue_name"):
        client.enqueue({"workflow_name": "wf_double"}, 1)  # type: ignore[typeddict-item]


def test_unencodable_argument_is_named(client: DBOSClient) -> None:
    from dbos import WorkflowSerializationFormat

    wid = unique()
    with pytest.raises(DBOSSerializationError) as err:
        client.enqueue(
            {
                "queue_name": "q",
                "workflow_name": "wf_echo",
                "workflow_id": wid,
                "serialization_type": WorkflowSerializationFormat.PORTABLE,
            },
            1,
            tag=object(),
        )
    assert "kwargs['tag']" in str(err.value) and "portable JSON" in str(err.value)
    assert client.list_workflows(workflow_ids=[wid]) == []  # nothing half-written


# -- retrieve, send, get_event --------------------------------------------------------------


def test_retrieve_workflow(client: DBOSClient) -> None:
    handle = client.enqueue({"queue_name": "q", "workflow_name": "wf_double"}, 50)
    again = client.retrieve_workflow(handle.workflow_id)
    assert again.get_workflow_id() == handle.workflow_id
    assert again.get_result() == 100


async def test_retrieve_workflow_async(client: DBOSClient) -> None:
    handle = await client.enqueue_async({"queue_name": "q", "workflow_name": "wf_double"}, 51)
    again = await client.retrieve_workflow_async(handle.workflow_id)
    assert await again.get_result() == 102


def test_send_with_idempotency_key_twice_is_received_once(client: DBOSClient) -> None:
    wid = unique()
    handle = client.enqueue({"queue_name": "q", "workflow_name": "wf_recv_all", "workflow_id": wid}, "t", 3, 3)
    client.send(wid, "first", "t", idempotency_key="k1")
    client.send(wid, "first-again", "t", idempotency_key="k1")
    assert handle.get_result() == ["first"]


async def test_send_async_and_get_event_async(client: DBOSClient) -> None:
    wid = unique()
    handle = await client.enqueue_async(
        {"queue_name": "q", "workflow_name": "wf_event_recv", "workflow_id": wid}, "topic"
    )
    assert await client.get_event_async(wid, "status", timeout_seconds=30) == "waiting"
    await client.send_async(wid, "hi", "topic", idempotency_key=f"{wid}-k")
    assert await handle.get_result() == "got:hi"
    assert await client.get_event_async(wid, "status", timeout_seconds=5) == "done"


def test_seed_get_event_and_send(client: DBOSClient) -> None:
    wid = unique()
    handle = client.enqueue({"queue_name": "q", "workflow_name": "wf_event_recv", "workflow_id": wid}, "t")
    assert client.get_event(wid, "status", timeout_seconds=20) == "waiting"
    client.send(wid, "hello", "t", idempotency_key=f"{wid}-1")
    assert handle.get_result() == "got:hello"


def test_get_event_returns_none_on_timeout(client: DBOSClient) -> None:
    wid = client.enqueue({"queue_name": "q", "workflow_name": "wf_double"}, 1).workflow_id
    started = time.monotonic()
    assert client.get_event(wid, "never-published", timeout_seconds=1.5) is None
    assert 1.0 <= time.monotonic() - started < 10


async def test_fifty_async_calls_share_one_event_loop(client: DBOSClient) -> None:
    """≥ 50 async twins awaited at once on one loop, each doing real DB work."""
    options: EnqueueOptions = {"queue_name": "q", "workflow_name": "wf_double"}
    handles = await asyncio.gather(*(client.enqueue_async(options, i) for i in range(60)))
    assert len({h.workflow_id for h in handles}) == 60
    retrieved = await asyncio.gather(*(client.retrieve_workflow_async(h.workflow_id) for h in handles))
    results = await asyncio.gather(*(h.get_result() for h in retrieved))
    assert results == [2 * i for i in range(60)]
    events = await asyncio.gather(*(client.get_event_async(h.workflow_id, "none", 0.5) for h in handles))
    assert events == [None] * 60


# -- SQLite and errors -----------------------------------------------------------------------


def test_sqlite_system_database(tmp_path: Path) -> None:
    db = tmp_path / "app.sqlite"
    worker = Worker(f"sqlite:///{db}", ROOT / "tests" / "dbos_app.py", executor_id="sqlite-worker")
    try:
        worker.wait_ready()
        client = DBOSClient(system_database_url=f"sqlite:///{db}")
        try:
            assert client.enqueue({"queue_name": "q", "workflow_name": "wf_double"}, 2).get_result() == 4
        finally:
            client.destroy()
        seed_style = DBOSClient(f"sqlite:///{db}")  # a SQLite database_url is the system DB itself
        try:
            assert seed_style.enqueue({"queue_name": "q", "workflow_name": "wf_double"}, 3).get_result() == 6
        finally:
            seed_style.destroy()
    finally:
        worker.stop()


def test_unreachable_server_names_host_port_database_without_password() -> None:
    with pytest.raises(DBOSConnectionError) as err:
        DBOSClient("postgresql://someone:s3cretpw@127.0.0.1:1/app", retry_connection_errors=False)
    message = str(err.value)
    assert "127.0.0.1:1/app_dbos_sys" in message and "s3cretpw" not in message


def test_clear_errors_keep_the_driver_types_code_written_against_the_documented_api_catches(
    postgres_server_url: str, tmp_path: Path
) -> None:
    """README, "Errors": each clearer error is still the SQLAlchemy error dbos.DBOSClient raises there."""
    import pickle

    with pytest.raises(sa.exc.OperationalError) as unreachable:  # the documented example's server is gone
        DBOSClient("postgresql://postgres:pw@localhost:5433/nodb", retry_connection_errors=False)
    assert isinstance(unreachable.value, DBOSConnectionError) and isinstance(unreachable.value, sa.exc.DBAPIError)
    assert str(unreachable.value).startswith(
        "cannot connect to the DBOS system database at localhost:5433/nodb_dbos_sys"
    )
    assert unreachable.value.orig is not None and "pw@" not in str(unreachable.value)
    # It pickles (Airflow and multiprocessing do) as the plain clear error, message intact.
    again = pickle.loads(pickle.dumps(unreachable.value))
    assert type(again) is DBOSConnectionError and str(again) == str(unreachable.value)

    missing_db = sa.make_url(postgres_server_url).set(database="no_such_db_here")
    with pytest.raises(sa.exc.OperationalError) as err:
        DBOSClient(missing_db.render_as_string(hide_password=False), retry_connection_errors=False)
    assert isinstance(err.value, DBOSConnectionError)

    # Raised from the engine's handle_error hook, on a statement: Postgres says ProgrammingError ...
    client = DBOSClient(system_database_url=postgres_server_url, retry_connection_errors=False)
    try:
        with pytest.raises(sa.exc.ProgrammingError) as no_tables:
            client.enqueue({"queue_name": "q", "workflow_name": "wf_double"}, 1)
        assert isinstance(no_tables.value, DBOSSchemaMissingError)
        with pytest.raises(sa.exc.ProgrammingError):
            client.list_workflows(load_input=False, load_output=False)
    finally:
        client.destroy()
    # ... and SQLite OperationalError.
    path = tmp_path / "empty.sqlite"
    path.touch()
    sqlite = DBOSClient(system_database_url=f"sqlite:///{path}")
    try:
        with pytest.raises(sa.exc.OperationalError) as sqlite_err:
            sqlite.list_workflows(load_input=False, load_output=False)
        assert isinstance(sqlite_err.value, DBOSSchemaMissingError)
        assert f"no DBOS system tables in {path}" in str(sqlite_err.value)
    finally:
        sqlite.destroy()


def test_missing_database_is_named(postgres_server_url: str) -> None:
    url = sa.make_url(postgres_server_url).set(database="no_such_db_here").render_as_string(hide_password=False)
    with pytest.raises(DBOSConnectionError, match="no_such_db_here_dbos_sys.*does not exist"):
        DBOSClient(url, retry_connection_errors=False)


def test_database_without_dbos_tables(postgres_server_url: str) -> None:
    client = DBOSClient(system_database_url=postgres_server_url, retry_connection_errors=False)
    try:
        with pytest.raises(DBOSSchemaMissingError) as err:
            client.enqueue({"queue_name": "q", "workflow_name": "wf_double"}, 1)
        db = sa.make_url(postgres_server_url).database
        assert f"no DBOS system tables in {db}.dbos" in str(err.value)
        assert "launch the DBOS application against it once" in str(err.value)
    finally:
        client.destroy()


def test_client_import_is_cheap_and_connects_nothing() -> None:
    code = "import dbos_airflow, dbos_orchestrator.client, dbos_airflow.hooks.dbos, threading; print(threading.active_count())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"


def test_a_missing_schema_is_not_a_connection_outage(tmp_path: Path) -> None:
    """docs/architecture.md, "How waiting works": waits outlive outages, not a wrong database."""
    from dbos_orchestrator.waiting.probe import is_transient_db_error

    path = tmp_path / "empty.sqlite"
    path.touch()
    sqlite = DBOSClient(system_database_url=f"sqlite:///{path}")
    try:
        with pytest.raises(DBOSSchemaMissingError) as err:
            sqlite.list_workflows(load_input=False, load_output=False)
    finally:
        sqlite.destroy()
    assert isinstance(err.value, sa.exc.OperationalError) and not is_transient_db_error(err.value)
    with pytest.raises(DBOSConnectionError) as down:
        DBOSClient("postgresql://postgres@127.0.0.1:1/app", retry_connection_errors=False)
    assert is_transient_db_error(down.value)
