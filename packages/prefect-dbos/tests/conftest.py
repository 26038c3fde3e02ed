"""Test harness of prefect-dbos: a real Prefect test server, real Postgres, a real DBOS worker.

* Prefect: one ``prefect_test_harness`` for the session (a real API server on SQLite in a temp
  dir), ``PREFECT_HOME`` a temp dir, analytics off, ``PREFECT_TEST_MODE=1``. No Pillow.
* Postgres: ``$DBOS_TEST_DATABASE_URL``, else ``postgresql://postgres@127.0.0.1:5432/postgres``;
  if none answers the session fails saying what to start (never skips).
* DBOS: the repository's test application (``tests/dbos_app.py``) as a worker subprocess on a
  fresh system database ``prefect_dbos_<random>_dbos_sys``, dropped at the end.
* Nothing outlives the session: every process it starts carries its mark (``dbos_testkit.processes``);
  one still alive at the end fails the run.
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

# Prefect reads its settings at import time: a private home, no telemetry, test mode.
_HOME = Path(tempfile.mkdtemp(prefix="prefect-dbos-test-home-"))
os.environ["PREFECT_HOME"] = str(_HOME)
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_TEST_MODE"] = "1"
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")

import pytest  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from dbos_testkit.child_process import ChildProcess  # noqa: E402
from dbos_testkit.processes import MARKS, leftovers, new_mark, with_mark  # noqa: E402

PACKAGE = Path(__file__).resolve().parent.parent
ROOT = PACKAGE.parent.parent

if TYPE_CHECKING:
    from collections.abc import Iterator

    from prefect_dbos import DBOSSystemDatabase

LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
QUEUE = "q"  # a queue the test application's worker listens on

# Every process this session starts (the Prefect server, the DBOS worker), at any depth, inherits the mark.
SESSION_MARK = new_mark("pytest-prefect")
os.environ[MARKS] = with_mark(os.environ, SESSION_MARK)[MARKS]


@pytest.fixture(scope="session", autouse=True)
def nothing_outlives_the_suite() -> Iterator[None]:
    """Torn down last (the other session fixtures depend on it): fail if a process carrying this
    session's mark is still alive, after stopping it."""
    yield
    left = leftovers(SESSION_MARK)
    if left:
        pytest.fail(
            "processes started by this test session were still alive at its end (now stopped):\n  " + "\n  ".join(left),
            pytrace=False,
        )


@pytest.fixture(scope="session", autouse=True)
def prefect_server(nothing_outlives_the_suite: None) -> Iterator[str]:
    """The session's Prefect API server; its URL."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=300):
        yield str(PREFECT_API_URL.value())


def _answers(url: str) -> str | None:
    engine = sa.create_engine(
        sa.make_url(url).set(drivername="postgresql+psycopg"), connect_args={"connect_timeout": 5}
    )
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return None
    except Exception as exc:  # noqa: BLE001 - reported below
        return str(getattr(exc, "orig", exc)).strip()
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """URL of a Postgres server's maintenance database."""
    tried = []
    for url in filter(None, (os.environ.get("DBOS_TEST_DATABASE_URL"), LOCAL_POSTGRES)):
        reason = _answers(url)
        if reason is None:
            return url
        tried.append(f"{sa.make_url(url).render_as_string(hide_password=True)}: {reason}")
    pytest.fail(
        "No PostgreSQL for the tests. Tried:\n  " + "\n  ".join(tried) + "\nStart one, e.g. "
        "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, or set "
        "DBOS_TEST_DATABASE_URL=postgresql://user:pw@host:5432/postgres",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def system_database_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh system database for the session (DBOS creates it), dropped at the end."""
    name = f"prefect_dbos_{secrets.token_hex(4)}_dbos_sys"
    server = sa.make_url(postgres_server_url)
    yield server.set(database=name).render_as_string(hide_password=False)
    from prefect_dbos.database import close_clients

    close_clients()
    engine = sa.create_engine(server.set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


class Worker(ChildProcess):
    """The repository's test DBOS application (tests/dbos_app.py), started at once."""

    def __init__(self, system_database_url: str, **env_vars: str) -> None:
        env = {
            **os.environ,
            "DBOS_SYSTEM_DATABASE_URL": system_database_url,
            "DBOS_EXECUTOR_ID": "prefect-test-worker",
            "PYTHONUNBUFFERED": "1",
            **env_vars,
        }
        super().__init__("DBOS worker", [sys.executable, str(ROOT / "tests" / "dbos_app.py")], env)


@pytest.fixture(scope="session")
def dbos_worker(system_database_url: str) -> Iterator[Worker]:
    worker = Worker(system_database_url)
    try:
        worker.wait_for("WORKER READY", 90)
    except RuntimeError:
        worker.stop()
        raise
    yield worker
    worker.stop()


@pytest.fixture(scope="session")
def database(system_database_url: str, dbos_worker: Worker) -> DBOSSystemDatabase:
    """The system database block (portable JSON, no pickles)."""
    from prefect_dbos import DBOSSystemDatabase

    return DBOSSystemDatabase(system_database_url=system_database_url)


@pytest.fixture(scope="session")
def rows(system_database_url: str, dbos_worker: Worker) -> Iterator[sa.Engine]:
    """An engine on the system database, to count workflow rows."""
    engine = sa.create_engine(sa.make_url(system_database_url).set(drivername="postgresql+psycopg"))
    yield engine
    engine.dispose()


def workflow_rows(engine: sa.Engine, prefix: str) -> list[tuple[str, str]]:
    """``(workflow id, status)`` of every workflow whose id starts with ``prefix``."""
    with engine.connect() as conn:
        result = conn.execute(
            sa.text("SELECT workflow_uuid, status FROM dbos.workflow_status WHERE workflow_uuid LIKE :p ORDER BY 1"),
            {"p": prefix.replace("_", r"\_") + "%"},
        )
        return [(r[0], r[1]) for r in result]


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
