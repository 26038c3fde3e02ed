"""P3B: P3 (workflow finishes -> wait returns) and P4 (set_event -> wait returns) through PgBouncer.

The bench worker talks to Postgres directly; the deferrable operators' triggers
(``DBOSWorkflowTrigger``, ``DBOSEventTrigger``) reach it through a private PgBouncer (Debian's
``pgbouncer``, dbos_testkit.pgbouncer) in transaction pooling mode (connection extra
``transaction_pooling=true``: the shared waiter polls every 0.1 s, no LISTEN) and in session pooling
mode (LISTEN kept). Plain: ``get_result()`` / ``get_event()`` of a ``dbos.DBOSClient`` connected
directly, as in P3 and P4. Same workflows, methods and goals as P3 (p50 <= 100 ms) and P4
(p99 <= 100 ms). Each row says what the shared waiter did (its LISTEN round trip's answer, read
after the phase, not assumed from the mode) and the machine's 1-minute load average at the phase's
end (the bench shares its 2 cores).
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import sqlalchemy as sa

from bench import p3_completion_latency, p4_event_latency
from bench.harness import SERVER, Row, bench_env, fmt_s, percentile, report

MODES = {"transaction": "transaction pooling", "session": "session pooling"}
# name, module with plain_phase/ours_phase, what is timed, plain's and ours' way, the goal's percentile
FIGURES = [
    ("completion latency", p3_completion_latency, "workflow returns", "get_result", "DBOSWorkflowTrigger", 50),
    ("event latency", p4_event_latency, "set_event", "get_event", "DBOSEventTrigger", 99),
]


def _connect(conn_id: str, port: int, database: str, transaction_pooling: bool) -> None:
    server = sa.make_url(SERVER)
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(
        {
            "conn_type": "dbos",
            "host": "127.0.0.1",
            "port": port,
            "login": server.username,
            "password": server.password,
            "schema": database,
            "extra": {"transaction_pooling": transaction_pooling},
        }
    )


def _ours(module: Any, client: Any, conn_id: str) -> tuple[list[float], str, float]:
    """The figure's dbos-airflow phase on ``conn_id``: latencies, what the waiter did, the load average."""
    from dbos_orchestrator.waiting.waiter import running_waiters

    ours = asyncio.run(module.ours_phase(client, conn_id))
    waiter = running_waiters()[conn_id]
    how = "LISTEN" if waiter.listening else "polling every 0.1 s"
    waiter.stop()  # the next phase starts a waiter of its own, with its own LISTEN check
    return ours, how, os.getloadavg()[0]


def main() -> None:
    import dbos
    from dbos_testkit.pgbouncer import PgBouncer

    rows: list[Row] = []
    details: dict[str, list[float]] = {}
    with bench_env() as env:
        client = dbos.DBOSClient(system_database_url=env.system_database_url)
        try:
            for name, module, start, plain_what, ours_what, goal_q in FIGURES:
                plain = asyncio.run(module.plain_phase(client))
                details[f"{name} plain_s"] = plain
                for mode, label in MODES.items():
                    conn_id = f"dbos_bench_pgbouncer_{mode}"
                    with PgBouncer(upstream_port=sa.make_url(SERVER).port or 5432, pool_mode=mode) as bouncer:
                        _connect(conn_id, bouncer.port, env.database, mode == "transaction")
                        ours, how, load = _ours(module, client, conn_id)
                    details[f"{name} ours_{mode}_s"] = ours
                    for q in (50, 99):
                        p, o = percentile(plain, q), percentile(ours, q)
                        goal = "<= 100 ms" if q == goal_q else ""
                        rows.append(
                            Row(
                                f"P3B {name} p{q} through PgBouncer ({start} -> wait returns)",
                                f"{fmt_s(p)} ({plain_what}, direct)",
                                f"{fmt_s(o)} ({ours_what})",
                                f"{o / p:.2f}",
                                f"{len(ours)}; load average {load:.1f} on 2 cores; {label}: {how}",
                                goal,
                                ("met" if o <= 0.1 else "MISSED") if goal else "",
                            )
                        )
        finally:
            client.destroy()
    report("p3b", rows, details)


if __name__ == "__main__":
    main()
