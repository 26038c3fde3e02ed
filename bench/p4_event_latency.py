"""P4: ``DBOS.set_event`` -> wait returns with the value.

Each workflow sleeps 1-3 s (random), publishes ``ready`` = ``time.time()`` taken right before
``set_event``, and stays PENDING 3 s more; the latency is the time the wait returned minus that
stamp. The bench app runs with DBOS' default ``use_listen_notify=True``.
Plain: ``dbos.DBOSClient.get_event_async`` (client defaults). Ours: ``DBOSEventTrigger.run()``.
Goal: ours p99 <= 0.1 s.

The parts (a third row; bench-only stamps, the product has no timing code), on one machine clock:

* stamp -> set_event's transaction: DBOS' ``operation_outputs.completed_at_epoch_ms`` of the
  ``DBOS.setEvent`` step (taken in ``set_event``'s transaction just before its commit; whole ms);
* -> NOTIFY sent: DBOS queues the payload and its notifier thread sends queued ones every 10 ms
  (bench/app.py stamps after each flush);
* -> the waiter's thread took the NOTIFY (``StreamWaits.wakes`` wrapped on the waiter);
* -> its probe saw the event (``DBOSWaiter._resolve`` wrapped);
* -> ``_settle`` ran on the trigger's loop; -> ``observe`` returned to the trigger;
* -> the trigger's value read started (``ValueReader.event`` in the loop's default thread pool,
  after ``DBOSHook.get_value_reader_async``); -> it ended (one SELECT); -> the trigger yielded.

Run under ``scripts/under_load.sh N`` (it exports ``UNDER_LOAD``), the rows are a variant of their
own ("100; under_load.sh 2: ..."), so they do not replace the quiet rows in bench/results.md.
Also recorded: each thread group's run-queue wait (``/proc/.../schedstat``) over the ours phase.
"""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import Row, latency_figure
from bench.p4_parts import Hops, RunQueue, read_commit_stamps, read_notify_stamps

N = 100
QUEUE = "bench"
KEY = "ready"
NOTIFY_STAMPS = Path(tempfile.mkdtemp(prefix="p4-notify-")) / "notifies.txt"
_RECORD: dict[str, Any] = {}  # the ours phase's stamps, for _parts()


def _variant() -> str:
    load = os.environ.get("UNDER_LOAD", "")
    return f"under_load.sh {load}: {load} CPU-bound processes" if load else ""


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

    waiter = await DBOSHook(conn_id).get_waiter_async()
    stamps: dict[str, float] = {}
    yielded: dict[str, float] = {}

    async def one(workflow_id: str) -> float:
        async for event in DBOSEventTrigger(workflow_id=workflow_id, key=KEY, dbos_conn_id=conn_id).run():
            yielded[workflow_id] = time.time()
            assert event.payload["kind"] == "event_published", event.payload
            stamps[workflow_id] = float(event.payload["value"])
            return yielded[workflow_id] - stamps[workflow_id]
        raise AssertionError("no trigger event")

    loadavg = os.getloadavg()
    hops = Hops(waiter)
    runq = RunQueue(waiter, conn_id)
    try:
        latencies = list(await asyncio.gather(*(one(w) for w in _enqueue(client, N))))
    finally:
        hops.close()
    ids = sorted(stamps)
    _RECORD.update(
        stamp=stamps,
        committed=await asyncio.to_thread(read_commit_stamps, waiter.client.system_database_engine, ids),
        notify_sent=read_notify_stamps(NOTIFY_STAMPS, set(ids)),
        waiter_notified=hops.notified,
        probe_saw=hops.seen,
        settled=hops.settled,
        observed=hops.observed,
        read_started=hops.read_started,
        read_done=hops.read_done,
        yielded=yielded,
        runq=await asyncio.to_thread(runq.finish),
        waiter_runq_notified_to_saw=hops.runq_notified_to_seen,
        loadavg=loadavg,
    )
    return latencies


HOPS = (
    ("stamp", "committed", "stamp -> set_event's txn"),
    ("committed", "notify_sent", "-> NOTIFY sent"),
    ("notify_sent", "waiter_notified", "-> waiter took it"),
    ("waiter_notified", "probe_saw", "-> probe saw"),
    ("probe_saw", "settled", "-> settled on the loop"),
    ("settled", "observed", "-> observe returned"),
    ("observed", "read_started", "-> value read starts (hook, thread pool)"),
    ("read_started", "read_done", "-> read done (one SELECT)"),
    ("read_done", "yielded", "-> yield"),
)


def _parts() -> tuple[list[Row], dict[str, Any]]:
    from bench.harness import percentile

    r = _RECORD
    spans: dict[str, list[float]] = {}
    for a, b, _ in HOPS:
        spans[f"{a}->{b}"] = [r[b][w] - r[a][w] for w in r["stamp"] if w in r[a] and w in r[b]]

    def pcts(values: list[float]) -> str:
        if not values:
            return "none"
        return f"p50 {percentile(values, 50) * 1000:.0f} / p99 {percentile(values, 99) * 1000:.0f} ms"

    def cell(hops: tuple[tuple[str, str, str], ...]) -> str:
        out = []
        for a, b, label in hops:
            values = spans[f"{a}->{b}"]
            count = "" if len(values) == len(r["stamp"]) else f" (n={len(values)})"
            out.append(f"{label} {pcts(values)}{count}")
        return "; ".join(out)

    variant = _variant()
    n = f"{len(r['stamp'])}" + (f"; {variant}" if variant else "")
    runq = r["runq"]
    runq_cell = ", ".join(
        f"{group} {v['wait_s'] * 1000:.0f} ms ({v['per_slice_ms']:.2f} ms/slice)" for group, v in runq.items()
    )
    load = "load average " + " / ".join(f"{x:.2f}" for x in r["loadavg"])
    rows = [
        Row(
            "P4 event latency: the parts (DBOS worker; ours)",
            cell(HOPS[:2]),
            cell(HOPS[2:]),
            "",
            n,
        ),
        Row(
            "P4 event latency: run-queue waits during ours phase (schedstat)",
            load,
            runq_cell + f"; waiter thread, took NOTIFY -> probe saw: {pcts(r['waiter_runq_notified_to_saw'])}",
            "",
            n,
        ),
    ]
    return rows, {"parts": spans, "runq": runq, "loadavg": r["loadavg"]}


def main() -> None:
    os.environ["BENCH_NOTIFY_STAMPS"] = str(NOTIFY_STAMPS)  # the bench worker inherits it
    latency_figure(
        "p4",
        "event latency",
        plain_phase,
        ours_phase,
        detail="(set_event -> wait returns)",
        plain_what="get_event",
        ours_what="DBOSEventTrigger",
        goal_q=99,
        variant=_variant(),
        parts=_parts,
    )


if __name__ == "__main__":
    main()
