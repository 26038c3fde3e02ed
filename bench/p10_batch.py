"""P10: N no-op workflows from Airflow, by dynamic task mapping vs one bulk task that waits.

A real deployment (tests/airflow_stack.py: api-server, scheduler, dag-processor, one
``airflow triggerer``, LocalExecutor, Postgres metadata DB) runs bench/dags/p10_batch.py:

* (a) ``p10_mapped``: ``DBOSEnqueueOperator.partial(wait_for_completion=True, deferrable=True)
  .expand(...)``: one task instance per workflow;
* (b) ``p10_bulk``: one ``DBOSBulkEnqueueOperator(wait_for_completion=True, deferrable=True)``.

Per run: the DAG run's wall time (``dag_run.start_date`` -> ``end_date``), the task instances it
created, the rows the metadata database wrote meanwhile (``pg_stat_database`` inserts + updates
+ deletes of the metadata database, read 11 s after the run so that every backend has flushed
its counters; scheduler heartbeats and the like included), and the statements the Airflow
processes sent to the DBOS system database while the run lasted: the Airflow side connects as
its own Postgres role, counted in ``pg_stat_statements`` (the DBOS worker's statements are not).
Then (b) with ``P10_BIG_N`` (10,000) workflows, against the DBOS workers' own time to run them:
first dequeue (``started_at_epoch_ms``) -> last completion (``completed_at``) of the batch's rows.

Each DAG runs once with ``WARM_UP_N`` workflows before anything is measured (cold starts of the
deployment's first task processes are not what either side costs).

Goals: (b) >= 50x faster than (a) at 1,000; 10,000 through (b) end within 1.2x the workers' time
plus 2 s. ``P10_MAPPED_N`` runs (a) at fewer workflows when time is short (the row says so; the
ratio is then against (b) at the same N, also measured). ``P10_PARALLELISM`` (default 8): the
LocalExecutor's. ``P10_N`` other than 1,000 (``P10_N=5000 P10_BIG_N=0`` for the 5,000 row: mapping needs
``max_map_length`` raised past its default 1,024, done here) is its own run variant in bench/results.md;
``P10_BIG_N=0`` skips (b).
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

import sqlalchemy as sa

from bench.harness import ROOT, Env, Row, bench_env, report

DEFAULT_N = 1000
N = int(os.environ.get("P10_N", str(DEFAULT_N)))
MAPPED_N = int(os.environ.get("P10_MAPPED_N", str(N)))
BIG_N = int(os.environ.get("P10_BIG_N", "10000"))
PARALLELISM = int(os.environ.get("P10_PARALLELISM", "8"))
WARM_UP_N = 10  # one unmeasured run of each DAG first
ROLE = "p10_airflow"  # the Airflow processes' Postgres role on the system database
FLUSH_SECONDS = 11.0  # Postgres backends flush their statistics at least every 10 s when idle


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")


def _airflow_statements(server: str) -> int:
    engine = _engine(server)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text(
                        "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid "
                        "WHERE r.rolname = :role"
                    ),
                    {"role": ROLE},
                ).scalar_one()
            )
    finally:
        engine.dispose()


def _rows_written(server: str, database: str) -> int:
    engine = _engine(server)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text(
                        "SELECT tup_inserted + tup_updated + tup_deleted FROM pg_stat_database WHERE datname = :db"
                    ),
                    {"db": database},
                ).scalar_one()
            )
    finally:
        engine.dispose()


class _Sampler(threading.Thread):
    """``(time.time(), Airflow-side statements so far)`` every 0.5 s while a run lasts."""

    def __init__(self, server: str) -> None:
        super().__init__(daemon=True)
        self.server, self.stop = server, threading.Event()
        self.samples: list[tuple[float, int]] = []

    def run(self) -> None:
        while not self.stop.wait(0.5):
            self.samples.append((time.time(), _airflow_statements(self.server)))

    def rate(self, start: float, end: float) -> float | None:
        """Statements/s between the samples nearest ``start`` and ``end``."""
        inside = [(t, c) for t, c in self.samples if start <= t <= end]
        if len(inside) < 2:
            return None
        (t0, c0), (t1, c1) = inside[0], inside[-1]
        return (c1 - c0) / (t1 - t0)


def _run(stack: Any, env: Env, server: str, dag_id: str, n: int, timeout: float) -> dict[str, Any]:
    meta = sa.make_url(server).set(database=stack.database).render_as_string(hide_password=False)
    stmts0, rows0 = _airflow_statements(server), _rows_written(server, stack.database)
    sampler = _Sampler(server)
    sampler.start()
    run_id = stack.trigger(dag_id, {"n": n})
    state = stack.wait_run(dag_id, run_id, {"success"}, timeout=timeout)
    sampler.stop.set()
    sampler.join()
    engine = _engine(meta)
    try:
        with engine.connect() as conn:
            start, end = conn.execute(
                sa.text("SELECT start_date, end_date FROM dag_run WHERE dag_id = :d AND run_id = :r"),
                {"d": dag_id, "r": run_id},
            ).one()
            tis = int(
                conn.execute(
                    sa.text("SELECT count(*) FROM task_instance WHERE dag_id = :d AND run_id = :r"),
                    {"d": dag_id, "r": run_id},
                ).scalar_one()
            )
            parts = conn.execute(
                sa.text(
                    "SELECT task_id, min(start_date), max(end_date) FROM task_instance "
                    "WHERE dag_id = :d AND run_id = :r GROUP BY task_id"
                ),
                {"d": dag_id, "r": run_id},
            ).all()
            waits = conn.execute(
                sa.text(
                    "SELECT min(start_date), max(end_date) FROM task_instance "
                    "WHERE dag_id = :d AND run_id = :r AND task_id <> 'make_items'"
                ),
                {"d": dag_id, "r": run_id},
            ).one()
    finally:
        engine.dispose()
    stmts1 = _airflow_statements(server)
    time.sleep(FLUSH_SECONDS)
    rows1 = _rows_written(server, stack.database)
    dbos = env.sql(
        "SELECT count(*), min(started_at_epoch_ms), max(completed_at), "
        "count(*) FILTER (WHERE status = 'SUCCESS') FROM dbos.workflow_status WHERE workflow_uuid LIKE :p",
        p=f"{dag_id}:{run_id}:%",
    )[0]
    wall = (end - start).total_seconds()
    # Per task (a mapped task's instances together): start and end, seconds from the run's start.
    tasks = {t: ((t0 - start).total_seconds(), (t1 - start).total_seconds()) for t, t0, t1 in parts}
    return {
        "dag_id": dag_id,
        "n": n,
        "state": state,
        "wall_s": wall,
        "task_instances": tis,
        "tasks": tasks,
        "metadata_rows_written": rows1 - rows0,
        "airflow_statements": stmts1 - stmts0,
        "airflow_statements_per_s": (stmts1 - stmts0) / max(wall, 1e-9),
        "wait_tasks_s": (waits[1] - waits[0]).total_seconds(),
        "workflows": int(dbos[0]),
        "succeeded": int(dbos[3]),
        "dbos_workers_s": (int(dbos[2]) - int(dbos[1])) / 1000 if dbos[1] is not None else None,
        # From the first dequeue to the end of the waiting task(s) / of the DAG run: what the
        # workers' own time is compared with (the enqueue before the first dequeue is not in it).
        "first_dequeue_to_task_end_s": waits[1].timestamp() - int(dbos[1]) / 1000 if dbos[1] is not None else None,
        "first_dequeue_to_run_end_s": end.timestamp() - int(dbos[1]) / 1000 if dbos[1] is not None else None,
        "task_start_to_first_dequeue_s": int(dbos[1]) / 1000 - waits[0].timestamp() if dbos[1] is not None else None,
        # While waiting: from the first dequeue (+0.5 s: the enqueue is over) to the last task's end.
        "airflow_statements_per_s_waiting": sampler.rate(int(dbos[1]) / 1000 + 0.5, waits[1].timestamp())
        if dbos[1] is not None
        else None,
    }


def _rate(run: dict[str, Any]) -> str:
    rate = run["airflow_statements_per_s_waiting"]
    return "n/a (under 1 s)" if rate is None else f"{rate:.0f}/s"


def measure(server: str, env: Env) -> dict[str, Any]:
    from dbos_testkit.airflow_stack import AirflowStack

    url = sa.make_url(env.system_database_url)
    conn = {"conn_type": "dbos", "host": url.host, "port": url.port, "login": ROLE, "schema": url.database}
    stack = AirflowStack(
        ROOT / "bench" / "dags",
        env={
            "AIRFLOW_CONN_DBOS_BENCH": json.dumps(conn),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW__CORE__MAX_MAP_LENGTH": str(max(MAPPED_N, N) + 10),
            "AIRFLOW__TRIGGERER__CAPACITY": str(max(MAPPED_N, N) + 100),
        },
        parallelism=PARALLELISM,
    )
    out: dict[str, Any] = {}
    try:
        stack.start()
        stack.wait_dag("p10_bulk", timeout=240)
        stack.wait_dag("p10_mapped", timeout=240)
        # Warm-up, not measured: the first task processes of a fresh deployment pay cold starts (the first
        # make_items ran 3.1 s, later ones 0.2 s), which fell on whichever run came first, the bulk one.
        for dag_id in ("p10_bulk", "p10_mapped"):
            _run(stack, env, server, dag_id, WARM_UP_N, timeout=600)
        out["bulk"] = _run(stack, env, server, "p10_bulk", N, timeout=600)
        print("P10 (b)", out["bulk"], flush=True)
        if MAPPED_N != N:
            out["bulk_at_mapped_n"] = _run(stack, env, server, "p10_bulk", MAPPED_N, timeout=600)
        out["mapped"] = _run(stack, env, server, "p10_mapped", MAPPED_N, timeout=7200)
        print("P10 (a)", out["mapped"], flush=True)
        if BIG_N:
            out["big"] = _run(stack, env, server, "p10_bulk", BIG_N, timeout=1800)
            print("P10 (b) big", out["big"], flush=True)
    finally:
        stack.stop()
    return out


def _split_row(mapped: dict[str, Any], bulk: dict[str, Any], at: str) -> Row:
    """Where the bulk run's wall time goes: Airflow's part (scheduling, queueing, starting the two task
    processes, ending the run) and the tasks' own; the mapped run's time over Airflow's part is the ratio's
    ceiling, what it would be if the bulk task took no time at all."""
    (items0, items1), (bulk0, bulk1) = bulk["tasks"]["make_items"], bulk["tasks"]["bulk"]
    wall = bulk["wall_s"]
    airflow = wall - (items1 - items0) - (bulk1 - bulk0)
    return Row(
        f"P10 {mapped['n']:,} no-op workflows: the bulk run's wall time, split",
        "",
        f"{wall:.1f} s = Airflow {airflow:.1f} s (run start -> make_items started {items0:.1f} s, -> bulk task "
        f"started {bulk0 - items1:.1f} s, -> run ended {wall - bulk1:.1f} s) + make_items {items1 - items0:.1f} s "
        f"+ bulk task {bulk1 - bulk0:.1f} s (start -> first dequeue {bulk['task_start_to_first_dequeue_s']:.1f} s: "
        "items, enqueue)",
        f"ceiling {mapped['wall_s'] / airflow:.0f}x",
        f"{at}; task instances' start_date/end_date; ceiling = the mapped run's wall time / Airflow's part",
    )


def main() -> None:
    from dbos_testkit import airflow_stack
    from dbos_testkit.private_postgres import PrivatePostgres

    from bench import harness

    pg = PrivatePostgres()
    with (pg.data / "postgresql.conf").open("a") as conf:
        conf.write("shared_preload_libraries = 'pg_stat_statements'\npg_stat_statements.max = 10000\n")
    with pg:
        server = harness.SERVER = airflow_stack.POSTGRES = pg.url("postgres")
        admin = _engine(server)
        with admin.connect() as c:
            c.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))
            c.execute(sa.text(f"CREATE ROLE {ROLE} LOGIN SUPERUSER"))  # trust auth: no password
        admin.dispose()
        with bench_env() as env:
            o = measure(server, env)
    a, b = o["mapped"], o.get("bulk_at_mapped_n", o["bulk"])
    at = f"{MAPPED_N:,} workflows" + ("" if MAPPED_N == N else f" (the mapped run at {MAPPED_N:,}, not {N:,}: time)")
    speedup = a["wall_s"] / b["wall_s"]
    rows = [
        Row(
            f"P10 {MAPPED_N:,} no-op workflows: DAG-run wall time",
            f"{a['wall_s']:.1f} s (dynamic task mapping, deferrable DBOSEnqueueOperator)",
            f"{b['wall_s']:.1f} s (one DBOSBulkEnqueueOperator that waits)",
            f"{speedup:.1f}x faster",
            f"{at}; LocalExecutor parallelism {PARALLELISM}, one run each",
            ">= 50x",
            "met" if speedup >= 50 else "MISSED",
        ),
        Row(
            f"P10 {MAPPED_N:,} no-op workflows: task instances created",
            str(a["task_instances"]),
            str(b["task_instances"]),
            f"{a['task_instances'] / b['task_instances']:.0f}x fewer",
            at,
        ),
        Row(
            f"P10 {MAPPED_N:,} no-op workflows: metadata-DB rows written (inserts+updates+deletes)",
            f"{a['metadata_rows_written']:,}",
            f"{b['metadata_rows_written']:,}",
            f"{a['metadata_rows_written'] / max(b['metadata_rows_written'], 1):.0f}x fewer",
            f"{at}; pg_stat_database of the metadata DB, run start -> 11 s after its end (background included)",
        ),
        Row(
            f"P10 {MAPPED_N:,} no-op workflows: DBOS-db statements from Airflow processes",
            f"{_rate(a)} while waiting; {a['airflow_statements']:,} in all",
            f"{_rate(b)} while waiting; {b['airflow_statements']:,} in all",
            f"{a['airflow_statements'] / max(b['airflow_statements'], 1):.0f}x fewer statements",
            f"{at}; pg_stat_statements of the Airflow side's own role, sampled every 0.5 s; "
            "waiting = first dequeue + 0.5 s -> last task end",
        ),
    ]
    rows.append(_split_row(a, b, at))
    if "bulk_at_mapped_n" in o:
        rows.append(
            Row(
                f"P10 {N:,} no-op workflows through one bulk task: DAG-run wall time",
                "",
                f"{o['bulk']['wall_s']:.1f} s; {o['bulk']['task_instances']} task instances",
                "",
                f"{N:,} workflows",
            )
        )
    if "big" in o:
        rows.append(_big_row(o["big"]))
    if N != DEFAULT_N:  # its own run variant (the N cell's last part) in bench/results.md: the default run's rows stay
        for row in rows:
            row.n += f"; the {N:,}-workflow run"
    report("p10", rows, o)


def _big_row(big: dict[str, Any]) -> Row:
    limit = 1.2 * big["dbos_workers_s"] + 2
    ours_end = big["first_dequeue_to_task_end_s"]
    return Row(
        f"P10 {BIG_N:,} no-op workflows through one bulk task: end vs the DBOS workers' own time",
        f"{big['dbos_workers_s']:.1f} s (first dequeue -> last completion, workflow_status)",
        f"{ours_end:.1f} s first dequeue -> bulk task ended "
        f"(DAG run ended {big['first_dequeue_to_run_end_s']:.1f} s); "
        f"before it: task start -> first dequeue {big['task_start_to_first_dequeue_s']:.1f} s (items, enqueue)",
        f"{ours_end / big['dbos_workers_s']:.2f}",
        f"{big['succeeded']:,} of {BIG_N:,} succeeded; Airflow statements while waiting: {_rate(big)}",
        "<= 1.2x + 2 s",
        "met" if ours_end <= limit else "MISSED",
    )


if __name__ == "__main__":
    main()
