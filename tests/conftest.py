"""Test harness: real Postgres, a real DBOS worker process, a real Airflow metadata DB.

Postgres is chosen as docs/architecture.md ("Tests") says: ``$DBOS_TEST_DATABASE_URL``, else a testcontainers
Postgres when a Docker engine answers, else ``postgresql://postgres@127.0.0.1:5432/postgres``.
If none answers, the session fails with a message saying what to start (never skips).

Each session gets its own system database ``dbos_airflow_<random>_dbos_sys`` (dropped at the
end), one DBOS worker subprocess (tests/dbos_app.py) and a temp AIRFLOW_HOME with a SQLite
metadata DB migrated once.

Nothing outlives the suite: every process started from here carries this session's mark in its
environment (dbos_testkit.processes), and the session ends with a check that none is still alive
(they are stopped either way; the check fails the run naming them).

Folders: tests/unit/ (no database, no Airflow run), tests/stack/ (boots an Airflow deployment: marker
``stack``), tests/browser/ (drives the UI in Chromium: marker ``browser``), test DAGs in
tests/dags/<suite>/; the rest (the DBOS worker + ``dag.test()``) at the top.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from dbos_testkit.child_process import ChildProcess
from dbos_testkit.processes import MARKS, leftovers, new_mark, with_mark
from dbos_testkit.tls_server import TLSServer, tls_server

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parent.parent
LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
TESTS = Path(__file__).resolve().parent

# Every process this session starts, at any depth, inherits the session's mark.
SESSION_MARK = new_mark("pytest")
os.environ[MARKS] = with_mark(os.environ, SESSION_MARK)[MARKS]

# Airflow reads its configuration at import time: point it at a private home first.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="dbos-airflow-test-home-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}"
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")
# dag.test() runs only DAGs found in a bundle: the example DAGs and the tests' own DAGs.
os.environ["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = json.dumps(
    [
        {
            "name": name,
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(path)},
        }
        for name, path in (("dags-folder", ROOT / "dags"), ("test-dags", ROOT / "tests" / "dags"))
    ]
)


# The marker each folder's tests carry (select with -m, e.g. ``-m "not stack and not browser"``).
FOLDER_MARKERS = {"stack": "stack", "browser": "browser"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.path))
        if TESTS in path.parents:
            marker = FOLDER_MARKERS.get(path.relative_to(TESTS).parts[0])
            if marker is not None:
                item.add_marker(marker)


@pytest.fixture(scope="session", autouse=True)
def nothing_outlives_the_suite() -> Iterator[None]:
    """At the very end of the session (after every other fixture stopped what it started): fail if a
    process carrying this session's mark is still alive, after stopping it."""
    yield
    left = leftovers(SESSION_MARK)
    if left:
        pytest.fail(
            "processes started by this test session were still alive at its end (now stopped):\n  " + "\n  ".join(left),
            pytrace=False,
        )


def _answers(url: str) -> str | None:
    """None if Postgres at ``url`` answers, else the driver's reason."""
    engine = sa.create_engine(
        sa.make_url(url).set(drivername="postgresql+psycopg"), connect_args={"connect_timeout": 5}
    )
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return None
    except Exception as exc:  # noqa: BLE001 - reported to the user below
        return str(getattr(exc, "orig", exc)).strip()
    finally:
        engine.dispose()


def _docker_postgres() -> tuple[str, object] | None:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env(timeout=3).ping()
    except Exception:  # noqa: BLE001 - no engine: fall through to the local server
        return None
    from testcontainers.postgres import PostgresContainer

    container = PostgresContainer("postgres:16", driver=None).start()
    return container.get_connection_url(), container


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """URL of a Postgres server's maintenance database (``.../postgres``)."""
    tried: list[str] = []
    url = os.environ.get("DBOS_TEST_DATABASE_URL")
    if url:
        reason = _answers(url)
        if reason is None:
            yield url
            return
        tried.append(f"DBOS_TEST_DATABASE_URL={sa.make_url(url).render_as_string(hide_password=True)}: {reason}")
    started = _docker_postgres()
    if started is not None:
        url, container = started
        try:
            yield url
        finally:
            container.stop()  # type: ignore[attr-defined]
        return
    tried.append("testcontainers: no Docker engine answers")
    reason = _answers(LOCAL_POSTGRES)
    if reason is None:
        yield LOCAL_POSTGRES
        return
    tried.append(f"{LOCAL_POSTGRES}: {reason}")
    pytest.fail(
        "No PostgreSQL for the tests. Tried:\n  " + "\n  ".join(tried) + "\nStart one, e.g. "
        "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, or set "
        "DBOS_TEST_DATABASE_URL=postgresql://user:pw@host:5432/postgres",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def app_database_url(postgres_server_url: str) -> Iterator[str]:
    """URL of this session's (notional) application database; its system DB is ``<name>_dbos_sys``.

    The system database is dropped at the end of the session.
    """
    name = f"dbos_airflow_{secrets.token_hex(4)}"
    server = sa.make_url(postgres_server_url)
    yield server.set(database=name).render_as_string(hide_password=False)
    engine = sa.create_engine(server.set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for db in (name, f"{name}_dbos_sys"):
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(scope="session")
def system_database_url(app_database_url: str) -> str:
    url = sa.make_url(app_database_url)
    return url.set(database=f"{url.database}_dbos_sys").render_as_string(hide_password=False)


class Worker(ChildProcess):
    """A DBOS application process (tests/dbos_app.py by default), started at once."""

    def __init__(
        self, system_database_url: str, script: Path, executor_id: str = "test-worker", **env_vars: str
    ) -> None:
        env = {
            **os.environ,
            "DBOS_SYSTEM_DATABASE_URL": system_database_url,
            "DBOS_EXECUTOR_ID": executor_id,
            "PYTHONUNBUFFERED": "1",
            **env_vars,
        }
        super().__init__(f"DBOS worker {executor_id}", [sys.executable, str(script)], env)

    def wait_ready(self, timeout: float = 60) -> None:
        try:
            self.wait_for("WORKER READY", timeout)
        except RuntimeError:
            self.stop()
            raise


@pytest.fixture(scope="session")
def dbos_worker(system_database_url: str) -> Iterator[Worker]:
    """The tests' DBOS application, launched against this session's system database."""
    worker = Worker(system_database_url, ROOT / "tests" / "dbos_app.py")
    worker.wait_ready()
    yield worker
    worker.stop()


def connection_json(system_database_url: str) -> str:
    """A dbos connection in Airflow's JSON form (for ``AIRFLOW_CONN_<ID>``), by its parts."""
    url = sa.make_url(system_database_url)
    conn = {
        "conn_type": "dbos",
        "host": url.host,
        "port": url.port or 5432,
        "login": url.username,
        "password": url.password,
        "schema": url.database,
    }
    return json.dumps(conn)


@pytest.fixture(scope="session")
def dbos_conn(system_database_url: str, dbos_worker: Worker) -> Iterator[str]:
    """``AIRFLOW_CONN_DBOS_DEFAULT`` (JSON form) pointing at the worker's system database."""
    os.environ["AIRFLOW_CONN_DBOS_DEFAULT"] = connection_json(system_database_url)
    yield "dbos_default"
    os.environ.pop("AIRFLOW_CONN_DBOS_DEFAULT", None)


@pytest.fixture
def client(system_database_url: str, dbos_worker: Worker) -> Iterator[object]:
    """A dbos_orchestrator.client.DBOSClient on the worker's system database.

    It writes DBOS portable JSON (as the provider's operators do), so the workflows it starts
    can be read inside Airflow without ``allow_pickle``; tests of pickled rows ask for
    ``serialization_type=WorkflowSerializationFormat.NATIVE`` explicitly.
    """
    from dbos import DBOSPortableJSONSerializer
    from dbos_orchestrator.client import DBOSClient

    c = DBOSClient(
        system_database_url=system_database_url, retry_connection_errors=False, serializer=DBOSPortableJSONSerializer()
    )
    yield c
    c.destroy()


TLS_DATABASE = "tls_dbos_sys"


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSServer]:
    """A private Postgres that speaks only TLS (dbos_testkit.tls_server) with the tests' DBOS worker on it
    (verify-full, client certificate): tests/integration/test_tls.py and the deployment suite's triggerer."""
    with tls_server(tmp_path_factory.mktemp("tls"), TLS_DATABASE) as server:
        worker = Worker(
            server.url("postgres", **server.client_certificate_query()),
            ROOT / "tests" / "dbos_app.py",
            executor_id="tls-worker",
        )
        try:
            worker.wait_ready()
            yield server
        finally:
            worker.stop()


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite Airflow metadata DB in this session's AIRFLOW_HOME, for ``dag.test()``."""
    done = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return _AIRFLOW_HOME


@pytest.fixture
def no_masking(monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow's secrets masker registers nothing: a leak would show as the secret itself (the secret
    sweeps check the provider's own hygiene, not the masker hiding a leak)."""
    import airflow._shared.secrets_masker.secrets_masker as core_masker
    import airflow.sdk._shared.secrets_masker.secrets_masker as sdk_masker

    for module in (sdk_masker, core_masker):
        monkeypatch.setattr(module.SecretsMasker, "add_mask", lambda self, secret, name=None: None)


def unique(prefix: str = "wf") -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


@pytest.fixture(scope="module")
def example_system_db(postgres_server_url: str) -> Iterator[str]:
    """A system database of its own for the example app (the tests' app has another version)."""
    name = f"dbos_airflow_example_{secrets.token_hex(3)}_dbos_sys"
    server = sa.make_url(postgres_server_url)
    yield server.set(database=name).render_as_string(hide_password=False)
    engine = sa.create_engine(server.set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()
