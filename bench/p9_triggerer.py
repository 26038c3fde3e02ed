"""P9: 1,000 deferred DBOS tasks in one real triggerer process, beside 1,000 plain get_result() pollers.

Ours: a real Airflow deployment (tests/airflow_stack.py: api-server, scheduler, dag-processor,
one ``airflow triggerer``, LocalExecutor, Postgres metadata DB) runs bench/dags/p9_deferred.py,
whose 1,000 tasks start deferred on ``DBOSWorkflowTrigger`` (``start_from_trigger``: no worker
runs before the wait). Their workflows ``p9-<i>`` (bench/app.py ``sleep_until_stamp``) all end
at one wall-clock time and return ``time.time()`` just before returning. While nothing changes
(a ``WINDOW``-second window once all 1,000 triggers run) we count server transactions on the
bench database (``pg_stat_database``; the waiter runs in autocommit, one statement = one
transaction) minus those of a baseline window just before the run (the worker's own polling),
and the triggerer's connections to it (``pg_stat_activity`` rows on the ports of the triggerer's
process tree). Wake-up = the triggerer's "Trigger fired event" log timestamp minus the
workflow's stamp.

Plain: 1,000 ``retrieve_workflow_async(id).get_result()`` on one ``dbos.DBOSClient`` (defaults)
in this process; statements counted on its engine; wake-up = returned - stamp.
Goals (ours): <= 20 statements/s while nothing changes, p99 wake-up <= 0.5 s. Both databases
live on a private Postgres server the figure starts (tests/private_postgres.py).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import sys
import time
from typing import Any

from bench.harness import (
    ROOT,
    Env,
    Row,
    StatementCounter,
    bench_env,
    fmt_s,
    percentile,
    report,
    server_transactions,
)

WAITS = 1000
WINDOW = 10.0
# Seconds over which the 1,000 workflows end: 0 (the default, as in bench/results.md) ends them
# all at once, the worst case for the wake-up; P9_SPREAD=20 spreads them out.
SPREAD = float(os.environ.get("P9_SPREAD", "0"))
QUEUE = "bench"


def _enqueue(client: Any, prefix: str, until: float) -> list[str]:
    """1,000 workflows ending ``SPREAD`` s apart in all, from wall-clock ``until`` on."""
    from dbos import WorkflowSerializationFormat

    ids = []
    for i in range(WAITS):
        end = until + SPREAD * i / WAITS
        options = {
            "workflow_name": "sleep_until_stamp",
            "queue_name": QUEUE,
            "workflow_id": f"{prefix}-{i}",
            "serialization_type": WorkflowSerializationFormat.PORTABLE,
        }
        ids.append(str(client.enqueue(options, end).workflow_id))
    return ids


def _triggerer_connections(env: Env, pid: int) -> int:
    import psutil

    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    import sqlalchemy as sa

    server_port = sa.make_url(env.system_database_url).port or 5432
    ports = sorted(
        {c.laddr.port for p in procs for c in p.net_connections("tcp") if c.raddr and c.raddr.port == server_port}
    )
    if not ports:
        return 0
    rows = env.sql(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = :db AND client_port = ANY(:ports)",
        db=env.database,
        ports=ports,
    )
    return int(rows[0][0])


def ours(env: Env, client: Any) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "tests"))
    from airflow_stack import AirflowStack

    stack = AirflowStack(
        ROOT / "bench" / "dags",
        env={
            "AIRFLOW_CONN_DBOS_BENCH": _conn(env),
            "AIRFLOW__TRIGGERER__CAPACITY": str(WAITS + 100),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        },
        parallelism=2,
    )
    until = time.time() + 600  # set-up (stack, 1,000 deferrals, triggers started) + the window
    _enqueue(client, "p9", until)
    try:
        stack.start()
        stack.wait_dag("p9_deferred", timeout=240)
        x0, b0 = server_transactions(env), time.monotonic()
        time.sleep(WINDOW)  # baseline: the worker's own polling, with 1,000 sleeping workflows
        baseline = (server_transactions(env) - x0) / (time.monotonic() - b0)
        stack.trigger("p9_deferred")

        def all_started() -> bool:
            return sum("starting" in text for text in _trigger_logs(stack).values()) >= WAITS

        stack.wait_until(all_started, 480, "the triggerer started 1,000 triggers", interval=2)
        time.sleep(3)  # let set-up reads finish: measure the steady state
        x1, t1 = server_transactions(env), time.monotonic()
        connections = []
        while time.monotonic() - t1 < WINDOW:
            connections.append(_triggerer_connections(env, stack.pid("triggerer")))
            time.sleep(1)
        xacts = (server_transactions(env) - x1) / (time.monotonic() - t1) - baseline
        if time.time() > until - 5:
            raise RuntimeError("set-up took longer than planned: the workflows ended before the quiet window")
        stamps = _wait_stamps(client, [f"p9-{i}" for i in range(WAITS)], until + 120)
        fired = _fired(stack, timeout=120)
    finally:
        stack.stop()
    latencies = [fired[w] - stamps[w][0] for w in stamps if w in fired]
    # The part after the worker committed SUCCESS (status row's updated_at): the waiter and the triggerer.
    after_commit = [fired[w] - stamps[w][1] for w in stamps if w in fired]
    commit_lag = [stamps[w][1] - stamps[w][0] for w in stamps]
    return {
        "statements_per_s": xacts,
        "baseline_xacts_per_s": baseline,
        "connections": max(connections),
        "latencies": latencies,
        "after_commit": after_commit,
        "commit_lag": commit_lag,
        "fired": len(fired),
    }


def _conn(env: Env) -> str:
    return json.dumps({"conn_type": "dbos", "extra": {"system_database_url": env.system_database_url}})


def _wait_stamps(client: Any, ids: list[str], deadline: float) -> dict[str, tuple[float, float]]:
    """``{id: (returned stamp, status row updated)}`` once every workflow ended."""
    while time.time() < deadline:
        rows = client.list_workflows(workflow_ids=ids, load_input=False, load_output=True)
        if len(rows) == len(ids) and all(r.status == "SUCCESS" for r in rows):
            return {r.workflow_id: (float(r.output), r.updated_at / 1000) for r in rows}
        time.sleep(1)
    raise RuntimeError("the P9 workflows did not all end")


def _trigger_logs(stack: Any) -> dict[str, str]:
    """The triggerer's log of each task's trigger (it goes to the task's log folder, not stdout)."""
    base = stack.home / "logs" / "dag_id=p9_deferred"
    return {str(p): p.read_text(errors="replace") for p in base.glob("run_id=*/task_id=*/attempt=*.log.trigger.*")}


def _fired(stack: Any, timeout: float) -> dict[str, float]:
    """``{workflow_id: time the trigger fired}`` from the "Trigger fired event" records."""
    deadline = time.monotonic() + timeout
    while True:
        fired = {}
        for text in _trigger_logs(stack).values():
            for line in text.splitlines():
                if "Trigger fired event" not in line:
                    continue
                record = json.loads(line)
                wid = re.search(r"'workflow_id': '(p9-\d+)'", str(record.get("result", "")))
                if wid:
                    fired[wid.group(1)] = dt.datetime.fromisoformat(
                        record["timestamp"].replace("Z", "+00:00")
                    ).timestamp()
        if len(fired) >= WAITS or time.monotonic() > deadline:
            return fired
        time.sleep(2)


async def plain(env: Env, client: Any) -> dict[str, Any]:
    counter = StatementCounter(client._sys_db.engine)
    until = time.time() + 25
    ids = await asyncio.to_thread(_enqueue, client, "plain", until)
    started = 0

    async def one(workflow_id: str) -> float:
        nonlocal started
        handle = await client.retrieve_workflow_async(workflow_id)
        started += 1
        stamp = await handle.get_result()
        return time.time() - float(stamp)

    tasks = [asyncio.create_task(one(w)) for w in ids]
    while started < WAITS:
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)
    s0, t0 = counter.count, time.monotonic()
    await asyncio.sleep(WINDOW)
    stmts = (counter.count - s0) / (time.monotonic() - t0)
    if time.time() > until:
        raise RuntimeError("the plain pollers' workflows ended before the quiet window")
    latencies = list(await asyncio.gather(*tasks))
    return {"statements_per_s": stmts, "latencies": latencies}


def main() -> None:
    import dbos

    sys.path.insert(0, str(ROOT / "tests"))
    import airflow_stack
    from private_postgres import PrivatePostgres

    from bench import harness

    # Its own Postgres server for the system database and Airflow's metadata database: a
    # deployment plus 1,000 waits need more connections than a shared server may have free, and
    # other users of a shared server would blur the statement counts.
    with PrivatePostgres() as pg:
        harness.SERVER = airflow_stack.POSTGRES = pg.url("postgres")
        with bench_env() as env:
            client = dbos.DBOSClient(system_database_url=env.system_database_url)
            try:
                p = asyncio.run(plain(env, client))
                o = ours(env, client)
            finally:
                client.destroy()
    rows = [
        Row(
            "P9 1,000 deferred tasks in a real triggerer: DB statements/s while nothing changes",
            f"{p['statements_per_s']:.0f}/s (1,000 get_result() pollers)",
            f"{o['statements_per_s']:.1f}/s (server transactions minus worker baseline)",
            f"{o['statements_per_s'] / max(p['statements_per_s'], 1e-9):.3f}",
            f"{WAITS} waits, {WINDOW:.0f} s window",
            "<= 20/s",
            "met" if o["statements_per_s"] <= 20 else "MISSED",
        ),
        Row(
            "P9 1,000 deferred tasks: triggerer's DB connections",
            "",
            str(o["connections"]),
            "",
            "max of samples every 1 s",
        ),
    ]
    for q in (50, 99):
        pl, ol = percentile(p["latencies"], q), percentile(o["latencies"], q)
        goal = "<= 0.5 s" if q == 99 else ""
        met = ("met" if ol <= 0.5 else "MISSED") if goal else ""
        rows.append(
            Row(
                f"P9 1,000 deferred tasks: wake-up after completion p{q}",
                f"{fmt_s(pl)} (get_result)",
                f"{fmt_s(ol)} (triggerer log: trigger fired)",
                f"{ol / pl:.2f}",
                f"{len(o['latencies'])} of {WAITS}",
                goal,
                met,
            )
        )
    rows.append(
        Row(
            "P9 1,000 deferred tasks: of which after the worker committed SUCCESS, p99",
            "",
            f"{fmt_s(percentile(o['after_commit'], 99))} (fired - status row updated_at)",
            "",
            f"worker commit lag p99 {fmt_s(percentile(o['commit_lag'], 99))}",
        )
    )
    for row in rows:
        row.n += f"; completions spread over {SPREAD:.0f} s"
    report("p9", rows, {"plain": p, "ours": o, "spread_s": SPREAD})


if __name__ == "__main__":
    main()
