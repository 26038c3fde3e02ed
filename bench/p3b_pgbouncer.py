"""P3B: P3 (workflow finishes -> wait returns) with the waits going through PgBouncer.

The bench worker talks to Postgres directly; the deferrable operators' ``DBOSWorkflowTrigger``
reaches it through a private PgBouncer (Debian's ``pgbouncer``, dbos_testkit.pgbouncer) in
transaction pooling mode (connection extra ``transaction_pooling=true``: the shared waiter polls
every 0.1 s, no LISTEN) and in session pooling mode. Plain: ``get_result()`` of a
``dbos.DBOSClient`` connected directly, as in P3. Same workflows and method as P3.
"""

from __future__ import annotations

import asyncio
import json
import os

import sqlalchemy as sa

from bench.harness import SERVER, Row, bench_env, fmt_s, percentile, report
from bench.p3_completion_latency import ours_phase, plain_phase

MODES = {"transaction": "transaction pooling", "session": "session pooling"}


def main() -> None:
    import dbos
    from dbos_testkit.pgbouncer import PgBouncer

    server = sa.make_url(SERVER)
    rows: list[Row] = []
    details: dict[str, list[float]] = {}
    with bench_env() as env:
        client = dbos.DBOSClient(system_database_url=env.system_database_url)
        try:
            plain = asyncio.run(plain_phase(client))
            details["plain_s"] = plain
            for mode, label in MODES.items():
                with PgBouncer(upstream_port=server.port or 5432, pool_mode=mode) as bouncer:
                    conn_id = f"dbos_bench_pgbouncer_{mode}"
                    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(
                        {
                            "conn_type": "dbos",
                            "host": "127.0.0.1",
                            "port": bouncer.port,
                            "login": server.username,
                            "password": server.password,
                            "schema": env.database,
                            "extra": {"transaction_pooling": mode == "transaction"},
                        }
                    )
                    ours = asyncio.run(ours_phase(client, conn_id))
                details[f"ours_{mode}_s"] = ours
                for q in (50, 99):
                    p, o = percentile(plain, q), percentile(ours, q)
                    rows.append(
                        Row(
                            f"P3B completion latency p{q} through PgBouncer (workflow returns -> wait returns)",
                            f"{fmt_s(p)} (get_result, direct)",
                            f"{fmt_s(o)} (DBOSWorkflowTrigger)",
                            f"{o / p:.2f}",
                            f"{len(ours)}; {label}",
                        )
                    )
        finally:
            client.destroy()
    report("p3b", rows, details)


if __name__ == "__main__":
    main()
