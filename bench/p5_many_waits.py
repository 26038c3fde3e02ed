"""P5: 1,000 concurrent event waits in one process, on one connection.

One workflow publishes keys k0..k999 after ``DELAY`` s (each value = ``time.time()`` right
before its ``set_event``); 1,000 waits, one per key, start first. While nothing changes
(a ``WINDOW``-second quiet window with all waits registered; the publisher sleeps ``DELAY`` s) we count:

* statements this process sent (SQLAlchemy ``before_cursor_execute`` on the client's engine),
* server transactions on the bench database (``pg_stat_database``) minus those of a baseline
  window of the same length just before the waits start (the bench worker's own polling),
* connections from this process (``pg_stat_activity`` rows whose client port is one of ours),

then the wake-up latency of every wait (returned - stamp).
Plain: 1,000 ``get_event_async`` on one ``dbos.DBOSClient`` (defaults). Ours: 1,000
``DBOSEventTrigger.run()`` (one shared waiter). Goals: <= 2 connections, <= 20 statements/s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.harness import (
    Env,
    Row,
    StatementCounter,
    bench_env,
    connections_of_this_process,
    fmt_s,
    percentile,
    report,
    server_transactions,
)

WAITS = 1000
DELAY = 22.0  # seconds before the workflow publishes: covers start-up and the quiet window
WINDOW = 5.0
QUEUE = "bench"


def _start_publisher(client: Any) -> str:
    from dbos import WorkflowSerializationFormat

    options = {
        "workflow_name": "many_events",
        "queue_name": QUEUE,
        "serialization_type": WorkflowSerializationFormat.PORTABLE,
    }
    return str(client.enqueue(options, WAITS, DELAY, 5.0).workflow_id)


async def _measure(
    env: Env,
    counter: StatementCounter,
    wait_one: Callable[[str, str], Awaitable[float]],
    publisher: str,
    registered: Callable[[], bool],
) -> dict[str, Any]:
    x0, b0 = await asyncio.to_thread(server_transactions, env), time.monotonic()
    await asyncio.sleep(WINDOW)  # baseline: the worker's own polling, right before this side's window
    baseline = (await asyncio.to_thread(server_transactions, env) - x0) / (time.monotonic() - b0)
    tasks = [asyncio.create_task(wait_one(publisher, f"k{i}")) for i in range(WAITS)]
    while not registered():
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)  # let set-up reads finish: measure the steady state
    stmts0, xacts0, t0 = counter.count, await asyncio.to_thread(server_transactions, env), time.monotonic()
    connections = []
    while time.monotonic() - t0 < WINDOW:
        connections.append(await asyncio.to_thread(connections_of_this_process, env))
        await asyncio.sleep(0.5)
    elapsed = time.monotonic() - t0
    stmts, xacts = counter.count - stmts0, await asyncio.to_thread(server_transactions, env) - xacts0
    latencies = list(await asyncio.gather(*tasks))
    return {
        "statements_per_s": stmts / elapsed,
        "server_xacts_per_s_net": xacts / elapsed - baseline,
        "baseline_xacts_per_s": baseline,
        "connections": max(connections),
        "latencies": latencies,
    }


async def plain_phase(env: Env, client: Any) -> dict[str, Any]:
    counter = StatementCounter(client._sys_db.engine)
    started = 0

    async def one(workflow_id: str, key: str) -> float:
        nonlocal started
        started += 1
        stamp = await client.get_event_async(workflow_id, key, 60)
        return time.time() - float(stamp)

    return await _measure(env, counter, one, _start_publisher(client), lambda: started == WAITS)


async def ours_phase(env: Env, publisher: str) -> dict[str, Any]:
    from dbos_airflow.hooks.dbos import DBOSHook
    from dbos_airflow.triggers.dbos import DBOSEventTrigger

    waiter = await DBOSHook(env.conn_id).get_waiter_async()
    counter = StatementCounter(waiter.client.system_database_engine)

    async def one(workflow_id: str, key: str) -> float:
        async for event in DBOSEventTrigger(workflow_id=workflow_id, key=key, dbos_conn_id=env.conn_id).run():
            assert event.payload["kind"] == "event_published", event.payload
            return time.time() - float(event.payload["value"])
        raise AssertionError("no trigger event")

    result = await _measure(env, counter, one, publisher, lambda: waiter.pending == WAITS)
    result["probes"] = waiter.probes
    return result


def main() -> None:
    import dbos

    with bench_env() as env:
        client = dbos.DBOSClient(system_database_url=env.system_database_url)
        try:
            plain = asyncio.run(plain_phase(env, client))
        finally:
            client.destroy()
        # The publisher is enqueued by a client closed before the waits start: only the waiter's
        # connections are counted on our side (the plain side's one client both enqueues and waits).
        enqueuer = dbos.DBOSClient(system_database_url=env.system_database_url, system_database_pool_size=1)
        try:
            publisher = _start_publisher(enqueuer)
        finally:
            enqueuer.destroy()
        ours = asyncio.run(ours_phase(env, publisher))
    rows = [
        Row(
            "P5 1,000 waits: statements/s while nothing changes",
            f"{plain['statements_per_s']:.0f}/s",
            f"{ours['statements_per_s']:.0f}/s",
            f"{ours['statements_per_s'] / max(plain['statements_per_s'], 1e-9):.3f}",
            f"{WAITS} waits, {WINDOW:.0f} s window",
            "<= 20/s",
            "met" if ours["statements_per_s"] <= 20 else "MISSED",
        ),
        Row(
            "P5 1,000 waits: server transactions/s (minus worker baseline)",
            f"{plain['server_xacts_per_s_net']:.0f}/s",
            f"{ours['server_xacts_per_s_net']:.0f}/s",
            f"{ours['server_xacts_per_s_net'] / max(plain['server_xacts_per_s_net'], 1e-9):.3f}",
            f"{WINDOW:.0f} s window minus a {WINDOW:.0f} s baseline before it",
        ),
        Row(
            "P5 1,000 waits: DB connections of the process",
            str(plain["connections"]),
            str(ours["connections"]),
            f"{ours['connections'] / max(plain['connections'], 1):.2f}",
            "max of samples every 0.5 s",
            "<= 2",
            "met" if ours["connections"] <= 2 else "MISSED",
        ),
    ]
    for q in (50, 99):
        p, o = percentile(plain["latencies"], q), percentile(ours["latencies"], q)
        rows.append(Row(f"P5 1,000 waits: wake-up latency p{q}", fmt_s(p), fmt_s(o), f"{o / p:.2f}", str(WAITS)))
    report("p5", rows, {"plain": plain, "ours": ours})


if __name__ == "__main__":
    main()
