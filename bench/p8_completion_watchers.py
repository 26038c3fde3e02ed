"""P8: 50 completion watchers (AssetWatcher triggers) on one connection, in one process.

Fifty watchers of the workflow ``finish_stamp`` (status SUCCESS) run in one event loop, as in a
triggerer. While nothing completes (a ``WINDOW``-second quiet window after start-up) we count
the statements this process sends (SQLAlchemy ``before_cursor_execute`` on the engine doing the
reads). Then ``N`` workflows end 1-3 s apart (random) and every watcher's event for each of them
is timed: event yielded minus the workflow's ``completed_at`` (stamped by the DBOS worker on
this machine's clock), i.e. completion -> asset event leaving the trigger. (Airflow stores the
event in its next triggerer loop, about one second later: not counted here.)

Naive: 50 polling loops on one ``dbos.DBOSClient``, each calling
``list_workflows_async(name=..., status="SUCCESS", completed_after=<its cursor>,
load_input=False, load_output=False)`` every ``NAIVE_INTERVAL`` s (a loop per watcher, as a
trigger written without the shared waiter would). Ours: 50 ``DBOSWorkflowCompletedTrigger.run()``
sharing the connection's waiter (one statement per feed tick for all of them).
Goals: ours p50 <= 0.5 s after the completion, <= 20 statements/s while nothing completes.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from bench.harness import Row, StatementCounter, bench_env, fmt_s, percentile, report

WATCHERS = 50
N = 40  # completions timed (x 50 watchers = samples)
WINDOW = 5.0
NAIVE_INTERVAL = 1.0
QUEUE = "bench"
NAME = "finish_stamp"


def _enqueue(client: Any, n: int) -> list[str]:
    from dbos import WorkflowSerializationFormat

    options = {"workflow_name": NAME, "queue_name": QUEUE, "serialization_type": WorkflowSerializationFormat.PORTABLE}
    return [client.enqueue(options, random.uniform(1.0, 3.0)).workflow_id for _ in range(n)]


class _MemoryStore:
    async def aget(self, key: str, default: Any = None) -> Any:
        return default

    async def aset(self, key: str, value: Any) -> None:
        return None


async def _run_phase(client: Any, watch: Any, counter_engine: Any) -> tuple[float, list[float]]:
    """Start the watchers (``watch(latencies)`` -> task), measure idle statements/s, then latencies."""
    latencies: list[float] = []
    tasks = await watch(latencies)
    await asyncio.sleep(2.0)  # start-up reads done: measure the steady state
    counter = StatementCounter(counter_engine())
    t0, s0 = time.monotonic(), counter.count
    await asyncio.sleep(WINDOW)
    idle_rate = (counter.count - s0) / (time.monotonic() - t0)
    await asyncio.to_thread(_enqueue, client, N)
    deadline = time.monotonic() + 60
    while len(latencies) < N * WATCHERS and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return idle_rate, latencies


async def ours_phase(client: Any, conn_id: str) -> tuple[float, list[float]]:
    from dbos_airflow.hooks.dbos import DBOSHook
    from dbos_airflow.triggers.completed import DBOSWorkflowCompletedTrigger

    waiter = await DBOSHook(conn_id).get_waiter_async()

    async def watch(latencies: list[float]) -> list[asyncio.Task[None]]:
        async def one() -> None:
            trigger = DBOSWorkflowCompletedTrigger(workflow_name=NAME, statuses=["SUCCESS"], dbos_conn_id=conn_id)
            trigger.asset_state_store = _MemoryStore()  # type: ignore[assignment]
            async for event in trigger.run():
                latencies.append(time.time() - event.payload["completed_at_ms"] / 1000)

        return [asyncio.create_task(one()) for _ in range(WATCHERS)]

    return await _run_phase(client, watch, lambda: waiter.client.system_database_engine)


async def naive_phase(client: Any) -> tuple[float, list[float]]:
    async def watch(latencies: list[float]) -> list[asyncio.Task[None]]:
        async def one() -> None:
            from datetime import datetime, timezone

            cursor = datetime.now(timezone.utc).isoformat()  # dbos takes ISO 8601 here
            seen: set[str] = set()
            while True:
                rows = await client.list_workflows_async(
                    name=NAME, status="SUCCESS", completed_after=cursor, load_input=False, load_output=False
                )
                now = time.time()
                for row in sorted(rows, key=lambda r: (r.completed_at, r.workflow_id)):
                    if row.workflow_id not in seen:  # a real loop would also move its cursor
                        seen.add(row.workflow_id)
                        latencies.append(now - row.completed_at / 1000)
                await asyncio.sleep(NAIVE_INTERVAL)

        return [asyncio.create_task(one()) for _ in range(WATCHERS)]

    return await _run_phase(client, watch, lambda: client._sys_db.engine)


def main() -> None:
    import dbos

    with bench_env() as env:
        client = dbos.DBOSClient(system_database_url=env.system_database_url)
        try:
            naive_rate, naive = asyncio.run(naive_phase(client))
            ours_rate, ours = asyncio.run(ours_phase(client, env.conn_id))
        finally:
            client.destroy()
    samples = f"{N} completions x {WATCHERS} watchers"
    rows = [
        Row(
            f"P8 {WATCHERS} completion watchers: statements/s while nothing completes",
            f"{naive_rate:.0f}/s ({WATCHERS} polling loops, {NAIVE_INTERVAL:.0f} s)",
            f"{ours_rate:.0f}/s (DBOSWorkflowCompletedTrigger)",
            f"{ours_rate / naive_rate:.3f}" if naive_rate else "-",
            f"{WINDOW:.0f} s window",
            "<= 20/s",
            "met" if ours_rate <= 20 else "MISSED",
        )
    ]
    for q in (50, 99):
        p, o = percentile(naive, q), percentile(ours, q)
        goal = "<= 0.5 s" if q == 50 else ""
        rows.append(
            Row(
                f"P8 completion -> asset event p{q} ({WATCHERS} watchers)",
                f"{fmt_s(p)} (polling loops)",
                f"{fmt_s(o)} (DBOSWorkflowCompletedTrigger)",
                f"{o / p:.2f}",
                f"{len(ours)} of {samples}" if len(ours) != N * WATCHERS else samples,
                goal,
                ("met" if o <= 0.5 else "MISSED") if goal else "",
            )
        )
    report("p8", rows, {"naive_s": naive, "ours_s": ours, "naive_rate": naive_rate, "ours_rate": ours_rate})


if __name__ == "__main__":
    main()
