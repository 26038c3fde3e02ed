"""P3: workflow finishes -> wait returns.

Each workflow sleeps 1-3 s (random), then returns ``time.time()``; the latency is the time the
wait returned minus that stamp (one machine clock). All waits start before any workflow ends.
Plain: ``WorkflowHandleAsync.get_result()`` of a ``dbos.DBOSClient``. Ours: the deferrable
operators' ``DBOSWorkflowTrigger.run()`` (the shared per-process waiter).
Goal: ours p50 <= 0.1 s.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from bench.harness import latency_figure

N = 100
QUEUE = "bench"


def _enqueue(client: Any, n: int) -> list[str]:
    from dbos import WorkflowSerializationFormat

    options = {
        "workflow_name": "finish_stamp",
        "queue_name": QUEUE,
        "serialization_type": WorkflowSerializationFormat.PORTABLE,
    }
    return [client.enqueue(options, random.uniform(1.0, 3.0)).workflow_id for _ in range(n)]


async def plain_phase(client: Any) -> list[float]:
    handles = [await client.retrieve_workflow_async(w) for w in _enqueue(client, N)]

    async def one(handle: Any) -> float:
        stamp = await handle.get_result()
        return time.time() - float(stamp)

    return list(await asyncio.gather(*(one(h) for h in handles)))


async def ours_phase(client: Any, conn_id: str) -> list[float]:
    from dbos_airflow.hooks.dbos import DBOSHook
    from dbos_airflow.triggers.dbos import DBOSWorkflowTrigger

    await DBOSHook(conn_id).get_waiter_async()  # created once per triggerer process, not per wait
    ids = _enqueue(client, N)

    async def one(workflow_id: str) -> float:
        async for event in DBOSWorkflowTrigger(workflow_id=workflow_id, dbos_conn_id=conn_id).run():
            returned = time.time()
            assert event.payload["status"] == "SUCCESS", event.payload
            break
        handle = await client.retrieve_workflow_async(workflow_id)
        return returned - float(await handle.get_result())  # already ended: read back the stamp (untimed)

    return list(await asyncio.gather(*(one(w) for w in ids)))


def main() -> None:
    latency_figure(
        "p3",
        "completion latency",
        plain_phase,
        ours_phase,
        detail="(workflow returns -> wait returns)",
        plain_what="get_result",
        ours_what="DBOSWorkflowTrigger",
        goal_q=50,
    )


if __name__ == "__main__":
    main()
