"""A connection's password appears nowhere Airflow keeps or shows things (README, "Connection").

A Postgres role with a password is created on the test server (and dropped afterwards). The
DAG ``dbos_t_credentials`` (tests/dags/operators) runs every path on one connection: an enqueue that
succeeds, workflows that fail and time out (sync and deferred, so triggers are serialized), an
event sensor and a send on a missing workflow, a bad input, a bulk enqueue. It runs through
``dag.test()`` on four connections that all carry a password: the role's own, a wrong one (the
local server trusts, so it still connects), an unreachable host and a missing database.

Then the password must be in no task log line, no XCom, no rendered template field and no
serialized trigger kwargs. Airflow's secrets masker is switched off for the runs, so this is the
provider's own hygiene, not the masker hiding a leak.
"""

from __future__ import annotations

import json
import secrets
import socket
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from conftest import ROOT, unique
from sweeps import kept_by_airflow, leaks, trigger_ids

if TYPE_CHECKING:
    from collections.abc import Iterator

PASSWORD = f"Pw-{secrets.token_hex(10)}"
WRONG_PASSWORD = f"Wrong-{secrets.token_hex(10)}"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _admin(url: str) -> sa.Engine:
    return sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="module")
def role(postgres_server_url: str, system_database_url: str, dbos_worker: object) -> Iterator[str]:
    """A login role with a password and the rights a DBOS client needs on the test system database."""
    name = f"dbos_cred_{secrets.token_hex(4)}"
    server, sysdb = _admin(postgres_server_url), _admin(system_database_url)
    database = sa.make_url(system_database_url).database
    try:
        with server.connect() as conn:
            conn.execute(sa.text(f"CREATE ROLE {name} LOGIN PASSWORD '{PASSWORD}'"))
        with sysdb.connect() as conn:
            for grant in (
                f'GRANT CONNECT ON DATABASE "{database}" TO {name}',
                f"GRANT USAGE ON SCHEMA dbos TO {name}",
                f"GRANT ALL ON ALL TABLES IN SCHEMA dbos TO {name}",
                f"GRANT ALL ON ALL SEQUENCES IN SCHEMA dbos TO {name}",
                f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA dbos TO {name}",
            ):
                conn.execute(sa.text(grant))
        yield name
    finally:
        with sysdb.connect() as conn:
            conn.execute(sa.text(f"DROP OWNED BY {name}"))  # its grants, here and on the database
        with server.connect() as conn:
            conn.execute(sa.text(f"DROP ROLE IF EXISTS {name}"))
        sysdb.dispose()
        server.dispose()


def _connections(role: str, system_database_url: str) -> dict[str, dict[str, Any]]:
    url = sa.make_url(system_database_url)
    real = {"conn_type": "dbos", "host": url.host, "port": url.port or 5432, "login": role, "schema": url.database}
    return {
        "cred_good": {**real, "password": PASSWORD},
        "cred_wrong": {**real, "password": WRONG_PASSWORD},
        "cred_down": {
            **real,
            "host": "127.0.0.1",
            "port": _closed_port(),
            "password": PASSWORD,
            "extra": {"connect_timeout": 2},
        },
        "cred_nodb": {**real, "schema": "no_such_credentials_db_dbos_sys", "password": PASSWORD},
    }


@pytest.fixture
def stop_waiters() -> Iterator[None]:
    """Stop the shared waiters the deferred tasks started on these connections (other tests count them)."""
    yield
    from dbos_orchestrator.waiting.waiter import running_waiters

    for conn_id, waiter in running_waiters().items():
        if conn_id.startswith("cred_"):
            waiter.stop()


def test_password_appears_nowhere(
    role: str,
    system_database_url: str,
    airflow_db: object,
    dbos_conn: str,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    no_masking: None,
    stop_waiters: None,
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    connections = _connections(role, system_database_url)
    for conn_id, conn in connections.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    dag = DagBag(str(ROOT / "tests" / "dags" / "operators")).get_dag("dbos_t_credentials")
    evidence = {
        "cred_good": "ended ERROR: AppError: credential sweep",
        "cred_wrong": "Gave up waiting: DBOS workflow is still",
        "cred_down": f"cannot connect to the DBOS system database at 127.0.0.1:{connections['cred_down']['port']}",
        "cred_nodb": 'database "no_such_credentials_db_dbos_sys" does not exist',
    }
    for conn_id in connections:
        before = trigger_ids()
        capfd.readouterr()
        dr = dag.test(run_conf={"conn": conn_id, "missing": unique("missing")})
        out, err = capfd.readouterr()
        states = {ti.task_id: ti.state for ti in dr.get_task_instances()}
        reachable = conn_id in ("cred_good", "cred_wrong")
        expected_ok = {"ok", "bulk"} if reachable else set()
        assert {t for t, s in states.items() if s == "success"} == expected_ok, (conn_id, states)
        assert evidence[conn_id] in out + err, f"{conn_id}: the failure paths did not run as expected"
        kept = kept_by_airflow(dr, before)
        if reachable:  # the deferred wait really serialized a trigger, and results reached XCom
            assert len(kept["trigger"]) >= 1, kept["trigger"]
            assert any("result=42" in x for x in kept["xcom"]), kept["xcom"]
        assert kept["rendered"], "no rendered template fields were stored: the check would prove nothing"
        found = leaks((PASSWORD, WRONG_PASSWORD), {"task log": (out + err).splitlines(), **kept})
        assert found == [], f"{conn_id}: the password is in {found}"
