"""Retention at scale: 100,000 ended workflows deleted in pages while the worker keeps running.

``flock /tmp/heavy.lock .venv/bin/python -m bench.retention`` (docs/operations.md, "Retention at scale").
On a fresh bench database: 100,000 workflows enqueued on a queue nobody polls (the bulk writer, 10,000
a transaction) and cancelled (DBOS' ``cancel_workflows``: ended, ``completed_at`` set), so they are
ended rows with their inputs. Then ``dbos_orchestrator.operations.retention.purge_workflows`` deletes
them in pages of 1,000 while a second thread enqueues a no-op on the polled queue and waits for it, over
and over. Reported: the longest delete transaction (what holds the locks), the pages, the p50/p99 of
the concurrent enqueue+wait before and during the purge.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import sqlalchemy as sa

from bench.app import QUEUE
from bench.common_enqueue import UNPOLLED_QUEUE
from bench.harness import bench_env, median, percentile

TOTAL = 100_000
CHUNK = 10_000
PAGE = 1_000


def fill(client: Any) -> None:
    from dbos_orchestrator.store.bulk import enqueue_many

    for start in range(0, TOTAL, CHUNK):
        items = [{"args": [i], "workflow_id": f"old-{i}"} for i in range(start, start + CHUNK)]
        ids = enqueue_many(client, {"workflow_name": "noop", "queue_name": UNPOLLED_QUEUE}, items)
        client.cancel_workflows(ids)


def probe(client: Any, stop: threading.Event, out: list[float]) -> None:
    """Enqueue a no-op on the polled queue and wait for it, again and again, until ``stop``."""
    while not stop.is_set():
        started = time.perf_counter()
        wid = client.enqueue({"workflow_name": "noop", "queue_name": QUEUE}).workflow_id
        while client.list_workflows(workflow_ids=[wid], load_input=False, load_output=False)[0].status != "SUCCESS":
            time.sleep(0.01)
        out.append(time.perf_counter() - started)


def transactions(engine: sa.Engine) -> list[float]:
    """Durations of the engine's transactions that deleted (from the first DELETE to the commit)."""
    durations: list[float] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _statement(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE") and "t0" not in conn.info:
            conn.info["t0"] = time.perf_counter()

    @sa.event.listens_for(engine, "commit")
    def _commit(conn: Any) -> None:
        t0 = conn.info.pop("t0", None)
        if t0 is not None:
            durations.append(time.perf_counter() - t0)

    return durations


def main() -> None:
    from dbos import DBOSPortableJSONSerializer
    from dbos_orchestrator.client import DBOSClient
    from dbos_orchestrator.operations.retention import purge_workflows

    with bench_env() as env:
        client = DBOSClient(
            system_database_url=env.system_database_url,
            retry_connection_errors=False,
            serializer=DBOSPortableJSONSerializer(),
        )
        prober = DBOSClient(
            system_database_url=env.system_database_url,
            retry_connection_errors=False,
            serializer=DBOSPortableJSONSerializer(),
        )
        try:
            started = time.perf_counter()
            fill(client)
            print(f"filled {TOTAL:,} ended workflows in {time.perf_counter() - started:.1f} s", flush=True)
            quiet: list[float] = []
            stop = threading.Event()
            thread = threading.Thread(target=probe, args=(prober, stop, quiet))
            thread.start()
            time.sleep(10)
            stop.set()
            thread.join()
            during: list[float] = []
            stop = threading.Event()
            thread = threading.Thread(target=probe, args=(prober, stop, during))
            deletes = transactions(client.system_database_engine)
            thread.start()
            started = time.perf_counter()
            deleted = purge_workflows(client, 0, page_size=PAGE)
            purge_seconds = time.perf_counter() - started
            stop.set()
            thread.join()
            left = env.sql(
                "SELECT count(*) FROM dbos.workflow_status WHERE queue_name IS NULL AND status = 'CANCELLED'"
            )
            print(f"deleted {deleted:,} in {purge_seconds:.1f} s, {len(deletes)} pages; left {left[0][0]}")
            print(f"longest delete transaction {max(deletes) * 1000:.0f} ms, median {median(deletes) * 1000:.0f} ms")
            for name, values in (("before the purge", quiet), ("during the purge", during)):
                print(
                    f"enqueue+wait {name}: n={len(values)} p50 {median(values) * 1000:.0f} ms "
                    f"p99 {percentile(values, 99) * 1000:.0f} ms max {max(values) * 1000:.0f} ms"
                )
        finally:
            client.destroy()
            prober.destroy()


if __name__ == "__main__":
    main()
