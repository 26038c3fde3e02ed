"""A DBOS worker whose spans go to an OTLP receiver on loopback, on a system database of its own.

Its own database: the session's worker (tests/conftest.py) exports no spans and would dequeue
these workflows too. The connection ``dbos_otel`` (tests/dags/tracing) points at it, with a
``trace_url`` extra (:data:`TRACE_URL`).
"""

from __future__ import annotations

import json
import os
import secrets
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from conftest import ROOT, Worker, connection_json
from dbos_testkit.otlp_receiver import OTLPReceiver

if TYPE_CHECKING:
    from collections.abc import Iterator

TRACE_URL = "https://traces.example/trace/{trace_id}"  # dbos_otel's link to a trace UI


@pytest.fixture(scope="session")
def otlp_receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="session")
def traced_system_database_url(postgres_server_url: str) -> Iterator[str]:
    """A system database this fixture names (the worker creates it) and drops."""
    server = sa.make_url(postgres_server_url)
    name = f"dbos_airflow_otel_{secrets.token_hex(4)}_dbos_sys"
    yield server.set(database=name).render_as_string(hide_password=False)
    engine = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def traced_worker(traced_system_database_url: str, otlp_receiver: OTLPReceiver) -> Iterator[Worker]:
    """tests/dbos_app.py with OTLP export on (``DBOS_TEST_OTLP_TRACES_ENDPOINT``), and ``dbos_otel``."""
    worker = Worker(
        traced_system_database_url,
        ROOT / "tests" / "dbos_app.py",
        executor_id="otel-worker",
        DBOS_TEST_OTLP_TRACES_ENDPOINT=otlp_receiver.endpoint,
    )
    worker.wait_ready()
    conn = {**json.loads(connection_json(traced_system_database_url)), "extra": {"trace_url": TRACE_URL}}
    os.environ["AIRFLOW_CONN_DBOS_OTEL"] = json.dumps(conn)
    yield worker
    os.environ.pop("AIRFLOW_CONN_DBOS_OTEL", None)
    worker.stop()
