"""P4: ``DBOS.set_event`` -> wait returns with the value.

Each workflow sleeps 1-3 s (random), publishes ``ready`` = ``time.time()`` taken right before
``set_event``, and stays PENDING 3 s more; the latency is the time the wait returned minus that
stamp. The bench app runs with DBOS' default ``use_listen_notify=True``.
Plain: ``dbos.DBOSClient.get_event_async`` (client defaults). Ours: ``DBOSEventTrigger.run()``.
Goal: ours p99 <= 0.1 s.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from bench.harness import latency_figure

N = 100
QUEUE = "bench"
KEY = "ready"


def _enqueue(client: Any, n: int) -> list[str]:
    from dbos import WorkflowSerializationFormat

    options = {
        "workflow_name": "event_stamp",
        "queue_name": QUEUE,
        "serialization_type": WorkflowSerializationFormat.PORTABLE,
    }
    return [client.enqueue(options, KEY, random.uniform(1.0, 3.0), 3.0).workflow_id for _ in range(n)]


async def plain_phase(client: Any) -> list[float]:
    async def one(workflow_id: str) -> float:
        stamp = await client.get_event_async(workflow_id, KEY, 30)
        return time.time() - float(stamp)

    return list(await asyncio.gather(*(one(w) for w in _enqueue(client, N))))


async def ours_phase(client: Any, conn_id: str) -> list[float]:
    from dbos_airflow.hooks.dbos import DBOSHook
    from dbos_airflow.triggers.dbos import DBOSEventTrigger

    await DBOSHook(conn_id).get_waiter_async()

    async def one(workflow_id: str) -> float:
        async for event in DBOSEventTrigger(workflow_id=workflow_id, key=KEY, dbos_conn_id=conn_id).run():
            assert event.payload["kind"] == "event_published", event.payload
            return time.time() - float(event.payload["value"])
        raise AssertionError("no trigger event")

    return list(await asyncio.gather(*(one(w) for w in _enqueue(client, N))))


def main() -> None:
    latency_figure(
        "p4",
        "event latency",
        plain_phase,
        ours_phase,
        detail="(set_event -> wait returns)",
        plain_what="get_event",
        ours_what="DBOSEventTrigger",
        goal_q=99,
    )


if __name__ == "__main__":
    main()
