"""What every benchmark needs: a fresh system database, a real DBOS worker, and honest statistics.

Each figure runs in its own process (``python -m bench p3``). :func:`bench_env` creates a fresh
Postgres database ``dbos_airflow_bench_<random>_dbos_sys``, starts ``bench/app.py`` as a DBOS
worker on it (which migrates it), points the Airflow connection ``dbos_bench`` at it, and drops
it afterwards. Postgres: ``$DBOS_BENCH_DATABASE_URL`` (a maintenance-database URL), else
``postgresql://postgres@127.0.0.1:5432/postgres``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import secrets
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from dbos_testkit.child_process import ChildProcess

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent

RESULTS = BENCH / ".results"
CONN_ID = "dbos_bench"
SERVER = os.environ.get("DBOS_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

# Airflow reads its configuration on import: give the benchmark process a private home first.
_HOME = Path(tempfile.mkdtemp(prefix="dbos-airflow-bench-home-"))
os.environ.setdefault("AIRFLOW_HOME", str(_HOME))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{_HOME / 'airflow.db'}")
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")


def engine_for(url: str, **kwargs: Any) -> sa.Engine:
    return sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"), **kwargs)


@dataclass
class Env:
    system_database_url: str
    database: str
    conn_id: str = CONN_ID

    def sql(self, query: str, **params: Any) -> list[Any]:
        engine = engine_for(self.system_database_url)
        try:
            with engine.begin() as conn:
                result = conn.execute(sa.text(query), params)
                return list(result) if result.returns_rows else []
        finally:
            engine.dispose()


class Worker(ChildProcess):
    """bench/app.py as a subprocess; its output is kept for the error message if it dies."""

    def __init__(self, system_database_url: str) -> None:
        env = {**os.environ, "DBOS_SYSTEM_DATABASE_URL": system_database_url, "PYTHONUNBUFFERED": "1"}
        super().__init__("bench DBOS worker", [sys.executable, str(BENCH / "app.py")], env)

    def wait_ready(self, timeout: float = 60) -> None:
        try:
            self.wait_for("BENCH WORKER READY", timeout)
        except RuntimeError:
            self.stop()
            raise


@contextmanager
def bench_env() -> Iterator[Env]:
    """A fresh system database with the bench worker running on it; dropped at the end."""
    database = f"dbos_airflow_bench_{secrets.token_hex(4)}_dbos_sys"
    server = sa.make_url(SERVER)
    url = server.set(database=database).render_as_string(hide_password=False)
    worker = Worker(url)  # DBOS.launch() creates and migrates the database
    try:
        worker.wait_ready()
        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(
            {
                "conn_type": "dbos",
                "host": server.host,
                "port": server.port or 5432,
                "login": server.username,
                "password": server.password,
                "schema": database,
            }
        )
        yield Env(url, database)
    finally:
        worker.stop()
        admin = engine_for(SERVER, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()


# -- measuring ---------------------------------------------------------------------------------


class StatementCounter:
    """Counts statements a SQLAlchemy engine sends (pool pre-pings excluded: see server xacts)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.count = 0
        sa.event.listen(engine, "before_cursor_execute", self._on)

    def _on(self, *_: Any) -> None:
        self.count += 1


def my_postgres_ports() -> set[int]:
    """Local ports of this process' TCP connections to Postgres."""
    import psutil

    port = sa.make_url(SERVER).port or 5432
    return {c.laddr.port for c in psutil.Process().net_connections("tcp") if c.raddr and c.raddr.port == port}


def connections_of_this_process(env: Env) -> int:
    """Server-side count (pg_stat_activity) of connections to the bench database from this process."""
    ports = sorted(my_postgres_ports())  # taken before env.sql connects: the asking connection is not among them
    rows = env.sql(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = :db AND client_port = ANY(:ports)",
        db=env.database,
        ports=ports,
    )
    return int(rows[0][0])


def server_transactions(env: Env) -> int:
    rows = env.sql("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = :db", db=env.database)
    return int(rows[0][0])


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def fmt_s(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


# -- reporting ---------------------------------------------------------------------------------


@dataclass
class Row:
    figure: str
    plain: str
    ours: str
    ratio: str
    n: str
    goal: str = ""
    met: str = ""
    date: str = ""

    def __post_init__(self) -> None:
        self.date = self.date or dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def report(name: str, rows: list[Row], details: dict[str, Any]) -> None:
    """Print the figure's rows and save them for ``python -m bench all`` (bench/.results/<name>.json)."""
    for row in rows:
        print(
            f"{row.figure}: plain {row.plain} | dbos-airflow {row.ours} | ratio {row.ratio} | N {row.n}"
            + (f" | goal {row.goal}: {row.met}" if row.goal else "")
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(
        json.dumps({"rows": [asdict(r) for r in rows], "details": details}, indent=2, default=str)
    )


def latency_figure(
    name: str,
    label: str,
    plain_phase: Any,
    ours_phase: Any,
    *,
    detail: str,
    plain_what: str,
    ours_what: str,
    goal_q: int,
    variant: str = "",
    parts: Callable[[], tuple[list[Row], dict[str, Any]]] | None = None,
) -> None:
    """Run a plain-client phase and a dbos-airflow phase on one bench env; report p50/p99 rows.

    ``plain_phase(client)`` and ``ours_phase(client, conn_id)`` are coroutines returning latencies
    in seconds; the goal (<= 100 ms) applies to percentile ``goal_q``.

    :param variant: the run's variant, appended to the N cell as its last ``; `` part (rows of
        another variant stay in bench/results.md: bench/__main__.py ``merge_results``).
    :param parts: called after the phases, inside the bench env: more rows (e.g. the latency's
        split) and details for the JSON file.
    """
    import asyncio

    import dbos

    with bench_env() as env:
        client = dbos.DBOSClient(system_database_url=env.system_database_url)
        try:
            plain = asyncio.run(plain_phase(client))
            ours = asyncio.run(ours_phase(client, env.conn_id))
            extra_rows, extra_details = parts() if parts is not None else ([], {})
        finally:
            client.destroy()
    rows = []
    for q in (50, 99):
        p, o = percentile(plain, q), percentile(ours, q)
        goal = "<= 100 ms" if q == goal_q else ""
        met = ("met" if o <= 0.1 else "MISSED") if goal else ""
        rows.append(
            Row(
                f"{name.upper()} {label} p{q} {detail}",
                f"{fmt_s(p)} ({plain_what})",
                f"{fmt_s(o)} ({ours_what})",
                f"{o / p:.2f}",
                str(len(ours)) + (f"; {variant}" if variant else ""),
                goal,
                met,
            )
        )
    report(name, rows + extra_rows, {"plain_s": plain, "ours_s": ours, **extra_details})
