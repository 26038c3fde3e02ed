"""DBOSHook against a real DBOS worker and Postgres: connections, errors, async twins, serialization."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from airflow.exceptions import AirflowNotFoundException
from conftest import ROOT, Worker, unique
from dbos_orchestrator.exceptions import DBOSOptionsError

from dbos_airflow.hooks.connection import DBOSConnectionSettings
from dbos_airflow.hooks.dbos import DBOSHook

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

SECRET = "Zq7-hook-s3cret-Pw"  # distinctive: must never show up in messages or logs


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sql(url: str, query: str, **params: Any) -> list[Any]:
    engine = sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(query), params))
    finally:
        engine.dispose()


def _row_serialization(system_database_url: str, workflow_id: str) -> str:
    rows = _sql(
        system_database_url,
        "SELECT serialization FROM dbos.workflow_status WHERE workflow_uuid = :wid",
        wid=workflow_id,
    )
    assert len(rows) == 1, f"no workflow_status row for {workflow_id}"
    return str(rows[0][0])


@pytest.fixture
def hook(dbos_conn: str) -> Iterator[DBOSHook]:
    h = DBOSHook(dbos_conn)
    yield h
    h.close()


@pytest.fixture
def capture_dbos_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog that also sees the ``dbos`` logger (DBOS may turn its propagation off)."""
    dbos_logger = logging.getLogger("dbos")
    dbos_logger.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="dbos")
    try:
        yield caplog
    finally:
        dbos_logger.removeHandler(caplog.handler)


# -- connection forms ----------------------------------------------------------------------


def test_uri_connection_end_to_end(
    system_database_url: str, dbos_worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = sa.make_url(system_database_url)
    uri = f"dbos://{url.username}:pw@{url.host}:{url.port or 5432}/{url.database}?dbos_system_schema=dbos"
    monkeypatch.setenv("AIRFLOW_CONN_DBOS_URI", uri)
    with DBOSHook("dbos_uri") as hook:
        assert hook.settings.dbos_system_schema == "dbos"
        assert hook.settings.serialization == "portable"
        handle = hook.enqueue({"queue_name": "q", "workflow_name": "wf_double"}, 21)
        assert handle.get_result() == 42
        assert hook.get_client().target == f"{url.host}:{url.port or 5432}/{url.database}"


def test_json_connection_end_to_end(hook: DBOSHook, system_database_url: str) -> None:
    wid = unique()
    handle = hook.enqueue({"queue_name": "q", "workflow_name": "wf_echo", "workflow_id": wid}, 1, "a", k=[1, 2])
    assert handle.get_workflow_id() == wid
    assert handle.get_result() == {"args": [1, "a"], "kwargs": {"k": [1, 2]}}
    assert hook.retrieve_workflow(wid).get_result() == {"args": [1, "a"], "kwargs": {"k": [1, 2]}}
    status = hook.get_workflow_status(wid)
    assert status is not None and status["status"] == "SUCCESS"


def test_airflow_exported_uri_round_trips_typed_extras(
    system_database_url: str, dbos_worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the UI saves (typed extras) and what the API server exports for the Test button (a URI) both work."""
    from airflow.models.connection import Connection

    url = sa.make_url(system_database_url)
    extra = {
        "dbos_system_schema": "dbos",
        "connect_timeout": 5,
        "serialization": "portable",
        "use_listen_notify": False,
        "application_name": None,
        "system_database_url": "",
    }
    conn = Connection(
        conn_id="dbos_ui",
        conn_type="dbos",
        host=url.host,
        port=url.port or 5432,
        login=url.username,
        password="p@ss:w/rd",
        schema=url.database,
        extra=json.dumps(extra),
    )
    monkeypatch.setenv("AIRFLOW_CONN_DBOS_UI", conn.get_uri())
    with DBOSHook("dbos_ui") as hook:
        settings = hook.settings
        assert settings.connect_timeout == 5
        assert settings.use_listen_notify is False
        assert sa.make_url(settings.system_database_url).password == "p@ss:w/rd"
        assert "p@ss:w/rd" not in repr(settings)
        assert hook.enqueue({"queue_name": "q", "workflow_name": "wf_double"}, 4).get_result() == 8
    # The API server's Test button: Connection.test_connection() -> hook.test_connection().
    ok, message = conn.test_connection()
    assert ok, message
    assert url.database in message


# -- bad settings --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "names"),
    [
        ({"system_schema": "dbos"}, ["system_schema", "dbos_system_schema"]),  # typo of an extra
        ({"serialization": "xml"}, ["serialization", "'xml'", "portable", "pickle"]),
        ({"connect_timeout": -1}, ["connect_timeout", "-1"]),
        ({"connect_timeout": "soon"}, ["connect_timeout", "'soon'"]),
        ({"use_listen_notify": "maybe"}, ["use_listen_notify", "'maybe'"]),
        ({"system_database_url": f"notaurl{SECRET}"}, ["system_database_url", "not a database URL"]),
        ({"system_database_url": f"mysql://u:{SECRET}@h/db"}, ["system_database_url", "mysql://u:***@h/db"]),
    ],
)
def test_bad_extras_name_the_field(extra: dict[str, Any], names: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_DBOS_BAD",
        json.dumps(
            {"conn_type": "dbos", "host": "127.0.0.1", "password": SECRET, "schema": "x_dbos_sys", "extra": extra}
        ),
    )
    hook = DBOSHook("dbos_bad")  # constructing is fine: nothing is read yet
    with pytest.raises(DBOSOptionsError) as err:
        hook.get_client()
    message = str(err.value)
    assert "'dbos_bad'" in message
    for name in names:
        assert name in message
    assert SECRET not in message
    ok, tested = hook.test_connection()
    assert not ok and tested == message


def test_missing_database_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_DBOS_NODB", "dbos://postgres@127.0.0.1:5432")
    with pytest.raises(DBOSOptionsError, match="names no database.*Database field.*system_database_url"):
        DBOSHook("dbos_nodb").get_client()


def test_fractional_connect_timeout_rounds_up_never_to_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    """libpq reads connect_timeout=0 as 'wait forever'."""
    monkeypatch.setenv("AIRFLOW_CONN_DBOS_FAST", "dbos://postgres@127.0.0.1:5432/x_dbos_sys?connect_timeout=0.5")
    settings = DBOSHook("dbos_fast").settings
    assert settings.connect_timeout == 0.5
    assert sa.make_url(settings.system_database_url).query["connect_timeout"] == "1"


# -- laziness ------------------------------------------------------------------------------


def test_hook_construction_is_lazy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_NO_SUCH_DBOS_CONN", raising=False)
    hook = DBOSHook("no_such_dbos_conn")  # no connection, no database: constructing must still work
    assert hook._client is None and hook._settings is None
    with pytest.raises(AirflowNotFoundException, match="no_such_dbos_conn"):
        hook.get_client()
    # A connection to a closed port: constructing and closing never touch it.
    monkeypatch.setenv("AIRFLOW_CONN_DBOS_CLOSED", f"dbos://u:{SECRET}@127.0.0.1:{_closed_port()}/x_dbos_sys")
    closed = DBOSHook("dbos_closed")
    closed.close()
    with closed:
        pass
    assert closed._client is None and closed._settings is None


def test_close_releases_and_hook_is_reusable(hook: DBOSHook) -> None:
    first = hook.get_client()
    assert hook.get_client() is first
    hook.close()
    assert hook._client is None
    assert hook.enqueue({"queue_name": "q", "workflow_name": "wf_double"}, 3).get_result() == 6
    assert hook.get_client() is not first


# -- test_connection -----------------------------------------------------------------------


def test_test_connection_succeeds_on_the_workers_database(hook: DBOSHook, system_database_url: str) -> None:
    ok, message = hook.test_connection()
    assert ok, message
    url = sa.make_url(system_database_url)
    assert f"{url.host}:{url.port or 5432}/{url.database}" in message
    assert "'dbos'" in message
    assert hook._client is None  # test_connection closes what it opened


def test_test_connection_unreachable_server_hides_password(
    monkeypatch: pytest.MonkeyPatch, capture_dbos_logs: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    port = _closed_port()
    monkeypatch.setenv(
        "AIRFLOW_CONN_DBOS_DOWN",
        json.dumps(
            {
                "conn_type": "dbos",
                "host": "127.0.0.1",
                "port": port,
                "login": "someone",
                "password": SECRET,
                "schema": "down_dbos_sys",
                "extra": {"connect_timeout": 3},
            }
        ),
    )
    started = time.monotonic()
    ok, message = DBOSHook("dbos_down").test_connection()
    assert not ok
    assert time.monotonic() - started < 30
    assert f"cannot connect to the DBOS system database at 127.0.0.1:{port}/down_dbos_sys" in message
    assert "refused" in message.lower()  # the driver's reason
    assert "no DBOS system tables" not in message
    out, err = capfd.readouterr()
    assert capture_dbos_logs.records, "DBOS logged nothing: the log check below would prove nothing"
    for text in (message, capture_dbos_logs.text, out, err):
        assert SECRET not in text


def test_test_connection_database_without_dbos_tables(
    postgres_server_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capture_dbos_logs: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    name = f"empty_{unique('db').replace('-', '_')}"
    server = sa.make_url(postgres_server_url)
    admin = sa.create_engine(server.set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        monkeypatch.setenv(
            "AIRFLOW_CONN_DBOS_EMPTY",
            json.dumps(
                {
                    "conn_type": "dbos",
                    "host": server.host,
                    "port": server.port or 5432,
                    "login": server.username,
                    "password": SECRET,
                    "schema": name,
                }
            ),
        )
        ok, message = DBOSHook("dbos_empty").test_connection()
        assert not ok
        assert f"no DBOS system tables in {name}.dbos" in message
        assert "launch the DBOS application against it once" in message
        assert "cannot connect" not in message
        out, err = capfd.readouterr()
        for text in (message, capture_dbos_logs.text, out, err):
            assert SECRET not in text
        # The wrong schema name gets the same, schema-naming message.
        monkeypatch.setenv(
            "AIRFLOW_CONN_DBOS_EMPTY",
            json.dumps(
                {
                    "conn_type": "dbos",
                    "host": server.host,
                    "port": server.port or 5432,
                    "login": server.username,
                    "schema": name,
                    "extra": {"dbos_system_schema": "elsewhere"},
                }
            ),
        )
        ok, message = DBOSHook("dbos_empty").test_connection()
        assert not ok and f"no DBOS system tables in {name}.elsewhere" in message
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# -- async twins ---------------------------------------------------------------------------


def test_async_twins_run_50_concurrently_with_one_hook(dbos_conn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import dbos_orchestrator.client as client_module

    created: list[object] = []
    original_init = client_module.DBOSClient.__init__

    def counting_init(self: object, *args: Any, **kwargs: Any) -> None:
        created.append(self)
        original_init(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(client_module.DBOSClient, "__init__", counting_init)
    n = 50
    in_flight = 0
    peak = 0

    async def one(hook: DBOSHook, i: int) -> tuple[str, int]:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            wid = unique(f"async{i}")
            handle = await hook.enqueue_async(
                {"queue_name": "q", "workflow_name": "wf_event_recv", "workflow_id": wid}, f"topic{i}"
            )
            assert handle.get_workflow_id() == wid
            assert await hook.get_event_async(wid, "status", 60) == "waiting"
            await hook.send_async(wid, f"m{i}", f"topic{i}", idempotency_key=f"{wid}-send")
            await hook.send_async(wid, f"m{i}-again", f"topic{i}", idempotency_key=f"{wid}-send")  # deduplicated
            result = await (await hook.retrieve_workflow_async(wid)).get_result()
            assert result == f"got:m{i}"
            double = await hook.enqueue_async({"queue_name": "q", "workflow_name": "wf_double"}, i)
            doubled = await double.get_result()
            return wid, doubled
        finally:
            in_flight -= 1

    async def main() -> list[tuple[str, int]]:
        async with DBOSHook(dbos_conn) as hook:
            results = await asyncio.wait_for(asyncio.gather(*(one(hook, i) for i in range(n))), 240)
            assert await hook.get_event_async(results[0][0], "status", 1) == "done"
            statuses = await hook.get_workflow_statuses_async([wid for wid, _ in results])
        assert hook._client is None  # async with closed it
        assert {s["status"] for s in statuses.values()} == {"SUCCESS"} and len(statuses) == n
        return results

    results = asyncio.run(main())
    assert sorted(d for _, d in results) == [2 * i for i in range(n)]
    assert len({wid for wid, _ in results}) == n
    assert peak == n, f"only {peak} of {n} calls were in flight at once"
    assert len(created) == 1, f"one hook made {len(created)} DBOS clients for {n} concurrent calls"


# -- serialization -------------------------------------------------------------------------


def test_default_serialization_is_portable(hook: DBOSHook, system_database_url: str) -> None:
    wid = unique()
    assert hook.enqueue({"queue_name": "q", "workflow_name": "wf_double", "workflow_id": wid}, 5).get_result() == 10
    assert _row_serialization(system_database_url, wid) == "portable_json"
    rows = hook.get_client().list_workflows(workflow_ids=[wid], load_input=False, load_output=False)
    assert rows[0].status == "SUCCESS"
    # Messages sent through the hook are portable too.
    recv = unique()
    hook.enqueue({"queue_name": "q", "workflow_name": "wf_event_recv", "workflow_id": recv}, "t")
    assert hook.get_event(recv, "status", 60) == "waiting"
    hook.send(recv, {"k": [1, "x"]}, "t")
    assert hook.retrieve_workflow(recv).get_result() == "got:{'k': [1, 'x']}"
    notes = _sql(
        system_database_url,
        "SELECT serialization, message, consumed FROM dbos.notifications WHERE destination_uuid = :wid",
        wid=recv,
    )
    assert len(notes) == 1
    assert notes[0][0] == "portable_json" and json.loads(notes[0][1]) == {"k": [1, "x"]} and notes[0][2] is True
    assert _row_serialization(system_database_url, recv) == "portable_json"


def test_pickle_is_an_explicit_opt_in(
    dbos_conn: str, system_database_url: str, dbos_worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    with DBOSHook(dbos_conn) as hook:  # per call
        wid = unique()
        hook.enqueue(
            {"queue_name": "q", "workflow_name": "wf_double", "workflow_id": wid}, 2, serialization="pickle"
        ).get_result()
        assert _row_serialization(system_database_url, wid) == "py_pickle"
        with pytest.raises(DBOSOptionsError, match="serialization='xml'"):
            hook.enqueue({"queue_name": "q", "workflow_name": "wf_double"}, 2, serialization="xml")
    url = sa.make_url(system_database_url)
    monkeypatch.setenv(
        "AIRFLOW_CONN_DBOS_PICKLE",
        json.dumps(
            {
                "conn_type": "dbos",
                "host": url.host,
                "port": url.port or 5432,
                "login": url.username,
                "schema": url.database,
                "extra": {"serialization": "pickle"},
            }
        ),
    )
    with DBOSHook("dbos_pickle") as hook:  # per connection; a set (not JSON) needs pickle
        wid = unique()
        result = hook.enqueue({"queue_name": "q", "workflow_name": "wf_echo", "workflow_id": wid}, {1, 2}).get_result()
        assert result == {"args": [{1, 2}], "kwargs": {}}
        assert _row_serialization(system_database_url, wid) == "py_pickle"
        # ... and a call can still ask for portable.
        wid = unique()
        hook.enqueue(
            {"queue_name": "q", "workflow_name": "wf_double", "workflow_id": wid}, 1, serialization="portable"
        ).get_result()
        assert _row_serialization(system_database_url, wid) == "portable_json"


# -- SQLite --------------------------------------------------------------------------------


def test_sqlite_connection_via_system_database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "app.sqlite"
    worker = Worker(f"sqlite:///{db}", ROOT / "tests" / "dbos_app.py", executor_id="sqlite-hook-worker")
    try:
        worker.wait_ready()
        monkeypatch.setenv(
            "AIRFLOW_CONN_DBOS_SQLITE",
            json.dumps({"conn_type": "dbos", "extra": {"system_database_url": f"sqlite:///{db}"}}),
        )
        with DBOSHook("dbos_sqlite") as hook:
            ok, message = hook.test_connection()
            assert ok, message
            assert str(db) in message and "schema" not in message
            wid = unique()
            handle = hook.enqueue({"queue_name": "q", "workflow_name": "wf_event_recv", "workflow_id": wid}, "t")
            assert hook.get_event(wid, "status", 60) == "waiting"
            hook.send(wid, "hello", "t")
            assert handle.get_result() == "got:hello"
            assert hook.enqueue({"queue_name": "q", "workflow_name": "wf_double"}, 8).get_result() == 16
            status = hook.get_workflow_status(wid)
            assert status is not None and status["status"] == "SUCCESS"
    finally:
        worker.stop()
    # A SQLite file the application never created: the schema-free "no tables" message.
    monkeypatch.setenv(
        "AIRFLOW_CONN_DBOS_SQLITE",
        json.dumps({"conn_type": "dbos", "extra": {"system_database_url": f"sqlite:///{tmp_path / 'never.sqlite'}"}}),
    )
    ok, message = DBOSHook("dbos_sqlite").test_connection()
    assert not ok
    assert "no DBOS system tables" in message and "launch the DBOS application against it once" in message


def test_settings_repr_hides_password() -> None:
    settings = DBOSConnectionSettings(f"postgresql://u:{SECRET}@h:5432/x_dbos_sys")
    assert SECRET not in repr(settings) and SECRET not in str(settings)
    assert "x_dbos_sys" in repr(settings)
